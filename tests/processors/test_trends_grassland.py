from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st
import xarray as xr

from processors.grassland import DEGRADING, IMPROVING, STABLE, grassland_trend, growing_season_ndvi, ndvi_anomaly_z
from processors.seasons import season_windows
from processors.trends import theil_sen_mk_numpy

from .conftest import CountTasks


def test_against_scipy_on_random_pixels():
    rng = np.random.default_rng(3)
    years = np.arange(2005, 2025).astype(float)
    y = rng.normal(0, 0.05, (500, years.size)) + rng.normal(0, 0.01, (500, 1)) * (years - 2005)
    y[rng.uniform(size=y.shape) < 0.1] = np.nan  # missing years
    y[:5, 5:9] = y[:5, 5:6]  # some ties
    slope, p, s, n = theil_sen_mk_numpy(y, years, continuity=False)
    for k in rng.choice(500, 60, replace=False):
        ok = np.isfinite(y[k])
        assert slope[k] == pytest.approx(st.theilslopes(y[k][ok], years[ok]).slope, abs=1e-12)
        kt = st.kendalltau(years[ok], y[k][ok], method="asymptotic")
        assert p[k] == pytest.approx(kt.pvalue, rel=1e-9, abs=1e-12)
        assert n[k] == ok.sum()


def test_too_few_values_give_nan():
    slope, p, _, _ = theil_sen_mk_numpy(np.array([[1.0, np.nan, np.nan], [np.nan] * 3]), np.arange(3.0))
    assert np.isnan(slope).all() and np.isnan(p).all()


def _gs_cube(backend):
    rng = np.random.default_rng(0)
    years = np.arange(2019, 2027)
    h, w = 20, 30
    base = 0.55 + rng.normal(0, 0.005, (len(years), h, w))
    trend = np.zeros((h, w))
    trend[:, :10] = -0.02  # degrading block
    trend[:, 20:] = 0.02  # improving block
    vals = base + trend[None] * (years - years[0])[:, None, None]
    da = xr.DataArray(vals.astype(np.float32), dims=("year", "y", "x"), coords={"year": years}, attrs={"units": "1"})
    return da.chunk({"y": 10, "x": 10}) if backend == "dask" else da


def test_grassland_classes(backend):
    gs = _gs_cube(backend)
    with CountTasks() as c:
        tr = grassland_trend(gs)
    assert c.n == 0
    k = tr["trend_class"].values
    assert (k[:, :10] == DEGRADING).all() and (k[:, 20:] == IMPROVING).all() and (k[:, 10:20] == STABLE).all()
    err = np.abs(tr["slope"].values[:, :10] + 0.02)
    assert np.median(err) < 0.001 and err.max() < 0.006  # Theil-Sen's sampling error at sd 0.005, 8 years
    assert tr["trend_class"].attrs["flag_meanings"] == "degrading stable improving"


def test_growing_season_mean_and_min_obs(backend):
    t = pd.to_datetime(["2025-05-01", "2025-07-01", "2025-08-01", "2026-07-01", "2026-10-01"])
    v = np.array([0.1, 0.6, 0.8, 0.5, 0.2], np.float32)[:, None, None] * np.ones((1, 4, 4), np.float32)
    v[1, 0, 0] = np.nan
    nd = xr.DataArray(v, dims=("time", "y", "x"), coords={"time": t})
    if backend == "dask":
        nd = nd.chunk({"time": 1})
    w = season_windows(47.0)
    gs = growing_season_ndvi(nd, start_doy=w.growing_start_doy, end_doy=w.growing_end_doy, min_obs=2)
    assert gs.sel(year=2025).values[1, 1] == pytest.approx(0.7)
    assert np.isnan(gs.sel(year=2025).values[0, 0])  # one clear observation only
    assert np.isnan(gs.sel(year=2026).values).all()  # October is outside the window
    # the default keeps a year seen once: 5-7 years are all the Mann-Kendall test has
    gs1 = growing_season_ndvi(nd, start_doy=w.growing_start_doy, end_doy=w.growing_end_doy)
    assert gs1.sel(year=2025).values[0, 0] == pytest.approx(0.8)
    assert gs1.sel(year=2025).values[1, 1] == pytest.approx(0.7)


