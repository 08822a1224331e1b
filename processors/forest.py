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

import numpy as np
import pandas as pd
import xarray as xr

from .seasons import in_window

__all__ = ["forest_baseline", "seasonal_anomaly", "loss_status", "NONE", "PROBABLE", "CONFIRMED", "WITHDRAWN",
           "STATUS_NAMES"]

NONE, PROBABLE, CONFIRMED, WITHDRAWN = 0, 1, 2, 3
STATUS_NAMES = {NONE: "none", PROBABLE: "probable", CONFIRMED: "confirmed", WITHDRAWN: "withdrawn"}


def forest_baseline(ndvi: xr.DataArray, nbr: xr.DataArray, *, years: list[int], start_doy: int, end_doy: int,
                    quantile: float = 0.2, min_ndvi: float = 0.65, min_nbr: float = 0.45, min_obs: int = 3
                    ) -> xr.DataArray:
    """Forest mask from the growing seasons of ``years`` (use the latest baseline years).

    A pixel is forest when, over its clear growing-season observations of those years, the
    ``quantile`` of NDVI is at least ``min_ndvi`` and that of NBR at least ``min_nbr``.
    Canopy keeps both high all season; crops are bare at its start, meadows have a low NBR.

    Returns
    -------
    DataArray (y, x), bool.
    """
    sel = in_window(ndvi["time"], start_doy, end_doy) & ndvi["time"].dt.year.isin(years)
    nd, nb = ndvi.sel(time=sel), nbr.sel(time=sel)
    if nd.chunks is not None:
        nd, nb = nd.chunk({"time": -1}), nb.chunk({"time": -1})
    q_nd = nd.quantile(quantile, dim="time", skipna=True).drop_vars("quantile")
    q_nb = nb.quantile(quantile, dim="time", skipna=True).drop_vars("quantile")
    n = nd.notnull().sum("time")
    out = (q_nd >= min_ndvi) & (q_nb >= min_nbr) & (n >= min_obs)
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
        med = base.median("time", skipna=True).where(base.notnull().sum("time") >= min_baseline)
        out.append((med - cur).astype(np.float32))
    res = xr.concat(out, dim="time", coords="different", compat="equals", join="outer")
    res.name = f"{index.name or 'index'}_drop"
    res.attrs = {"long_name": f"drop of {index.name or 'the index'} below its same-season baseline (±{window_days} d)",
                 "units": "1"}
    return res


def _status_block(anom: np.ndarray, trig: np.ndarray, t_days: np.ndarray, confirm: int, of_next: int,
                  within_days: float):
    """State machine over the last axis (time). anom: 1 anomalous, 0 normal, NaN unobserved;
    trig: 1 where an anomalous observation may start an event."""
    shape = anom.shape[:-1]
    status = np.zeros(shape, np.int8)
    first = np.full(shape, np.nan)
    cand = np.full(shape, np.nan)  # day of the current probable detection
    seen = np.zeros(shape, np.int16)  # clear observations after it
    hits = np.zeros(shape, np.int16)  # anomalous ones among them
    for k in range(anom.shape[-1]):
        a = anom[..., k]
        obs = np.isfinite(a)
        hit = obs & (a > 0.5)
        t = t_days[k]
        pending = status == PROBABLE
        # observations of a pending detection, within the confirmation window
        inwin = pending & obs & (t - cand <= within_days)
        seen = np.where(inwin, seen + 1, seen)
        hits = np.where(inwin & hit, hits + 1, hits)
        confirmed = pending & (hits >= confirm)
        expired = pending & ~confirmed & ((seen >= of_next) | (obs & (t - cand > within_days)))
        status = np.where(confirmed, CONFIRMED, status)
        status = np.where(expired, WITHDRAWN, status)
        first = np.where(expired, np.nan, first)
        # a new probable detection: the first anomalous clear observation of a pixel not already in an event
        new = hit & (trig[..., k] > 0.5) & ((status == NONE) | (status == WITHDRAWN)) & ~expired
        status = np.where(new, PROBABLE, status)
        cand = np.where(new, t, cand)
        first = np.where(new, k, first)  # the index of the observation: exact times are mapped back outside
        seen = np.where(new, 0, seen)
        hits = np.where(new, 0, hits)
    return status, first


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
    t = pd.DatetimeIndex(anomalous["time"].values)
    t_days = ((t - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)).values.astype(np.float64)
    trig = xr.ones_like(anomalous) if trigger is None else trigger.fillna(0)
    a, trig = xr.align(anomalous, trig, join="exact")
    if a.chunks is not None or trig.chunks is not None:
        a, trig = a.chunk({"time": -1}), trig.chunk({"time": -1})
    status, first = xr.apply_ufunc(
        _status_block, a, trig, input_core_dims=[["time"], ["time"]], output_core_dims=[[], []],
        kwargs={"t_days": t_days, "confirm": confirm, "of_next": of_next, "within_days": within_days},
        dask="parallelized", output_dtypes=[np.int8, np.float64])
    times = anomalous["time"].values.astype("datetime64[ns]")

    def _to_time(idx: np.ndarray) -> np.ndarray:
        ok = np.isfinite(idx)
        out = np.full(idx.shape, np.datetime64("NaT", "ns"))
        out[ok] = times[idx[ok].astype(np.int64)]
        return out

    first_dt = xr.apply_ufunc(_to_time, first, dask="parallelized", output_dtypes=["datetime64[ns]"])
    status.attrs = {"long_name": "forest disturbance status", "flag_values": [0, 1, 2, 3],
                    "flag_meanings": "none probable confirmed withdrawn", "units": "1"}
    first_dt.attrs = {"long_name": "first anomalous clear observation of the current event"}
    return xr.Dataset({"status": status, "first_detected": first_dt})
