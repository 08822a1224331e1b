"""Grassland degradation: growing-season NDVI per year, its trend, the current anomaly, classes."""

from __future__ import annotations

from functools import partial

import numpy as np
import xarray as xr

from .forest import nanmedian_time
from .seasons import in_window
from .trends import mann_kendall

__all__ = ["growing_season_ndvi", "sampling_factors", "drop_low_outliers", "season_levels", "to_season_levels",
           "grassland_trend", "modelled_trend", "ndvi_anomaly_z", "DEGRADING", "STABLE", "IMPROVING"]

DEGRADING, STABLE, IMPROVING = -1, 0, 1


def _shape_factors(med: np.ndarray, frac: np.ndarray, doy: np.ndarray, *, start_doy: int, end_doy: int,
                   min_looks: int, min_clear: float) -> np.ndarray:
    """Per look: the window mean of the seasonal curve (a parabola in day of year, fitted to the
    looks' landscape medians of all years) over the curve's value on the look's day."""
    ok = np.isfinite(med) & (frac >= min_clear)
    out = np.ones(med.shape, np.float64)
    if ok.sum() < min_looks or np.unique(doy[ok]).size < 3:
        return out
    coef = np.polyfit(doy[ok].astype(np.float64), med[ok].astype(np.float64), 2)
    curve = np.polyval(coef, doy.astype(np.float64))
    mean = np.polyval(coef, np.arange(start_doy, end_doy + 1, dtype=np.float64)).mean()
    good = curve > 0.05
    out[good] = np.clip(mean / curve[good], 0.8, 1.25)
    return np.round(out, 4)  # the same factors whatever the chunking (sums and medians in another order)


def _subsample(da: xr.DataArray, max_px: int) -> xr.DataArray:
    """A regular subsample of at most ``max_px`` pixels, in one spatial chunk."""
    h, w = da.sizes["y"], da.sizes["x"]
    step = max(1, int(np.ceil(np.sqrt(h * w / max_px))))
    sub = da.isel(y=slice(None, None, step), x=slice(None, None, step))
    return sub.chunk({"y": -1, "x": -1}) if sub.chunks is not None else sub


def _spatial_median(da: xr.DataArray) -> xr.DataArray:
    """The median over (y, x) of each other index (in one chunk), NaN where none is finite, without
    NumPy's all-NaN warning (a look cloudy all over is not news; silencing warnings is not
    thread-safe under dask)."""
    flat = da.stack(px=("y", "x"))
    out = xr.apply_ufunc(nanmedian_time, flat, input_core_dims=[["px"]], dask="parallelized",
                         output_dtypes=[da.dtype])
    return out.chunk({d: -1 for d in out.dims}) if out.chunks is not None else out


def _double_logistic(d, base, amp, sos, eos, ks, ke):
    return base + amp * (1 / (1 + np.exp(-(d - sos) / ks)) - 1 / (1 + np.exp(-(d - eos) / ke)))


