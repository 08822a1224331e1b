"""Each year's landscape level from its own growing-season curve (processors.grassland.season_levels),
and the yearly values moved to it (processors.grassland.to_season_levels).

The peak window's means say how each pixel stands against the landscape, but not how the year's
season went as a whole: a green-up ten days late lowers the season's mean NDVI by a few hundredths
while the peak window barely sees it. Those year-to-year swings, common to the whole landscape,
decide where a 7-point Mann-Kendall test crosses p = 0.05."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from processors.grassland import _double_logistic, growing_season_ndvi, season_levels, to_season_levels

SEASON = (157, 254)  # season_windows(49).growing_*
PEAK = (177, 250)
YEARS = range(2020, 2027)
SHIFT = {2020: -4.0, 2021: 6.0, 2022: 0.0, 2023: 10.0, 2024: -8.0, 2025: 3.0, 2026: -1.0}  # green-up, days
AMP = {2020: 0.45, 2021: 0.47, 2022: 0.43, 2023: 0.46, 2024: 0.44, 2025: 0.48, 2026: 0.45}


def _curve(doy, y):
    return _double_logistic(np.asarray(doy, float), 0.25, AMP[y], 150 + SHIFT[y], 262 + SHIFT[y] / 2, 8.0, 9.0)


def _truth(y):
    """The season's mean over weekly days of the window, as season_levels takes it."""
    return _curve(np.arange(SEASON[0], SEASON[1] + 1, 7), y).mean()


def _landscape(shape=(30, 40), cloud=0.3, seed=0):
    """A steppe whose pixels follow the landscape's curve times a level of their own (0.9-1.1), seen
    every 5 days from April to October with ``cloud`` of each look clouded at random."""
    rng = np.random.default_rng(seed)
    times = pd.DatetimeIndex([d for y in YEARS for d in pd.date_range(f"{y}-04-01", f"{y}-10-31", freq="5D")])
    level = rng.uniform(0.9, 1.1, shape)
    data = np.empty((len(times),) + shape, np.float32)
    for k, t in enumerate(times):
        v = _curve(t.dayofyear, t.year) * level + rng.normal(0, 0.01, shape)
        v[rng.random(shape) < cloud] = np.nan
        data[k] = v
    return xr.DataArray(data, dims=("time", "y", "x"), coords={"time": times}), level


def test_each_year_s_level_is_its_season_s_mean(backend):
    nd, level = _landscape()
    if backend == "dask":
        nd = nd.chunk({"time": 40, "y": 15, "x": 20})
    lev = season_levels(nd, start_doy=SEASON[0], end_doy=SEASON[1])
    got = lev["level"]
    assert got.dims == ("year",) and list(got["year"].values) == list(YEARS)
    want = np.array([_truth(y) for y in YEARS]) * np.median(level)
    np.testing.assert_allclose(got.values, want, atol=0.004)
    # the curve's base: the landscape's NDVI out of season (0.25 times the median pixel's level)
    assert abs(float(lev["dormant"]) - 0.25 * np.median(level)) < 0.01
    # the year-to-year swings are the timing's: up to 0.035 apart
    assert np.ptp(want) > 0.03
    # one mission only (no ``platform`` here): no offset to fit
    assert np.isnan(float(lev["landsat_offset"]))


def _two_missions(nd, *, landsat_offset=0.015, haze=-0.06, seed=2):
    """The looks shared between Sentinel-2 and Landsat, Landsat more often from 2023 (Landsat 9
    joining), its NDVI ``landsat_offset`` higher (OLI B5 on the B8A scale against Sentinel-2's B08);
    and one look of each summer that the cloud mask let through under a thin haze (``haze``
    lower all over)."""
    rng = np.random.default_rng(seed)
    t = pd.DatetimeIndex(nd["time"].values)
    landsat = rng.random(len(t)) < np.where(t.year >= 2023, 0.5, 0.15)
    plat = np.where(landsat, "landsat-8", "sentinel-2a")
    hazy = np.zeros(len(t), bool)
    for y in YEARS:
        hazy[rng.choice(np.nonzero((t.year == y) & (t.dayofyear >= 170) & (t.dayofyear <= 230))[0])] = True
    shift = np.where(landsat, landsat_offset, 0.0) + np.where(hazy, haze, 0.0)
    return (nd + xr.DataArray(shift, dims="time", coords={"time": nd["time"]})).assign_coords(platform=("time", plat))


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_landsat_looks_and_a_missed_haze_do_not_move_the_levels(backend):
    """The fit takes the Landsat looks' offset off (the levels are on the Sentinel-2 scale), and a
    hazy look the mask missed weighs little (Cauchy loss)."""
    nd, level = _landscape(seed=3)
    nd = _two_missions(nd)
    if backend == "dask":
        nd = nd.chunk({"time": 40, "y": 15, "x": 20})
    lev = season_levels(nd, start_doy=SEASON[0], end_doy=SEASON[1]).compute()
    want = np.array([_truth(y) for y in YEARS]) * np.median(level)
    np.testing.assert_allclose(lev["level"].values, want, atol=0.003)
    assert abs(float(lev["landsat_offset"]) - 0.015) < 0.003  # 0.0168 here
    # Landsat alone: nothing to offset against (the curve itself is fitted: the NaN is not a failed fit)
    only = nd.isel(time=np.nonzero(np.char.startswith(nd["platform"].values.astype(str), "landsat"))[0])
    alone = season_levels(only, start_doy=SEASON[0], end_doy=SEASON[1])
    assert np.isnan(float(alone["landsat_offset"])) and np.isfinite(alone["level"].values).all()


