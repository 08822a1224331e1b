"""Grassland degradation: growing-season NDVI per year, its trend, the current anomaly, classes."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .seasons import in_window
from .trends import mann_kendall

__all__ = ["growing_season_ndvi", "grassland_trend", "ndvi_anomaly_z", "DEGRADING", "STABLE", "IMPROVING"]

DEGRADING, STABLE, IMPROVING = -1, 0, 1


def growing_season_ndvi(ndvi: xr.DataArray, *, start_doy: int, end_doy: int, min_obs: int = 1) -> xr.DataArray:
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

    Returns
    -------
    DataArray (year, y, x), float32, unit 1.
    """
    sel = ndvi.where(in_window(ndvi["time"], start_doy, end_doy))
    g = sel.groupby("time.year")
    mean = g.mean("time", skipna=True)
    count = sel.notnull().groupby("time.year").sum("time")
    out = mean.where(count >= min_obs).astype(np.float32)
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