def _season_fit(med: np.ndarray, frac: np.ndarray, doy: np.ndarray, year: np.ndarray, other: np.ndarray, *,
                years: np.ndarray, start_doy: int, end_doy: int, fit_doy: tuple[int, int], min_clear: float,
                min_looks: int, robust_scale: float) -> np.ndarray:
    """Per year, the mean of the year's seasonal curve over weekly days of ``[start_doy, end_doy]``;
    then the curve's dormant level and the offset of the ``other`` mission's looks (``len(years) + 2``
    values).

    The curve is a double logistic fitted to the look medians of all years (inside ``fit_doy``),
    with one offset for the looks where ``other`` is true (a second mission's bandpass), then its
    amplitude, start and end of season refitted to each year's own looks: the shape-model fitting
    of Sakamoto et al. (2010, *Remote Sens. Environ.* 114, 2146-2159). Each fit is least squares,
    then a Cauchy loss of scale ``robust_scale`` started from it, so a look whose median an
    undetected haze or cloud edge moved weighs little. NaN for a year with fewer than ``min_looks``
    usable looks, and everywhere if the fit fails; the offset is NaN unless both missions have
    ``min_looks`` usable looks."""
    from scipy.optimize import least_squares

    out = np.full(len(years) + 2, np.nan)
    ok = np.isfinite(med) & (frac >= min_clear) & (doy >= fit_doy[0]) & (doy <= fit_doy[1])
    if ok.sum() < 3 * min_looks:
        return out
    d, m, g = doy[ok].astype(np.float64), med[ok].astype(np.float64), other[ok].astype(bool)
    two = int(min(g.sum(), (~g).sum()) >= min_looks)
    days = np.arange(start_doy, end_doy + 1, 7, dtype=np.float64)

    def fit(f, p0, dd, mm, bounds=(-np.inf, np.inf)):
        """Least squares, then the Cauchy loss from there (a robust fit started from the plain one)."""
        lo, hi = np.broadcast_to(bounds[0], len(p0)), np.broadcast_to(bounds[1], len(p0))
        p = p0
        for loss in ("linear", "cauchy"):
            with np.errstate(over="ignore", invalid="ignore"):  # exp() of far-off trial parameters
                r = least_squares(lambda q: f(dd, *q) - mm, p, bounds=bounds, max_nfev=2000, loss=loss,
                                  f_scale=robust_scale)
            if not (r.success and np.isfinite(r.x).all()):
                return None
            p = np.clip(r.x, np.nextafter(lo, hi), np.nextafter(hi, lo))  # strictly inside for the next start
        return r.x

    def with_offset(dd, base, amp, sos, eos, ks, ke, off=0.0):
        return _double_logistic(dd, base, amp, sos, eos, ks, ke) + off * g

    p0 = [float(np.percentile(m, 5)), float(np.ptp(m)), start_doy - 5.0, end_doy + 5.0, 8.0, 10.0] + [0.0] * two
    p = fit(with_offset, p0, d, m)
    if p is None or not (p[1] > 0 and 0 < p[4] < 60 and 0 < p[5] < 60):
        return out
    base, amp, sos, eos, ks, ke = p[:6]
    off = p[6] if two else 0.0
    m = m - off * g
    out[-2], out[-1] = base, (off if two else np.nan)

    def curve(dd, a, s0, e0):
        return _double_logistic(dd, base, a, s0, e0, ks, ke)
    for i, y in enumerate(years):
        sel = year[ok] == y
        if sel.sum() < min_looks:
            continue
        q = fit(curve, [amp, sos, eos], d[sel], m[sel], bounds=([0.3 * amp, sos - 30, eos - 30], [2 * amp, sos + 30, eos + 30]))
        if q is not None:
            with np.errstate(over="ignore"):
                out[i] = curve(days, *q).mean()
    return np.round(out, 5)  # the same whatever the chunking


def _other_mission(ndvi: xr.DataArray) -> xr.DataArray:
    """True on the Landsat looks of a cube that has Sentinel-2 looks too (from ``platform``)."""
    if "platform" not in ndvi.coords:
        return xr.zeros_like(ndvi["time"], dtype=bool)
    plat = np.char.lower(ndvi["platform"].values.astype(str))
    landsat = np.char.startswith(plat, "landsat")
    return xr.DataArray(landsat & np.char.startswith(plat, "sentinel").any(), dims="time", coords={"time": ndvi["time"]})