def test_numpy_and_dask_give_the_same_levels():
    nd, _ = _landscape()
    a = season_levels(nd, start_doy=SEASON[0], end_doy=SEASON[1]).compute()
    b = season_levels(nd.chunk({"time": 33, "y": 7, "x": 11}), start_doy=SEASON[0], end_doy=SEASON[1]).compute()
    xr.testing.assert_identical(a, b)


def test_all_cloud_and_too_few_looks_give_nan():
    nd, _ = _landscape()
    none = season_levels(nd * np.nan, start_doy=SEASON[0], end_doy=SEASON[1])
    assert np.isnan(none["level"].values).all() and np.isnan(float(none["dormant"]))
    # 2023 seen on three looks only: no curve of its own
    t = pd.DatetimeIndex(nd["time"].values)
    keep = (t.year != 2023) | (t.dayofyear.isin(t[t.year == 2023].dayofyear[:3]))
    got = season_levels(nd.isel(time=np.nonzero(keep)[0]), start_doy=SEASON[0], end_doy=SEASON[1])["level"]
    assert np.isnan(got.sel(year=2023).item()) and np.isfinite(got.drop_sel(year=2023).values).all()


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_the_yearly_values_follow_the_season_s_course(backend):
    """The peak window's yearly landscape medians hardly move with a late green-up; moved to the
    season's levels they are the season's means (the pixels keep their places)."""
    nd, level = _landscape()
    if backend == "dask":
        nd = nd.chunk({"time": 40, "y": 15, "x": 20})
    peak = growing_season_ndvi(nd, start_doy=PEAK[0], end_doy=PEAK[1], drop_below=None).compute()
    moved = to_season_levels(growing_season_ndvi(nd, start_doy=PEAK[0], end_doy=PEAK[1], drop_below=None),
                             season_levels(nd, start_doy=SEASON[0], end_doy=SEASON[1])["level"]).compute()
    want = np.array([_truth(y) for y in YEARS]) * np.median(level)
    med = lambda g: np.array([np.nanmedian(g.sel(year=y).values) for y in YEARS])  # noqa: E731
    err_peak = med(peak) - want
    err_moved = med(moved) - want
    assert np.std(err_peak) > 0.008  # the peak window's common error varies by year
    assert np.std(err_moved) < 0.002
    # every year moved as a whole: each pixel's place against the others is the same
    np.testing.assert_allclose((moved - peak).std(("y", "x")).values, 0, atol=1e-6)


def test_a_year_without_a_curve_keeps_its_values():
    nd, _ = _landscape()
    t = pd.DatetimeIndex(nd["time"].values)
    # 2021 seen only inside the peak window (three looks): no curve of its own
    in21 = np.nonzero(t.year == 2021)[0]
    drop = [i for i in in21 if not (PEAK[0] <= t[i].dayofyear <= PEAK[0] + 12)]
    nd = nd.drop_isel(time=drop)
    peak = growing_season_ndvi(nd, start_doy=PEAK[0], end_doy=PEAK[1], drop_below=None)
    moved = to_season_levels(peak, season_levels(nd, start_doy=SEASON[0], end_doy=SEASON[1])["level"])
    np.testing.assert_array_equal(moved.sel(year=2021).values, peak.sel(year=2021).values)
    assert not np.array_equal(moved.sel(year=2023).values, peak.sel(year=2023).values)


def test_the_offset_is_fitted_on_a_cube_read_back_from_zarr(tmp_path):
    """The nightly flow reads its looks from the Zarr cube: ``platform`` comes back as strings of
    another dtype, and the fit still knows its Landsat looks."""
    nd, _ = _landscape(seed=4)
    nd = _two_missions(nd)
    nd.rename("ndvi").to_dataset().to_zarr(tmp_path / "c.zarr", zarr_format=2)  # as the cube store writes
    back = xr.open_zarr(tmp_path / "c.zarr")["ndvi"]
    a = season_levels(nd, start_doy=SEASON[0], end_doy=SEASON[1]).compute()
    b = season_levels(back, start_doy=SEASON[0], end_doy=SEASON[1]).compute()
    assert np.isfinite(float(b["landsat_offset"]))
    xr.testing.assert_allclose(a, b)
