"""Forest loss, in the manner of DIST-ALERT: a forest baseline, a same-season anomaly, confirmation.

1. :func:`forest_baseline`: forest is where the *low* percentile of growing-season NDVI and NBR stays
   high in the latest baseline seasons. Crops (bare in June), meadows (low NBR) and clearings
   from earlier years (still regrowing) drop out. An external layer can replace it.
2. :func:`seasonal_anomaly`: for each observation, how far an index falls below the median of
   the same pixel in the previous years, within ±``window_days`` of the same day of year.
3. :func:`loss_status`: ``probable`` after the first anomalous clear observation; ``confirmed``
   once at least ``confirm`` of the next ``of_next`` clear observations within ``within_days``
   stay anomalous; ``withdrawn`` when they do not (the pixel recovered: a cloud edge, haze).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from .seasons import in_window

__all__ = ["forest_baseline", "nanquantile_time", "nanmedian_time", "seasonal_anomaly", "tile_median", "loss_status", "status_init", "status_step", "time_axes",
           "seconds_to_time", "NONE", "PROBABLE", "CONFIRMED", "WITHDRAWN",
           "STATUS_NAMES"]

NONE, PROBABLE, CONFIRMED, WITHDRAWN = 0, 1, 2, 3
STATUS_NAMES = {NONE: "none", PROBABLE: "probable", CONFIRMED: "confirmed", WITHDRAWN: "withdrawn"}


def nanquantile_time(a: np.ndarray, q: float) -> np.ndarray:
    """``np.nanquantile(a, q, axis=-1)`` (linear interpolation, to one unit in the last place),
    vectorised: NumPy's own runs a Python loop over every pixel once NaNs are present (hours on a
    10,000 x 10,000 px landscape)."""
    a = np.asarray(a)
    s = np.sort(a, axis=-1)  # NaNs sort last
    n = np.isfinite(a).sum(axis=-1)
    pos = q * (np.maximum(n, 1) - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    v_lo = np.take_along_axis(s, lo[..., None], axis=-1)[..., 0]
    v_hi = np.take_along_axis(s, hi[..., None], axis=-1)[..., 0]
    frac = (pos - lo).astype(s.dtype)
    out = np.where(frac >= 0.5, v_hi - (v_hi - v_lo) * (1 - frac), v_lo + (v_hi - v_lo) * frac)  # NumPy's lerp
    return np.where(n > 0, out, np.nan).astype(s.dtype)


def nanmedian_time(a: np.ndarray) -> np.ndarray:
    """``np.nanmedian(a, axis=-1)`` of a float array, the same values, vectorised for the few values
    of a baseline window: over a short axis NumPy takes a masked-array path through ``numpy.ma``, 2.5-3.5 x
    slower (on the processors benchmark it was 40% of the chain's time, in the same-season
    anomalies). NaN where a pixel has no value."""
    a = np.asarray(a)
    s = np.sort(a, axis=-1)  # NaNs sort last
    n = np.isfinite(a).sum(axis=-1)
    lo = np.maximum(n - 1, 0) // 2
    hi = np.minimum(np.maximum(n, 1) // 2, max(a.shape[-1] - 1, 0))
    v_lo = np.take_along_axis(s, lo[..., None], axis=-1)[..., 0]
    v_hi = np.take_along_axis(s, hi[..., None], axis=-1)[..., 0]
    out = np.where(lo == hi, v_lo, (v_lo + v_hi) / 2)  # (float32 stays float32: the mean NumPy takes)
    return np.where(n > 0, out, np.nan).astype(s.dtype)


def forest_baseline(ndvi: xr.DataArray, nbr: xr.DataArray, *, years: list[int], start_doy: int, end_doy: int,
                    quantile: float = 0.2, min_ndvi: float = 0.65, min_nbr: float = 0.45, min_obs: int = 3,
                    ndsi: xr.DataArray | None = None, bare_ndvi: float = 0.3, bare_nbr: float = 0.1,
                    snow_min_ndsi: float = 0.1, max_bare_share: float = 0.2) -> xr.DataArray:
    """Forest mask from the growing seasons of ``years`` (use the latest baseline years).

    A pixel is forest when, over its clear growing-season observations of those years, the
    ``quantile`` of NDVI is at least ``min_ndvi`` and that of NBR at least ``min_nbr``.
    Canopy keeps both high all season; crops are bare at its start, meadows have a low NBR.

    With ``ndsi`` (the normalized difference snow index, green and SWIR 1.6 µm: the MNDWI's formula),
    a pixel that reads as bare soil (NDVI < ``bare_ndvi`` and NBR < ``bare_nbr``) on at least
    ``max_bare_share`` of its snow-free clear looks of those years (NDSI < ``snow_min_ndsi``), in any
    season, is not forest either: a field whose ploughing and harvest fall outside the growing
    window, when every clear look inside it is green. A canopy, larch's bare crowns in spring
    included, never reads as bare soil once the snow is gone.

    Returns
    -------
    DataArray (y, x), bool.
    """
    sel = in_window(ndvi["time"], start_doy, end_doy) & ndvi["time"].dt.year.isin(years)
    nd, nb = ndvi.sel(time=sel), nbr.sel(time=sel)
    if nd.chunks is not None:
        nd, nb = nd.chunk({"time": -1}), nb.chunk({"time": -1})
    q_nd, q_nb = (xr.apply_ufunc(nanquantile_time, x, kwargs={"q": quantile}, input_core_dims=[["time"]],
                                 dask="parallelized", output_dtypes=[x.dtype]) for x in (nd, nb))
    n = nd.notnull().sum("time")
    out = (q_nd >= min_ndvi) & (q_nb >= min_nbr) & (n >= min_obs)
    if ndsi is not None:
        yrs = ndvi["time"].dt.year.isin(years)
        snow_free = (ndvi.notnull() & nbr.notnull() & (ndsi < snow_min_ndsi)).sel(time=yrs)
        bare = snow_free & (ndvi.sel(time=yrs) < bare_ndvi) & (nbr.sel(time=yrs) < bare_nbr)
        n_free = snow_free.sum("time")
        out = out & ~((n_free > 0) & (bare.sum("time") >= max_bare_share * n_free))
    out.name = "forest"
    out.attrs = {"long_name": f"forest baseline ({', '.join(map(str, years))})", "units": "1"}
    return out


def seasonal_anomaly(index: xr.DataArray, *, start: str, window_days: int = 15, min_baseline: int = 2
                     ) -> xr.DataArray:
    """Drop of ``index`` below its same-season baseline, for every observation from ``start`` on.

    The baseline of an observation on day-of-year ``d`` of year ``Y`` is the per-pixel median of the
    clear observations of years before ``Y`` whose day of year is within ``±window_days`` of ``d``
    (DIST-ALERT's rule). Positive values mean the index fell.

    Returns
    -------
    DataArray (time >= start, y, x), float32, NaN where the observation or its baseline is missing
    (fewer than ``min_baseline`` baseline values).
    """
    times = pd.DatetimeIndex(index["time"].values)
    mon = np.nonzero(times >= pd.Timestamp(start))[0]
    doy = times.dayofyear.values
    out = []
    for k in mon:
        d = np.abs(doy - doy[k])
        d = np.minimum(d, 365 - d)
        base_idx = np.nonzero((times.year < times[k].year) & (d <= window_days))[0]
        cur = index.isel(time=k)
        if base_idx.size == 0:
            out.append(xr.full_like(cur, np.nan, dtype=np.float32))
            continue
        base = index.isel(time=base_idx)
        if base.chunks is not None:
            base = base.chunk({"time": -1})
        med = xr.apply_ufunc(nanmedian_time, base, input_core_dims=[["time"]], dask="parallelized",
                             output_dtypes=[base.dtype]).where(base.notnull().sum("time") >= min_baseline)
        out.append((med - cur).astype(np.float32))
    res = xr.concat(out, dim="time", coords="different", compat="equals", join="outer")
    res.name = f"{index.name or 'index'}_drop"
    res.attrs = {"long_name": f"drop of {index.name or 'the index'} below its same-season baseline (±{window_days} d)",
                 "units": "1"}
    return res


def _quiet_nanmedian(a, axis=None, **kwargs):
    """``np.nanmedian`` over ``axis`` without the warning for an all-NaN window (a cloudy tile is
    not news), on NumPy or, block by block at compute time, on dask arrays."""
    if not isinstance(a, np.ndarray):  # dask: the windows' axes in one chunk, then each block
        axes = tuple(ax % a.ndim for ax in np.atleast_1d(axis))
        a = a.rechunk({ax: -1 for ax in axes})
        return a.map_blocks(_quiet_nanmedian, axis=axes, drop_axis=axes, dtype=a.dtype)
    # the all-NaN windows take a stand-in value and NaN after: ``warnings.catch_warnings`` is not
    # thread-safe, and dask's threads run this concurrently
    axes = tuple(ax % a.ndim for ax in np.atleast_1d(axis)) if axis is not None else tuple(range(a.ndim))
    empty = np.isnan(a).all(axis=axes, keepdims=True)
    if not empty.any():
        return np.nanmedian(a, axis=axis)
    out = np.nanmedian(np.where(empty, 0, a), axis=axis)
    return np.where(np.squeeze(empty, axis=axes), np.nan, out).astype(out.dtype)


def tile_median(x: xr.DataArray, tile: int, *, min_count: int = 1, of: xr.DataArray | None = None,
                min_share: float = 0.0) -> xr.DataArray:
    """Median of the finite values of ``x`` over square tiles of ``tile`` pixels, per time, broadcast
    back to the pixels of each tile; NaN where a tile has fewer than ``min_count`` values, or fewer
    than ``min_share`` of the true pixels of ``of`` (the pixels ``x`` was selected from).

    Tiles are anchored at the grid's first row and column, so any band of rows that starts at a
    multiple of ``tile`` gets the same tiles, and the same medians, as the whole grid. Lazy on dask.
    """
    dims = x.dims
    x = x.transpose(..., "y", "x")
    # a grid within one tile is one tile of its own size (no padding to the tile's size on dask)
    tile = min(tile, max(x.sizes["y"], x.sizes["x"]))
    c = x.coarsen(y=tile, x=tile, boundary="pad")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
        n = c.count()
        enough = n >= min_count
        if of is not None and min_share > 0:
            enough = enough & (n >= min_share * of.transpose(..., "y", "x").astype(np.float32)
                               .coarsen(y=tile, x=tile, boundary="pad").sum())
        # reduced through a function that silences the all-NaN warning where it runs (on dask, at compute)
        med = c.reduce(_quiet_nanmedian).where(enough).astype(np.float32).data
    ny, nx = x.sizes["y"], x.sizes["x"]
    if isinstance(med, np.ndarray):
        full = np.repeat(np.repeat(med, tile, axis=-2), tile, axis=-1)[..., :ny, :nx]
    else:  # tile by tile, then in the chunks of x (indexing would make one chunk per row and column)
        import dask.array as dsa

        full = dsa.repeat(dsa.repeat(med, tile, axis=-2), tile, axis=-1)[..., :ny, :nx]
        full = full.rechunk(x.data.chunks if x.chunks is not None else full.chunks)
    return x.copy(data=full).rename(None).assign_attrs({}).transpose(*dims)


def status_init(shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The per-pixel state of :func:`status_step`: nothing seen yet."""
    return {"status": np.zeros(shape, np.int8),
            "first": np.full(shape, np.nan),  # seconds since 1970 of the current event's first observation
            "cand": np.full(shape, np.nan),  # day of the current probable detection
            "seen": np.zeros(shape, np.int16),  # clear observations after it
            "hits": np.zeros(shape, np.int16)}  # anomalous ones among them


def status_step(st: dict[str, np.ndarray], a: np.ndarray, trig: np.ndarray, t: float, t_sec: float, *,
                confirm: int, of_next: int, within_days: float) -> np.ndarray:
    """Advance the state machine by one observation (in place). ``a``: 1 anomalous, 0 normal, NaN
    unobserved; ``trig``: 1 where an anomaly may start an event; ``t`` in days, ``t_sec`` in seconds.
    Returns where a new probable detection started at this observation.

    One step serves both the season-long scan (:func:`loss_status`) and the nightly update, which
    keeps the state between nights and feeds it only the new observations: the two agree exactly.
    """
    status, cand, seen, hits = st["status"], st["cand"], st["seen"], st["hits"]
    obs = np.isfinite(a)
    hit = obs & (a > 0.5)
    pending = status == PROBABLE
    # observations of a pending detection, within the confirmation window
    inwin = pending & obs & (t - cand <= within_days)
    seen = np.where(inwin, seen + 1, seen)
    hits = np.where(inwin & hit, hits + 1, hits)
    confirmed = pending & (hits >= confirm)
    expired = pending & ~confirmed & ((seen >= of_next) | (obs & (t - cand > within_days)))
    status = np.where(confirmed, CONFIRMED, status)
    status = np.where(expired, WITHDRAWN, status)
    first = np.where(expired, np.nan, st["first"])
    # a new probable detection: the first anomalous clear observation of a pixel not already in an event
    new = hit & (trig > 0.5) & ((status == NONE) | (status == WITHDRAWN)) & ~expired
    st["status"] = np.where(new, PROBABLE, status).astype(np.int8)
    st["cand"] = np.where(new, t, cand)
    st["first"] = np.where(new, t_sec, first)
    st["seen"] = np.where(new, 0, seen).astype(np.int16)
    st["hits"] = np.where(new, 0, hits).astype(np.int16)
    return new


def _status_block(anom: np.ndarray, trig: np.ndarray, t_days: np.ndarray, t_secs: np.ndarray, confirm: int,
                  of_next: int, within_days: float):
    """State machine over the last axis (time). anom: 1 anomalous, 0 normal, NaN unobserved;
    trig: 1 where an anomalous observation may start an event."""
    st = status_init(anom.shape[:-1])
    for k in range(anom.shape[-1]):
        status_step(st, anom[..., k], trig[..., k], t_days[k], t_secs[k], confirm=confirm, of_next=of_next,
                    within_days=within_days)
    return st["status"], st["first"]


def time_axes(times) -> tuple[np.ndarray, np.ndarray]:
    """Observation times as float days and float seconds since 1970 (the state machine's clocks)."""
    t = pd.DatetimeIndex(times)
    days = ((t - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)).values.astype(np.float64)
    secs = t.values.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    return days, secs


def seconds_to_time(first: np.ndarray, times: np.ndarray | None = None) -> np.ndarray:
    """Float seconds since 1970 (NaN: none) to datetime64[ns] (NaT). With ``times`` (the series'
    times, sorted), each value maps back to the exact time it came from (sub-second parts kept)."""
    ok = np.isfinite(first)
    out = np.full(first.shape, np.datetime64("NaT", "ns"))
    if times is None:
        out[ok] = first[ok].astype(np.int64).astype("datetime64[s]").astype("datetime64[ns]")
    else:
        times = np.asarray(times).astype("datetime64[ns]")
        secs = times.astype("datetime64[s]").astype(np.int64)
        out[ok] = times[np.searchsorted(secs, first[ok].astype(np.int64))]
    return out


def loss_status(anomalous: xr.DataArray, *, trigger: xr.DataArray | None = None, confirm: int = 2, of_next: int = 4,
                within_days: int = 60) -> xr.Dataset:
    """Per-pixel disturbance status over an anomaly series.

    Parameters
    ----------
    anomalous : DataArray (time, y, x)
        1.0 where a clear observation is anomalous, 0.0 where clear and normal, NaN where not
        observed (cloud). Time must be sorted.
    trigger : DataArray (time, y, x), optional
        1 where an anomalous observation may *start* an event (e.g. an abrupt drop since the previous
        clear look); later observations confirm by ``anomalous`` alone. Default: any anomaly.
    confirm, of_next, within_days
        ``confirmed`` once ``confirm`` of the next ``of_next`` clear observations within
        ``within_days`` days stay anomalous (GFW and DIST-ALERT confirm over 2-4 observations).

    Returns
    -------
    Dataset with ``status`` (int8: 0 none, 1 probable, 2 confirmed, 3 withdrawn) and
    ``first_detected`` (datetime64: the first anomalous observation of the current event).
    """
    t_days, t_secs = time_axes(anomalous["time"].values)
    trig = xr.ones_like(anomalous) if trigger is None else trigger.fillna(0)
    a, trig = xr.align(anomalous, trig, join="exact")
    if a.chunks is not None or trig.chunks is not None:
        a, trig = a.chunk({"time": -1}), trig.chunk({"time": -1})
    status, first = xr.apply_ufunc(
        _status_block, a, trig, input_core_dims=[["time"], ["time"]], output_core_dims=[[], []],
        kwargs={"t_days": t_days, "t_secs": t_secs, "confirm": confirm, "of_next": of_next, "within_days": within_days},
        dask="parallelized", output_dtypes=[np.int8, np.float64])
    first_dt = xr.apply_ufunc(seconds_to_time, first, kwargs={"times": anomalous["time"].values}, dask="parallelized", output_dtypes=["datetime64[ns]"])
    status.attrs = {"long_name": "forest disturbance status", "flag_values": [0, 1, 2, 3],
                    "flag_meanings": "none probable confirmed withdrawn", "units": "1"}
    first_dt.attrs = {"long_name": "first anomalous clear observation of the current event"}
    return xr.Dataset({"status": status, "first_detected": first_dt})
