"""Grassland degradation: growing-season NDVI per year, its trend, the current anomaly, classes."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .forest import nanmedian_time
from .seasons import in_window
from .trends import mann_kendall

__all__ = ["growing_season_ndvi", "sampling_factors", "drop_low_outliers", "season_levels", "grassland_trend", "ndvi_anomaly_z",
           "DEGRADING", "STABLE", "IMPROVING"]

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
    """The median over (y, x) of each other index, NaN where none is finite, without NumPy's
    all-NaN warning (a look cloudy all over is not news; silencing warnings is not thread-safe
    under dask)."""
    flat = da.stack(px=("y", "x"))
    return xr.apply_ufunc(nanmedian_time, flat, input_core_dims=[["px"]], dask="parallelized",
                          output_dtypes=[da.dtype])


def _double_logistic(d, base, amp, sos, eos, ks, ke):
    return base + amp * (1 / (1 + np.exp(-(d - sos) / ks)) - 1 / (1 + np.exp(-(d - eos) / ke)))


def _season_means(med: np.ndarray, frac: np.ndarray, doy: np.ndarray, year: np.ndarray, *, years: np.ndarray,
                  start_doy: int, end_doy: int, min_clear: float, min_looks: int) -> np.ndarray:
    """Per year: the mean of the year's seasonal curve over weekly days of ``[start_doy, end_doy]``.
    The curve is a double logistic fitted to all years' look medians, then its amplitude, start and
    end of season refitted to each year's own (the shape-model fitting of Sakamoto et al. 2010).
    NaN for a year with fewer than ``min_looks`` usable looks, or everywhere if the fit fails."""
    from scipy.optimize import least_squares

    out = np.full(len(years), np.nan)
    ok = np.isfinite(med) & (frac >= min_clear) & (doy >= 60) & (doy <= 330)
    if ok.sum() < 3 * min_looks:
        return out
    d, m = doy[ok].astype(np.float64), med[ok].astype(np.float64)
    days = np.arange(start_doy, end_doy + 1, 7, dtype=np.float64)

    def fit(f, p0, dd, mm, bounds=(-np.inf, np.inf)):
        with np.errstate(over="ignore", invalid="ignore"):  # exp() of far-off trial parameters
            r = least_squares(lambda p: f(dd, *p) - mm, p0, bounds=bounds, max_nfev=2000)
        return r.x if r.success and np.isfinite(r.x).all() else None

    p0 = [float(np.percentile(m, 5)), float(np.ptp(m)), start_doy - 5.0, end_doy + 5.0, 8.0, 10.0]
    p = fit(_double_logistic, p0, d, m)
    if p is None or not (p[1] > 0 and 0 < p[4] < 60 and 0 < p[5] < 60):
        return out
    base, amp, sos, eos, ks, ke = p

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


def season_levels(ndvi: xr.DataArray, *, start_doy: int, end_doy: int, max_px: int = 250_000,
                  min_clear: float = 0.3, min_looks: int = 4) -> xr.DataArray:
    """Per year (year,): the landscape's mean NDVI over the growing season ``[start_doy, end_doy]``
    from its own seasonal curve of that year, green-up and senescence timing included.

    Each look's median NDVI over a regular subsample of at most ``max_px`` pixels (looks with less
    than ``min_clear`` of it clear are left out) gives the landscape's curve; a double logistic is
    fitted to all years, then refitted per year (amplitude, start and end of season) and averaged
    over weekly days of the window. NaN for a year with fewer than ``min_looks`` usable looks. Lazy.
    """
    sub = _subsample(ndvi, max_px)
    med = _spatial_median(sub)
    frac = sub.notnull().mean(("y", "x"))
    if med.chunks is not None:
        med, frac = med.chunk({"time": -1}), frac.chunk({"time": -1})
    years = np.unique(ndvi["time"].dt.year.values)
    out = xr.apply_ufunc(_season_means, med, frac, ndvi["time"].dt.dayofyear, ndvi["time"].dt.year,
                         input_core_dims=[["time"]] * 4, output_core_dims=[["year"]], dask="parallelized",
                         output_dtypes=[np.float64], dask_gufunc_kwargs={"output_sizes": {"year": len(years)}},
                         kwargs={"years": years, "start_doy": start_doy, "end_doy": end_doy,
                                 "min_clear": min_clear, "min_looks": min_looks})
    out = out.assign_coords(year=years)
    out.name = "season_level"
    out.attrs = {"long_name": f"landscape growing-season mean NDVI (day {start_doy}-{end_doy}) from its seasonal curve",
                 "units": "1"}
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
                        drop_span_years: int = 1, season_doy: tuple[int, int] | None = None,
                        max_px: int = 250_000) -> xr.DataArray:
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
    season_doy : (int, int), optional
        The whole growing season (:func:`processors.seasons.season_windows`' ``growing_*``). Then
        each year's values are moved together so that their landscape median (over the same
        subsample of at most ``max_px`` pixels) is that year's growing-season mean from the
        landscape's own curve (:func:`season_levels`): the window's values say how each pixel
        stands against the landscape, and the curve how the year's season went as a whole, its
        green-up timing included, which a few clear looks a year cannot say pixel by pixel. The
        year-to-year swings common to the whole landscape decide where a 7-point Mann-Kendall
        test crosses p = 0.05; taken from the peak window alone they were off by 0.005-0.012
        (sd over the years) against the demo archives' truth, and 0.002-0.006 from the curve.
        A year the curve cannot be fitted for keeps its values.

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
    if season_doy is not None and win.sizes["time"]:
        level = season_levels(ndvi, start_doy=season_doy[0], end_doy=season_doy[1], max_px=max_px)
        here = _spatial_median(_subsample(out, max_px))
        if here.chunks is not None:
            here = here.chunk({"year": -1})
        out = out + (level - here).fillna(0.0).astype(np.float32)
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