def season_levels(ndvi: xr.DataArray, *, start_doy: int, end_doy: int, fit_doy: tuple[int, int] = (60, 330),
                  max_px: int = 250_000, min_clear: float = 0.3, min_looks: int = 4,
                  robust_scale: float = 0.01) -> xr.Dataset:
    """The landscape's mean NDVI over the growing season ``[start_doy, end_doy]`` of each year, from
    its own seasonal curve of that year, green-up and senescence timing included. Lazy.

    Each look's median NDVI over a regular subsample of at most ``max_px`` pixels (looks with less
    than ``min_clear`` of it clear, or outside ``fit_doy``, are left out: the snow-free season) gives
    the landscape's curve. A double logistic is fitted to all years, then refitted per year
    (amplitude, start and end of season) and averaged over weekly days of the window.

    Two things move a look's median that are not the season, and the fit takes both off:

    - **The mission.** Harmonized Landsat's NIR is OLI B5, on the scale of Sentinel-2's narrow NIR
      (B8A), while Sentinel-2's NDVI takes the broad B08: Landsat looks read a steppe's NDVI about
      0.01-0.02 higher. With looks of both (``platform``), the fit has one offset for the Landsat
      looks, and the levels are on the Sentinel-2 scale.
    - **A look the cloud mask got wrong** (thin haze, a cloud's edge) reads a few hundredths low.
      Each fit is refined from its least-squares solution with a Cauchy loss of scale
      ``robust_scale`` (NDVI), which takes little from such a look.

    Returns
    -------
    Dataset with ``level`` (year,): NaN for a year with fewer than ``min_looks`` usable looks;
    ``dormant`` (): the curve's base, the landscape's NDVI out of season (NaN if the fit failed); and
    ``landsat_offset`` (): the Landsat looks' NDVI minus Sentinel-2's (NaN without ``min_looks``
    usable looks of each).
    """
    sub = _subsample(ndvi, max_px)
    med = _spatial_median(sub)
    frac = sub.notnull().mean(("y", "x"))
    if frac.chunks is not None:
        frac = frac.chunk({"time": -1})
    years = np.unique(ndvi["time"].dt.year.values)
    both = xr.apply_ufunc(_season_fit, med, frac, ndvi["time"].dt.dayofyear, ndvi["time"].dt.year, _other_mission(ndvi),
                          input_core_dims=[["time"]] * 5, output_core_dims=[["k"]], dask="parallelized",
                          output_dtypes=[np.float64], dask_gufunc_kwargs={"output_sizes": {"k": len(years) + 2}},
                          kwargs={"years": years, "start_doy": start_doy, "end_doy": end_doy,
                                  "fit_doy": tuple(fit_doy), "min_clear": min_clear, "min_looks": min_looks,
                                  "robust_scale": robust_scale})
    level = both.isel(k=slice(0, len(years))).rename(k="year").assign_coords(year=years)
    level.attrs = {"long_name": f"landscape growing-season mean NDVI (day {start_doy}-{end_doy}) from its seasonal curve",
                   "units": "1"}
    dormant = both.isel(k=-2, drop=True)
    dormant.attrs = {"long_name": "landscape NDVI out of season (the seasonal curve's base)", "units": "1"}
    offset = both.isel(k=-1, drop=True)
    offset.attrs = {"long_name": "Landsat looks' NDVI minus Sentinel-2's, fitted with the seasonal curve", "units": "1"}
    return xr.Dataset({"level": level, "dormant": dormant, "landsat_offset": offset})


def to_season_levels(gs_ndvi: xr.DataArray, level: xr.DataArray, *, max_px: int = 250_000) -> xr.DataArray:
    """Each year's values of ``gs_ndvi`` (year, y, x) moved together so that their landscape median
    (over a subsample of at most ``max_px`` pixels) is ``level`` of that year (:func:`season_levels`).

    The peak window's values say how each pixel stands against the landscape; the curve says how
    the year's season went as a whole, its green-up timing included, which a few clear looks a year
    cannot say pixel by pixel. A year without a level keeps its values. Lazy."""
    here = _spatial_median(_subsample(gs_ndvi, max_px))
    out = (gs_ndvi + (level.reindex(year=gs_ndvi["year"]) - here).fillna(0.0)).astype(np.float32)
    out.name, out.attrs = gs_ndvi.name, dict(gs_ndvi.attrs)
    return out


def sampling_factors(ndvi: xr.DataArray, *, start_doy: int, end_doy: int, max_px: int = 250_000,
                     min_looks: int = 6, min_clear: float = 0.3) -> xr.DataArray:
    """Per look (time,): the factor that brings an NDVI seen on that day of the window to the window's
    mean, from the landscape's own seasonal curve.

    A year whose clear looks fall early or late in the window would otherwise read low, and a
    year-to-year change in *when* the sky was clear becomes a trend. The curve is a parabola in day
    of year fitted, over all years, to each look's median NDVI (on a regular subsample of at most
    ``max_px`` pixels; looks with less than ``min_clear`` of it clear are left out). With fewer than
    ``min_looks`` looks, every factor is 1. Factors are clamped to [0.8, 1.25].
    """
    sub = _subsample(ndvi, max_px)
    med = sub.median(("y", "x"), skipna=True)
    frac = sub.notnull().mean(("y", "x"))
    if med.chunks is not None:
        med, frac = med.chunk({"time": -1}), frac.chunk({"time": -1})
    doy = ndvi["time"].dt.dayofyear
    out = xr.apply_ufunc(_shape_factors, med, frac, doy, input_core_dims=[["time"]] * 3,
                         output_core_dims=[["time"]], dask="parallelized", output_dtypes=[np.float64],
                         kwargs={"start_doy": start_doy, "end_doy": end_doy, "min_looks": min_looks,
                                 "min_clear": min_clear})
    out.name = "sampling_factor"
    return out