def test_yearly_means_do_not_depend_on_which_days_were_clear(backend):
    """Stable grassland whose clear looks drift from the peak of the season towards its start, year
    by year: the plain yearly means fall (a false degradation trend); scaled by the landscape's own
    seasonal curve (sampling_factors) they stay flat, and the pixels are stable. NumPy = dask."""
    from processors.grassland import grassland_trend, sampling_factors

    rng = np.random.default_rng(4)
    start, end = 177, 250
    times, vals = [], []
    amp = rng.uniform(0.8, 1.2, (12, 14)).astype(np.float32)
    for i, year in enumerate(range(2020, 2027)):
        for doy in 216 - 4 * i + np.array([-6, -2, 3, 7, 12]):  # the clear days move earlier each year
            times.append(pd.Timestamp(year, 1, 1) + pd.Timedelta(days=int(doy) - 1))
            curve = 0.62 - 0.00009 * (doy - 215.0) ** 2
            v = (amp * curve + rng.normal(0, 0.002, amp.shape)).astype(np.float32)
            v[rng.random(amp.shape) < 0.1] = np.nan  # clouds
            vals.append(v)
    nd = xr.DataArray(np.stack(vals), dims=("time", "y", "x"), coords={"time": pd.DatetimeIndex(times)})
    if backend == "dask":
        nd = nd.chunk({"time": 5, "y": 6, "x": 7})
    plain = growing_season_ndvi(nd, start_doy=start, end_doy=end, normalize_sampling=False)
    fixed = growing_season_ndvi(nd, start_doy=start, end_doy=end)
    drift = plain.mean(("y", "x")).values
    flat = fixed.mean(("y", "x")).values
    assert drift[0] - drift[-1] > 0.02  # the sampling alone makes a decline
    assert np.ptp(flat) < 0.004, flat
    assert (grassland_trend(plain)["trend_class"].values == DEGRADING).mean() > 0.5
    assert (grassland_trend(fixed)["trend_class"].values == STABLE).mean() > 0.95
    f = sampling_factors(nd, start_doy=start, end_doy=end).values
    ref = sampling_factors(nd.compute() if backend == "dask" else nd.chunk({"y": 5}), start_doy=start, end_doy=end).values
    np.testing.assert_array_equal(f, ref)
    assert f.min() < 0.97 and f.max() > 1.03  # to the window mean: peak looks scaled down, early ones up


def test_anomaly_z():
    rng = np.random.default_rng(1)
    years = np.arange(2019, 2027)
    v = 0.55 + rng.normal(0, 0.01, (len(years), 6, 6))
    v[-1, :3] -= 0.1  # this year's drop, 10 standard deviations
    gs = xr.DataArray(v.astype(np.float32), dims=("year", "y", "x"), coords={"year": years})
    z = ndvi_anomaly_z(gs, year=2026).values
    base = v[:-1]
    np.testing.assert_allclose(z, (v[-1] - base.mean(0)) / base.std(0, ddof=1), rtol=1e-4)
    assert (z[:3] < -5).all() and (np.abs(z[3:]) < 4).all()


def test_season_windows_shift_with_latitude():
    n, s = season_windows(52.0), season_windows(43.0)
    assert n.growing_start_doy > s.growing_start_doy and n.snow_end_doy > s.snow_end_doy
    with pytest.raises(ValueError, match="outside 35-60°N"):
        season_windows(10.0)


def test_grassland_alerts_grow_significant_patches_into_weaker_evidence():
    """A degrading core (p <= 0.05) is completed with the adjacent pixels of weaker evidence
    (p <= 0.10 and slope <= -0.01/yr); weak evidence alone, or too shallow a slope, or a weak
    patch not touching a core, raises nothing. The class layer is left as the test gave it."""
    from processors.chain import grassland_alerts

    n = 80
    y = 5_300_000 - 10.0 * np.arange(n) - 5
    x = 600_000 + 10.0 * np.arange(n) + 5
    slope = np.zeros((n, n), np.float32)
    p = np.ones((n, n), np.float32)
    slope[10:40, 10:40], p[10:40, 10:40] = -0.012, 0.08  # weak ring around the core
    slope[15:35, 15:35], p[15:35, 15:35] = -0.02, 0.01  # core: 400 px = 4 ha
    slope[10:40, 38:40] = -0.008  # too shallow to join: 2 columns of the ring
    slope[55:75, 55:75], p[55:75, 55:75] = -0.02, 0.09  # weak and steep, but no core: nothing
    klass = np.where((p <= 0.05) & (slope <= -0.005), DEGRADING, STABLE).astype(np.int8)
    da = lambda a: xr.DataArray(a, dims=("y", "x"), coords={"y": y, "x": x})  # noqa: E731
    lay = xr.Dataset({"slope": da(slope), "p_value": da(p), "trend_class": da(klass)}).rio.write_crs(32650)
    a = grassland_alerts(lay, landscape_id="steppe", first_detected="2026-06-21", min_area_ha=5.0, weak_p_max=0.10)
    assert len(a) == 1 and a["n_pixels"].iloc[0] == 30 * 28  # core + ring, less the shallow columns
    assert str(a["first_detected"].iloc[0]) == "2026-06-21" and a["status"].iloc[0] == "confirmed"
    assert (lay["trend_class"].values == klass).all()
    # without the hysteresis the core alone is under the 5 ha minimum mapping unit
    assert len(grassland_alerts(lay, landscape_id="steppe", first_detected="2026-06-21", weak_p_max=0.05)) == 0
    assert len(grassland_alerts(lay, landscape_id="steppe", first_detected="2026-06-21")) == 0  # default: none
    lay["trend_class"][:] = STABLE  # no core anywhere: weak evidence alone is no alert
    assert len(grassland_alerts(lay, landscape_id="steppe", first_detected="2026-06-21", weak_p_max=0.10)) == 0


