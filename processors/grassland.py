"""Grassland degradation: growing-season NDVI per year, its trend, the current anomaly, classes."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .forest import nanmedian_time
from .seasons import in_window
from .trends import mann_kendall

__all__ = ["growing_season_ndvi", "sampling_factors", "drop_low_outliers", "grassland_trend", "ndvi_anomaly_z", "DEGRADING", "STABLE", "IMPROVING"]

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
    h, w = ndvi.sizes["y"], ndvi.sizes["x"]
    step = max(1, int(np.ceil(np.sqrt(h * w / max_px))))
    sub = ndvi.isel(y=slice(None, None, step), x=slice(None, None, step))
    if sub.chunks is not None:
        sub = sub.chunk({"y": -1, "x": -1})
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


def ndvi_anomaly_z(gs_ndvi: xr.DataArray, *, year: int, min_years: int = 3) -> xr.DataArray:
    """Z-score of ``year``'s growing-season NDVI against the earlier years (mean and std), per pixel."""
    base = gs_ndvi.sel(year=gs_ndvi["year"] < year)
    cur = gs_ndvi.sel(year=year)
    mu, sd = base.mean("year"), base.std("year", ddof=1)
    z = ((cur - mu) / sd.where(sd > 1e-6)).where(base.count("year") >= min_years).astype(np.float32)
    z.name = "ndvi_anomaly_z"
    z.attrs = {"long_name": f"growing-season NDVI anomaly of {year} (z-score vs earlier years)", "units": "1"}
    return z