def drop_low_outliers(ndvi: xr.DataArray, *, below: float = 0.07, span_years: int = 1) -> xr.DataArray:
    """NaN where a look reads more than ``below`` under the median of the same pixel's looks in its
    year and the ``span_years`` years on each side.

    Cloud masks leak: thin cloud, haze and shadow edges that the scene classification misses lower
    NDVI by 0.1-0.4 on a few percent of the pixels of many scenes (on the demo steppes, 2-3% of the
    peak-window looks), while a clear look's noise is about 0.02. With a few clear looks a year, one
    such look moves a pixel's yearly mean by several hundredths, more than a degrading pasture loses
    in a year, and the Mann-Kendall test loses the trend. A one-sided test (clouds only lower NDVI),
    against a median of about three years of looks, as temporal outlier filters of NDVI series do
    (BISE: Viovy et al. 1992, *Int. J. Remote Sens.* 13, 1585-1590). A pixel with a single look in
    the span keeps it. Lazy; ``time`` is put in one chunk.
    """
    yr = ndvi["time"].dt.year
    years = np.unique(yr.values)
    if years.size == 0:
        return ndvi
    if ndvi.chunks is not None:
        ndvi = ndvi.chunk({"time": -1})
    # nanmedian_time: NumPy's nanmedian values, without its all-NaN warning (a pixel cloudy all
    # summer is not news; silencing warnings is not thread-safe under dask)
    refs = [xr.apply_ufunc(nanmedian_time, ndvi.isel(time=np.nonzero(np.abs(yr.values - y) <= span_years)[0]),
                           input_core_dims=[["time"]], dask="parallelized", output_dtypes=[ndvi.dtype])
            for y in years]
    ref = xr.concat(refs, dim="year").assign_coords(year=years)
    ref_t = ref.isel(year=xr.DataArray(np.searchsorted(years, yr.values), dims="time")).drop_vars("year")
    out = ndvi.where(~(ndvi < ref_t - below))
    out.attrs = dict(ndvi.attrs)
    return out


def growing_season_ndvi(ndvi: xr.DataArray, *, start_doy: int, end_doy: int, min_obs: int = 1,
                        normalize_sampling: bool = True, drop_below: float | None = 0.07,
                        drop_span_years: int = 1) -> xr.DataArray:
    """Mean NDVI of the clear observations inside the growing-season window, per year and pixel.

    Parameters
    ----------
    ndvi : DataArray (time, y, x)
        NaN where not clear.
    start_doy, end_doy : int
        The window (see :func:`processors.seasons.season_windows`).
    min_obs : int
        Fewer clear observations in a year give NaN for that year. The default, 1, keeps a year
        seen only once: over 5-7 years, a missing year costs the Mann-Kendall test more power
        than one look's noise (at n = 5, a single reversed pair already puts p above 0.05), and
        cloudy summers often leave a pixel one clear peak-season look.
    normalize_sampling : bool
        Scale each look by :func:`sampling_factors` first, so that the yearly means do not depend
        on which days of the window happened to be clear.
    drop_below, drop_span_years : float or None, int
        Then leave out the looks that read more than ``drop_below`` under the median of the
        pixel's (scaled) looks of the year and ``drop_span_years`` years on each side: cloud-mask
        leaks (:func:`drop_low_outliers`). None keeps every look.

    Returns
    -------
    DataArray (year, y, x), float32, unit 1; every year that has a look, in the window or not.
    """
    inside = in_window(ndvi["time"], start_doy, end_doy)
    all_years = np.unique(ndvi["time"].dt.year.values)
    win = ndvi.isel(time=np.nonzero(inside.values)[0])
    if normalize_sampling and win.sizes["time"]:
        f = sampling_factors(win, start_doy=start_doy, end_doy=end_doy)
        win = (win * f).astype(np.float32)
    if drop_below is not None and win.sizes["time"]:
        win = drop_low_outliers(win, below=drop_below, span_years=drop_span_years)
    if win.sizes["time"]:
        g = win.groupby("time.year")
        mean = g.mean("time", skipna=True)
        count = win.notnull().groupby("time.year").sum("time")
        out = mean.where(count >= min_obs).reindex(year=all_years)
    else:
        out = xr.full_like(ndvi.isel(time=0, drop=True), np.nan).expand_dims(year=all_years)
    out = out.astype(np.float32)
    out.name = "gs_ndvi"
    out.attrs = {"long_name": f"mean growing-season NDVI (day {start_doy}-{end_doy})", "units": "1"}
    return out