def _steppe_looks(rng, *, years=range(2020, 2027), doys=(190, 205, 220, 235), slope=-0.03, h=10, w=12):
    """Peak-window NDVI looks of a steppe: the left half declining ``slope`` a year, the right stable,
    noise 0.01; no seasonal curve (flat peak window)."""
    times, vals = [], []
    trend = np.zeros((h, w), np.float32)
    trend[:, : w // 2] = slope
    for i, year in enumerate(years):
        for doy in doys:
            times.append(pd.Timestamp(year, 1, 1) + pd.Timedelta(days=doy - 1))
            vals.append((0.62 + trend * i + rng.normal(0, 0.01, (h, w))).astype(np.float32))
    return xr.DataArray(np.stack(vals), dims=("time", "y", "x"), coords={"time": pd.DatetimeIndex(times)})


def test_drop_low_outliers_removes_cloud_leaks_only(backend):
    """A look 0.25 under the pixel's other looks (a thin-cloud leak) is dropped; one 0.04 under (noise,
    a dry week) and a steady decline of 0.03 a year are kept; a higher look is never dropped (clouds
    only lower NDVI); a pixel seen once keeps its look. NumPy = dask, lazily."""
    from processors.grassland import drop_low_outliers

    rng = np.random.default_rng(7)
    nd = _steppe_looks(rng)
    v = nd.values.copy()
    v[5, 2, 8] -= 0.25  # leak on a stable pixel
    v[9, 3, 2] -= 0.25  # leak on a declining pixel
    v[6, 4, 9] -= 0.04  # within the noise
    v[7, 5, 9] += 0.25  # too high: not a cloud
    v[:, 9, 11] = np.nan
    v[3, 9, 11] = 0.3  # the only look of this pixel
    nd = nd.copy(data=v)
    if backend == "dask":
        nd = nd.chunk({"time": 3, "y": 5, "x": 6})
    with CountTasks() as c:
        out = drop_low_outliers(nd, below=0.07)
    assert c.n == 0
    o = out.values
    dropped = np.isfinite(v) & ~np.isfinite(o)
    assert dropped[5, 2, 8] and dropped[9, 3, 2]
    assert dropped.sum() == 2, np.argwhere(dropped)
    assert o[3, 9, 11] == pytest.approx(0.3)
    if backend == "dask":
        np.testing.assert_array_equal(o, drop_low_outliers(nd.compute(), below=0.07).values)


def test_cloud_leaks_no_longer_hide_a_degrading_trend(backend):
    """Seven years of four looks each; in three years, one look of every pixel is a leak 0.3 low (as
    thin cloud at the scene edge reads). The yearly means with the leaks in lose the declining half's
    trend on many pixels and put false ones on the stable half; with them dropped (the default) every
    pixel is classed as it should be."""
    rng = np.random.default_rng(11)
    nd = _steppe_looks(rng, slope=-0.012)
    v = nd.values.copy()
    for k in (1, 14, 21):  # one look in 2020, 2023 and 2025
        v[k] -= 0.3
    nd = nd.copy(data=v)
    if backend == "dask":
        nd = nd.chunk({"time": 4, "y": 5, "x": 6})
    kept = grassland_trend(growing_season_ndvi(nd, start_doy=177, end_doy=250, drop_below=None))["trend_class"].values
    fixed = grassland_trend(growing_season_ndvi(nd, start_doy=177, end_doy=250))["trend_class"].values
    truth = np.full(kept.shape, STABLE)
    truth[:, : kept.shape[1] // 2] = DEGRADING
    assert (kept == truth).mean() < 0.75
    assert (fixed == truth).all()


def test_grassland_alerts_leave_out_pixels_that_do_not_follow_the_model():
    """A degrading patch of pixels that fit the model, and beside it a strip of a field's pixels
    that do not (their class from the observed test, degrading by chance): the alert is the
    patch's alone. Without the ``modelled`` layer (the observed test's layers), every degrading
    pixel counts."""
    from processors.chain import grassland_alerts

    n = 80
    y = 5_300_000 - 10.0 * np.arange(n) - 5
    x = 600_000 + 10.0 * np.arange(n) + 5
    klass = np.full((n, n), STABLE, np.int8)
    klass[10:40, 10:40] = DEGRADING  # 900 px = 9 ha
    klass[40:42, 10:40] = DEGRADING  # the field's edge, beside it
    modelled = np.ones((n, n), bool)
    modelled[40:55, 5:45] = False  # the field
    da = lambda a: xr.DataArray(a, dims=("y", "x"), coords={"y": y, "x": x})  # noqa: E731
    lay = xr.Dataset({"slope": da(np.where(klass == DEGRADING, -0.02, 0.0)), "p_value": da(np.full((n, n), 0.01)),
                      "trend_class": da(klass), "modelled": da(modelled)}).rio.write_crs(32650)
    a = grassland_alerts(lay, landscape_id="steppe", first_detected="2026-06-21")
    assert len(a) == 1 and a["n_pixels"].iloc[0] == 900
    b = grassland_alerts(lay.drop_vars("modelled"), landscape_id="steppe", first_detected="2026-06-21")
    assert len(b) == 1 and b["n_pixels"].iloc[0] == 960
    assert (lay["trend_class"].values == klass).all()
