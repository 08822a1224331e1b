"""Burn severity: dNBR, RdNBR, USGS classes, and the signature that tells a fire from a clearing."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .indices import ndwi

__all__ = ["dnbr", "rdnbr", "severity_classes", "burn_signature", "fire_like", "water_at_10m", "burn_severity_at_detection",
           "drop_from_previous", "phenology_corrected",
           "SEVERITY_BREAKS", "SEVERITY_NAMES"]

#: Key & Benson (2006) dNBR class breaks
SEVERITY_BREAKS = (0.10, 0.27, 0.44, 0.66)
SEVERITY_NAMES = ("unburned", "low", "moderate_low", "moderate_high", "high")


def dnbr(pre_nbr: xr.DataArray, post_nbr: xr.DataArray) -> xr.DataArray:
    """Differenced NBR, ``pre - post`` (positive where the vegetation burned), float32, unit 1.

    References
    ----------
    Key, C. H., Benson, N. C. (2006). USDA Forest Service RMRS-GTR-164-CD.
    """
    a, b = xr.align(pre_nbr, post_nbr, join="exact")
    out = (a - b).astype(np.float32)
    out.name = "dnbr"
    out.attrs = {"long_name": "differenced normalized burn ratio (pre - post)", "units": "1"}
    return out


def rdnbr(pre_nbr: xr.DataArray, d: xr.DataArray) -> xr.DataArray:
    """Relative dNBR, ``dNBR / sqrt(|pre NBR|)``, NaN where the pre-fire NBR is ~0.

    References
    ----------
    Miller, J. D., Thode, A. E. (2007). Quantifying burn severity in a heterogeneous landscape with a
    relative version of the delta Normalized Burn Ratio. Remote Sens. Environ. 109, 66-80.
    """
    a, b = xr.align(pre_nbr, d, join="exact")
    den = np.sqrt(np.abs(a))
    out = (b / den.where(den > 1e-3)).astype(np.float32)
    out.name = "rdnbr"
    out.attrs = {"long_name": "relative differenced normalized burn ratio", "units": "1"}
    return out


def severity_classes(d: xr.DataArray) -> xr.DataArray:
    """USGS burn-severity class of dNBR: 0 unburned (<0.10), 1 low (0.10-0.27), 2 moderate-low
    (0.27-0.44), 3 moderate-high (0.44-0.66), 4 high (>0.66); -1 where dNBR is NaN. int8."""
    bins = np.asarray(SEVERITY_BREAKS, dtype=np.float64)  # float32 breaks would put 0.10 itself below 0.1
    cls = xr.apply_ufunc(np.digitize, d, kwargs={"bins": bins}, dask="parallelized", output_dtypes=[np.int64])
    out = cls.where(d.notnull(), -1).astype(np.int8)
    out.name = "burn_severity"
    out.attrs = {"long_name": "burn severity (Key & Benson dNBR classes)", "flag_values": [-1, 0, 1, 2, 3, 4],
                 "flag_meanings": "no_data " + " ".join(SEVERITY_NAMES), "units": "1"}
    return out


def burn_signature(pre: xr.Dataset, post: xr.Dataset, *, max_swir16_rise: float = 0.06,
                   max_visible_albedo: float = 0.07) -> xr.DataArray:
    """True where a drop in NBR looks like fire (char), not like a clearing.

    Char darkens the visible and near-infrared and leaves SWIR 1.6 µm about unchanged or lower. A
    clearing exposes soil and dry slash, which brighten the visible and raise SWIR 1.6 µm strongly.
    So a burn keeps ``swir16`` from rising by more than ``max_swir16_rise``, and its post-event mean
    of blue, green and red stays under ``max_visible_albedo``.

    Parameters
    ----------
    pre, post : Dataset
        Reflectance with ``blue, green, red, swir16`` (unit 1), same grid.
    """
    rise = post["swir16"] - pre["swir16"]
    albedo = (post["blue"] + post["green"] + post["red"]) / 3
    out = (rise <= max_swir16_rise) & (albedo <= max_visible_albedo)
    out.name = "burn_signature"
    out.attrs = {"long_name": "fire-like spectral change (char), not a clearing", "units": "1"}
    return out


def _pre_post_block(nbr: np.ndarray, detected: np.ndarray, exp: np.ndarray | None = None, *,
                    secs: np.ndarray | None = None, fine: np.ndarray | None = None,
                    post_fine_s: float = 0.0) -> tuple[np.ndarray, ...]:
    """For each pixel: NBR of the last clear observation before the first detection, and at it (or at
    the first clear ``fine`` observation within ``post_fine_s`` seconds of it, when given); with
    ``exp``, also the values of ``exp`` at those two observations."""
    t = nbr.shape[-1]
    det = detected > 0.5
    has = det.any(axis=-1)
    k = np.where(has, det.argmax(axis=-1), 0)
    idx = np.arange(t)
    before = np.isfinite(nbr) & (idx < k[..., None])
    last = np.where(before.any(axis=-1), t - 1 - np.argmax(before[..., ::-1], axis=-1), -1)
    if fine is not None and secs is not None and post_fine_s > 0:
        cand = (np.isfinite(nbr) & np.asarray(fine, bool) & (idx >= k[..., None])
                & (secs - secs[k][..., None] <= post_fine_s))
        k = np.where(cand.any(axis=-1), cand.argmax(axis=-1), k)
    pre_ok = has & (last >= 0)

    def at(x: np.ndarray, i: np.ndarray, ok: np.ndarray) -> np.ndarray:
        return np.where(ok, np.take_along_axis(x, i[..., None], axis=-1)[..., 0], np.nan)

    out = (at(nbr, np.maximum(last, 0), pre_ok), at(nbr, k, has))
    if exp is not None:
        out += (at(exp, np.maximum(last, 0), pre_ok), at(exp, k, has))
    return out


def phenology_corrected(d, offset):
    """dNBR less the change the season alone made between the pre- and post-fire looks
    (``offset``: expected NBR at the pre-fire look minus at the post-fire one); ``d`` where the
    offset is unknown. NumPy or xarray; float32."""
    if isinstance(d, xr.DataArray):
        return (d - offset).where(offset.notnull(), d).astype(np.float32)
    return np.where(np.isfinite(offset), d - offset, d).astype(np.float32)


def fire_like(nbr_drop: xr.DataArray, swir16_drop: xr.DataArray, visible: xr.DataArray, *, mndwi: xr.DataArray | None = None,
              min_nbr_drop: float = 0.10, max_swir16_rise: float = 0.06, max_visible_albedo: float = 0.07,
              max_mndwi: float = -0.3, water: xr.DataArray | None = None) -> xr.DataArray:
    """Per observation: 1 where the pixel looks freshly burned against its same-season baseline,
    0 where clear and not, NaN where unobserved.

    ``nbr_drop`` and ``swir16_drop`` are :func:`processors.forest.seasonal_anomaly` outputs
    (baseline minus current); ``visible`` is the mean of blue, green and red of the observation.
    ``mndwi`` of the observation, when given, rules out water: a flood is dark and drops NBR and
    SWIR too, but char and vegetation sit near MNDWI -0.55 while water is positive and the mixed
    pixels at a flood's edge (20 m SWIR) sit above -0.3.
    ``water`` (bool, per observation), when given, rules out what MNDWI's 20 m SWIR misses: open
    water seen at 10 m and the pixels beside it (:func:`water_at_10m`).
    """
    rise = -swir16_drop
    hit = (nbr_drop >= min_nbr_drop) & (rise <= max_swir16_rise) & (visible <= max_visible_albedo)
    if mndwi is not None:
        hit = hit & (mndwi < max_mndwi)
    if water is not None:
        hit = hit & ~water.astype(bool)
    out = hit.astype(np.float32).where(nbr_drop.notnull() & swir16_drop.notnull() & visible.notnull())
    out.name = "fire_like"
    out.attrs = {"long_name": "fire-like change against the same-season baseline (1), not (0)", "units": "1"}
    return out


def water_at_10m(green: xr.DataArray, nir: xr.DataArray, *, max_ndwi: float = 0.0) -> xr.DataArray:
    """Per observation, True on open water seen at 10 m (McFeeters' NDWI above ``max_ndwi``: green and
    NIR are Sentinel-2's 10 m bands) and on the pixels beside it (one pixel, diagonals included).

    At a flood's edge the 20 m bands (B8A, SWIR) of the pixels beside the water average it in: NBR
    falls 0.1-0.15 there, and MNDWI stays under -0.3, as a burn's would. The 10 m bands tell them
    apart: water's reflectance falls from green to NIR (NDWI above 0), char's and vegetation's
    rises (NDWI near -0.35 and -0.7). A 20 m pixel spans two 10 m pixels each way, so any pixel
    within one of the water may share its 20 m pixel. Lazy; equal on numpy and dask (chunk edges
    included).
    """
    wet = (ndwi(green, nir) > max_ndwi).astype(np.float32)
    near = wet.rolling(y=3, x=3, center=True, min_periods=1).max() > 0
    near.name = "water_at_10m"
    near.attrs = {"long_name": "open water at 10 m (NDWI > 0) or beside it", "units": "1"}
    return near


def burn_severity_at_detection(nbr_series: xr.DataArray, detected: xr.DataArray, *,
                               fine: xr.DataArray | None = None, post_fine_days: float = 3.0,
                               expected: xr.DataArray | None = None) -> xr.Dataset:
    """dNBR from the nearest clear observations on each side of each pixel's first detection.

    Parameters
    ----------
    nbr_series : DataArray (time, y, x)
        NBR, NaN where not clear.
    detected : DataArray (time, y, x)
        1 at observations where the pixel was detected as burning (the first one counts).
    fine : DataArray (time,) of bool, optional
        The observations at 10-20 m (Sentinel-2). When the detection came from a coarser look
        (Landsat's 30 m pixels average a patchy burn's 10 m severities), the first clear fine look
        within ``post_fine_days`` of it gives the post-fire NBR instead: the char has not
        changed in a few days (regrowth starts after one to two weeks).
    expected : DataArray (time, y, x), optional
        The NBR each pixel would have at each look had nothing happened
        (:func:`processors.chain.observation_layers`' ``nbr_expected``). The pre-fire look may be
        weeks before the fire, in a green-up that raises the NBR by 0.1 in two weeks: dNBR is then
        less the expected change between the two looks (:func:`phenology_corrected`; the dNBR
        offset of Key 2006 and Parks et al. 2018, from the pixel's own baseline and the unburned
        forest around it rather than from one ring around the fire).

    Returns
    -------
    Dataset with ``pre_nbr``, ``post_nbr``, ``dnbr``, ``rdnbr`` and ``severity`` (classes) over (y, x).
    """
    a, b = xr.align(nbr_series, detected, join="exact")
    args = [a, b.fillna(0)]
    if expected is not None:
        args.append(xr.align(a, expected, join="exact")[1])
    if a.chunks is not None:
        args = [x.chunk({"time": -1}) for x in args]
    kw = {}
    if fine is not None:
        from .forest import time_axes

        kw = {"secs": time_axes(a["time"].values)[1], "post_fine_s": float(post_fine_days) * 86400.0,
              "fine": np.asarray(fine.sel(time=a["time"]).values, dtype=bool)}
    n_out = 2 if expected is None else 4
    res = xr.apply_ufunc(_pre_post_block, *args, input_core_dims=[["time"]] * len(args), kwargs=kw,
                         output_core_dims=[[]] * n_out, dask="parallelized", output_dtypes=[np.float32] * n_out)
    pre, post = res[0].astype(np.float32), res[1].astype(np.float32)
    d = dnbr(pre, post)
    if expected is not None:
        d = phenology_corrected(d, (res[2].astype(np.float32) - res[3].astype(np.float32)))
        d.name = "dnbr"
        d.attrs = {"long_name": "differenced normalized burn ratio (pre - post), less the season's change "
                                "between the two looks", "units": "1"}
    return xr.Dataset({"pre_nbr": pre.assign_attrs(long_name="pre-fire NBR", units="1"),
                       "post_nbr": post.assign_attrs(long_name="post-fire NBR", units="1"),
                       "dnbr": d, "rdnbr": rdnbr(pre, d), "severity": severity_classes(d)})


def _drop_from_previous_block(x: np.ndarray, when: np.ndarray | None = None, max_gap: float = np.inf) -> np.ndarray:
    """previous clear value minus current, along the last axis; NaN where either is missing, or where
    the previous clear value is more than ``max_gap`` older (``when``: the last axis' times, same unit)."""
    out = np.full(x.shape, np.nan, dtype=np.float32)
    prev = np.full(x.shape[:-1], np.nan, dtype=np.float64)
    prev_when = np.full(x.shape[:-1], -np.inf)
    for k in range(x.shape[-1]):
        cur = x[..., k]
        d = prev - cur
        if when is not None:
            d = np.where(when[k] - prev_when <= max_gap, d, np.nan)
            prev_when = np.where(np.isfinite(cur), when[k], prev_when)
        out[..., k] = d
        prev = np.where(np.isfinite(cur), cur, prev)
    return out


def drop_from_previous(series: xr.DataArray, *, dim: str = "time", max_gap_days: float | None = None) -> xr.DataArray:
    """Per observation, how far ``series`` fell since the pixel's previous clear observation.

    A fire is abrupt: it shows between two consecutive clear looks, where a slow seasonal change
    or a baseline made of snowier years does not. With ``max_gap_days``, NaN where the previous clear
    observation is older than that: over a winter the season itself moves the series (last
    summer's canopy against this spring's bare larch crowns).
    """
    s = series.chunk({dim: -1}) if series.chunks is not None else series
    kw = {}
    if max_gap_days is not None:
        # in seconds, as the nightly state's clock (processors.incremental): the same gaps to the second
        secs = series[dim].values.astype("datetime64[s]").astype(np.int64).astype(np.float64)
        kw = {"when": secs, "max_gap": float(max_gap_days) * 86400.0}
    out = xr.apply_ufunc(_drop_from_previous_block, s, input_core_dims=[[dim]], output_core_dims=[[dim]],
                         dask="parallelized", output_dtypes=[np.float32], kwargs=kw).transpose(*series.dims)
    out.name = f"{series.name or 'series'}_step_drop"
    out.attrs = {"long_name": f"drop of {series.name or 'the series'} since the previous clear observation", "units": "1"}
    return out