def grassland_trend(gs_ndvi: xr.DataArray, *, p_max: float = 0.05, slope_per_year: float = 0.005) -> xr.Dataset:
    """Trend class per pixel, as Trends.Earth's productivity trajectory.

    Degrading: p <= ``p_max`` and slope <= -``slope_per_year`` NDVI per year; improving is the
    symmetric case; everything else is stable.

    Returns
    -------
    Dataset with ``slope`` (NDVI per year), ``p_value``, ``trend_class`` (int8: -1, 0, 1; the
    ``flag_values`` attribute names them) over (y, x).
    """
    mk = mann_kendall(gs_ndvi, dim="year")
    sig = mk["p_value"] <= p_max
    klass = xr.where(sig & (mk["slope"] <= -slope_per_year), DEGRADING,
                     xr.where(sig & (mk["slope"] >= slope_per_year), IMPROVING, STABLE))
    klass = klass.where(mk["n"] >= 3, STABLE).astype(np.int8)
    klass.attrs = {"long_name": "grassland productivity trend", "flag_values": [-1, 0, 1],
                   "flag_meanings": "degrading stable improving", "units": "1"}
    return xr.Dataset({"slope": mk["slope"], "p_value": mk["p_value"], "trend_class": klass})


def _pixel_fit(x: np.ndarray, yr: np.ndarray, common: np.ndarray, dormant: np.ndarray, med: np.ndarray) -> np.ndarray:
    """Per pixel over the last axis: level, own linear trend per year, sensitivity to the landscape's
    swings, residual sd and number of years (``(..., 5)``); see :func:`modelled_trend`."""
    x = np.asarray(x, np.float64)
    e = np.asarray(common, np.float64)
    d, m = float(dormant), float(med)
    fin = np.isfinite(x)
    with np.errstate(invalid="ignore", divide="ignore"):  # (a pixel never seen: NaN, without a warning)
        mu0 = np.where(fin, x, 0.0).sum(-1) / fin.sum(-1)
    if np.isfinite(d) and np.isfinite(m) and m - d > 0.05:
        sens = np.clip((mu0 - d) / (m - d), 0.0, 3.0)
    else:  # no dormant level: the swings are taken as additive
        sens = np.ones(x.shape[:-1])
    r = x - sens[..., None] * e
    ok = np.isfinite(r)
    cnt = ok.sum(-1)
    r0 = np.where(ok, r, 0.0)
    sy, syy = (ok * yr).sum(-1), (ok * yr ** 2).sum(-1)
    sr, syr = r0.sum(-1), (r0 * yr).sum(-1)
    den = cnt * syy - sy ** 2
    good = (cnt >= 3) & (den > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(good, (cnt * syr - sy * sr) / np.where(good, den, 1.0), np.nan)
        mu = np.where(good, (sr - t * sy) / np.maximum(cnt, 1), np.nan)
        res = np.sqrt(np.where(ok, (r - mu[..., None] - t[..., None] * yr) ** 2, 0.0).sum(-1) / np.maximum(cnt - 2, 1))
    res = np.where(good, res, np.nan)
    return np.stack([mu, t, sens, res, cnt.astype(np.float64)], axis=-1)


def _gaussian_ratio_np(num: np.ndarray, den: np.ndarray, guide: np.ndarray, sigma: float, width: float) -> np.ndarray:
    from scipy import ndimage

    num, den, guide = (np.asarray(v, np.float64) for v in (num, den, guide))
    if not width > 0:
        gn = ndimage.gaussian_filter(num, sigma, mode="nearest")
        gd = ndimage.gaussian_filter(den, sigma, mode="nearest")
    else:  # a bilateral grid along the guide: tent weights on fixed centres (the same in every chunk)
        gn, gd = np.zeros(num.shape), np.zeros(num.shape)
        for c in np.arange(np.floor(guide.min() / width), np.ceil(guide.max() / width) + 1) * width:
            a = np.clip(1.0 - np.abs(guide - c) / width, 0.0, None)
            if a.any():
                gn += a * ndimage.gaussian_filter(num * a, sigma, mode="nearest")
                gd += a * ndimage.gaussian_filter(den * a, sigma, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gd > 1e-9, gn / gd, 0.0)


def _gaussian_ratio(num: xr.DataArray, den: xr.DataArray, guide: xr.DataArray, sigma: float,
                    width: float) -> xr.DataArray:
    """Gaussian-weighted sum (``sigma`` pixels) of ``num`` over that of ``den`` (y, x); 0 where
    ``den`` is nowhere near. With ``width`` > 0, neighbours whose ``guide`` differs
    from the pixel's weigh less, none past 1.5 x ``width`` (the bilateral grid of Chen, Paris &
    Durand 2007, with tent weights on centres ``width`` apart). Chunk by chunk with the overlap the
    kernel needs: the same values as in one piece."""
    num, den, guide = (v.transpose("y", "x") for v in (num, den, guide))
    if num.chunks is None and den.chunks is None and guide.chunks is None:
        return num.copy(data=_gaussian_ratio_np(num.values, den.values, guide.values, sigma, width))
    import dask.array as dsa

    depth = int(4.0 * sigma + 0.5)  # scipy's kernel radius (truncate 4)
    nd = num.data if num.chunks is not None else dsa.from_array(num.values, chunks=-1)
    dd, gd = ((v.data if v.chunks is not None else dsa.from_array(v.values, chunks=-1)).rechunk(nd.chunks)
              for v in (den, guide))
    if min(min(c) for c in nd.chunks) < depth:
        size = max(256, 2 * depth)
        nd, dd, gd = nd.rechunk(size), dd.rechunk(size), gd.rechunk(size)
    out = dsa.map_overlap(_gaussian_ratio_np, nd, dd, gd, depth=depth, boundary="none", dtype=np.float64,
                          sigma=sigma, width=width)
    return xr.DataArray(out, coords=num.coords, dims=num.dims)


def modelled_trend(gs_ndvi: xr.DataArray, dormant: xr.DataArray | float = np.nan, *, p_max: float = 0.05,
                   slope_per_year: float = 0.005, sigma: float = 1.5, misfit: float = 3.0, min_years: int = 4,
                   cover_width: float = 0.4, max_px: int = 250_000) -> xr.Dataset:
    """Trend class per pixel from its modelled productivity series: :func:`grassland_trend` on the
    series each pixel would show without the sensor's and the sampling's noise.

    With 5-7 yearly values of a few clear looks each, a pixel's own series carries noise of about
    0.012 NDVI a year (0.006 of it spatially correlated, from the clouds and the looks each pixel
    happened to get), as large as the swings the whole landscape shares from year to year and
    as the trend at a degrading patch's edge. A test on the noisy series finds the patch's core
    and misses its edge by an amount that depends on the noise. Here each pixel's series is
    described by three numbers: its level, its own linear trend and its sensitivity to the
    landscape's swings:

        gs(year) = level + trend * (year - mean year) + sens * common(year) + noise

    ``common`` is the landscape's median of ``gs_ndvi`` per year (see :func:`to_season_levels`).
    ``sens`` is the pixel's green amplitude over the landscape's: (mean - dormant) / (landscape
    median - dormant), clipped to [0, 3]; a pixel greener than the landscape swings more with its
    wet and dry years, bare ground and water not at all (1 for all without a ``dormant`` level).
    The trend is fitted by least squares on the years the pixel was seen; then, as degradation is
    a loss of a share of the green amplitude, the neighbourhood's rate of that loss is taken (the
    least-squares fit of trend = rate x sens over a Gaussian of ``sigma`` pixels, among those that
    fit the model) and times the pixel's own ``sens``: a 5 ha patch is 500 pixels, the noise is per
    pixel, and a pond or a camp's bare ground beside a degrading meadow takes none of its trend.
    The neighbours are those of the pixel's own cover, told by their ``sens``: one whose ``sens``
    differs by half of ``cover_width`` weighs about half, and none past 1.5 times it (a bilateral
    weight; 0 turns it off). A crop field beside the meadow, greener and harvested, has a rate of
    its own: with the Gaussian alone, the corner pixels of a field that a degrading pasture wraps
    took the pasture's rate times the field's larger ``sens``.
    The Theil-Sen slope and the Mann-Kendall test are then run on the model's series (every year),
    as Trends.Earth does on the observed one: the class the pixel's series would have without the
    noise. Its ``p_value`` is that series', not a test of the pixel's own noisy values.

    Pixels that do not fit the model keep the test on their observed series: those seen fewer than
    ``min_years`` years, and those whose residual sd is more than ``misfit`` times the landscape's
    median (fields harvested on other days each year, water that comes and goes).

    Returns
    -------
    Dataset with ``slope``, ``p_value``, ``trend_class`` (as :func:`grassland_trend`) and
    ``modelled`` (bool: the pixel's class is from the modelled series) over (y, x).
    """
    years = gs_ndvi["year"].values.astype(np.float64)
    yr = xr.DataArray(years - years.mean(), dims="year", coords={"year": gs_ndvi["year"]})
    if gs_ndvi.chunks is not None:
        gs_ndvi = gs_ndvi.chunk({"year": -1})
    # the landscape's numbers come from the subsample alone: no chunk's fit waits for the others'
    sub = _subsample(gs_ndvi, max_px)
    common = _spatial_median(sub)
    dormant = xr.DataArray(dormant) if not isinstance(dormant, xr.DataArray) else dormant
    n_sub = sub.notnull().sum("year")
    med = _spatial_median(sub.fillna(0.0).sum("year") / n_sub.where(n_sub > 0))  # pixels never seen: NaN
    fit = partial(xr.apply_ufunc, _pixel_fit, input_core_dims=[["year"], ["year"], ["year"], [], []],
                  output_core_dims=[["k"]], dask="parallelized", output_dtypes=[np.float64],
                  dask_gufunc_kwargs={"output_sizes": {"k": 5}})
    f_all = fit(gs_ndvi, yr, common, dormant, med)
    level, trend, sens, res, cnt = (f_all.isel(k=i, drop=True) for i in range(5))
    f_sub = fit(sub, yr, common, dormant, med)
    res_med = _spatial_median(f_sub.isel(k=3, drop=True).where(f_sub.isel(k=4, drop=True) >= min_years))
    fits = (cnt >= min_years) & (res <= misfit * res_med) & trend.notnull()
    if sigma > 0:  # the local least-squares fit of trend = rate * sens: the neighbours' relative rate
        w = fits.astype(np.float64)
        rate = _gaussian_ratio((w * trend * sens).fillna(0.0), (w * sens ** 2).fillna(0.0), sens.fillna(0.0),
                               sigma, cover_width)
        trend_s = rate * sens
    else:
        trend_s = trend
    series = (level + trend_s * yr + sens * common).transpose("year", ...)
    series.attrs = dict(gs_ndvi.attrs)
    modelled = grassland_trend(series, p_max=p_max, slope_per_year=slope_per_year)
    observed = grassland_trend(gs_ndvi, p_max=p_max, slope_per_year=slope_per_year)
    out = xr.Dataset({k: xr.where(fits, modelled[k], observed[k]).astype(observed[k].dtype).assign_attrs(observed[k].attrs)
                      for k in ("slope", "p_value", "trend_class")})
    out["trend_class"] = out["trend_class"].astype(np.int8).assign_attrs(observed["trend_class"].attrs)
    out["modelled"] = fits.assign_attrs(long_name="trend class from the modelled series (the pixel fits the model)")
    return out


def ndvi_anomaly_z(gs_ndvi: xr.DataArray, *, year: int, min_years: int = 3) -> xr.DataArray:
    """Z-score of ``year``'s growing-season NDVI against the earlier years (mean and std), per pixel."""
    base = gs_ndvi.sel(year=gs_ndvi["year"] < year)
    cur = gs_ndvi.sel(year=year)
    mu, sd = base.mean("year"), base.std("year", ddof=1)
    z = ((cur - mu) / sd.where(sd > 1e-6)).where(base.count("year") >= min_years).astype(np.float32)
    z.name = "ndvi_anomaly_z"
    z.attrs = {"long_name": f"growing-season NDVI anomaly of {year} (z-score vs earlier years)", "units": "1"}
    return z
