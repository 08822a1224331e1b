from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from processors.forest import CONFIRMED, NONE, PROBABLE, WITHDRAWN, forest_baseline, loss_status, seasonal_anomaly

from .conftest import CountTasks

NAN = np.nan


def _series(rows, start="2026-05-01", step=5, backend="numpy"):
    t = pd.date_range(start, periods=len(rows[0]), freq=f"{step}D")
    a = np.array(rows, np.float32)[:, None, :]  # (pixel, 1, time)
    da = xr.DataArray(np.moveaxis(a, -1, 0), dims=("time", "y", "x"), coords={"time": t})
    return da.chunk({"y": 1}) if backend == "dask" else da, t


def test_status_machine(backend):
    rows = [
        [0, 0, 1, NAN, 1, 0, 1, 0, 0, 0],  # confirmed: 2 of the next 4 clear observations anomalous
        [0, 1, 0, 0, 0, 0, 0, 0, 0, 0],  # a one-off (haze, a cloud edge): withdrawn
        [0, 0, 0, 0, 0, 0, 0, 0, 1, NAN],  # last-night detection: still probable
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],  # nothing
        [1, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN],  # never seen again
        [0, 1, 0, 0, 0, 0, 1, 1, 1, 0],  # withdrawn, then a new event that confirms
    ]
    da, t = _series(rows, backend=backend)
    with CountTasks() as c:
        res = loss_status(da)
    assert c.n == 0
    st = res["status"].values[:, 0]
    first = res["first_detected"].values[:, 0]
    assert st.tolist() == [CONFIRMED, WITHDRAWN, PROBABLE, NONE, PROBABLE, CONFIRMED]
    assert first[0] == t[2] and np.isnat(first[1]) and first[2] == t[8] and np.isnat(first[3]) and first[5] == t[6]


def test_confirmation_window_in_days():
    rows = [[1, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 1, 1]]  # next obs 70 days later
    da, _ = _series(rows)
    assert loss_status(da, within_days=60)["status"].values.ravel()[0] in (PROBABLE, WITHDRAWN)
    assert loss_status(da, within_days=60)["status"].values.ravel()[0] != CONFIRMED
    assert loss_status(da, within_days=90)["status"].values.ravel()[0] == CONFIRMED


def _cube_years(backend):
    """Pixels: 0 forest, 1 crop (bare in June), 2 meadow (low NBR), 3 old clearing (cut in 2024)."""
    t = pd.DatetimeIndex([f"{y}-{md}" for y in (2023, 2024, 2025, 2026) for md in ("06-05", "06-25", "07-15", "08-04", "08-24")])
    ndvi = np.zeros((len(t), 1, 4), np.float32)
    nbr = np.zeros_like(ndvi)
    for k, ts in enumerate(t):
        june = ts.month == 6
        ndvi[k, 0] = [0.85, 0.25 if june else 0.85, 0.68, 0.85 if ts.year < 2024 else 0.5]
        nbr[k, 0] = [0.62, 0.05 if june else 0.6, 0.33, 0.62 if ts.year < 2024 else 0.15]
    mk = lambda a: xr.DataArray(a, dims=("time", "y", "x"), coords={"time": t})  # noqa: E731
    nd, nb = mk(ndvi), mk(nbr)
    if backend == "dask":
        nd, nb = nd.chunk({"time": 3}), nb.chunk({"time": 3})
    return nd, nb


def test_forest_baseline_excludes_crops_meadows_and_old_clearings(backend):
    nd, nb = _cube_years(backend)
    with CountTasks() as c:
        f = forest_baseline(nd, nb, years=[2024, 2025], start_doy=152, end_doy=250)
    assert c.n == 0
    assert f.values.ravel().tolist() == [True, False, False, False]


def test_forest_baseline_leaves_out_fields_bare_outside_the_growing_window(backend):
    """A field ploughed in May and harvested in September is green at every look inside the growing
    window; its bare-soil looks outside it, snow-free, leave it out. Larch's bare spring crowns do
    not read as bare soil, snow is not bare soil, and one odd look (a cloud-mask leak) is not enough."""
    dates = ("04-25", "05-15", "06-25", "07-15", "08-04", "08-24", "09-20", "10-10", "11-20")
    t = pd.DatetimeIndex([f"{y}-{md}" for y in (2023, 2024, 2025) for md in dates])
    px = {  # (NDVI, NBR, NDSI) per look: 0 larch, 1 field, 2 forest under snow in spring and autumn, 3 forest, one leak
        0: lambda md: (0.45, 0.25, -0.5) if md in ("04-25", "10-10", "11-20") else (0.85, 0.6, -0.5),
        1: lambda md: (0.2, 0.0, -0.45) if md in ("04-25", "05-15", "09-20", "10-10") else (0.85, 0.6, -0.5),
        2: lambda md: (0.1, 0.05, 0.6) if md in ("04-25", "11-20") else (0.85, 0.6, -0.5),
        3: lambda md: (0.85, 0.6, -0.5),
    }
    cube = np.array([[px[i](ts.strftime("%m-%d")) for i in range(4)] for ts in t], np.float32)  # (time, px, 3)
    cube[4, 3] = (0.15, 0.02, -0.1)  # 2023-08-04: one leak on pixel 3
    mk = lambda a: xr.DataArray(a[:, None, :], dims=("time", "y", "x"), coords={"time": t})  # noqa: E731
    nd, nb, ns = mk(cube[..., 0]), mk(cube[..., 1]), mk(cube[..., 2])
    if backend == "dask":
        nd, nb, ns = nd.chunk({"time": 4}), nb.chunk({"time": 4}), ns.chunk({"time": 4})
    kw = {"years": [2023, 2024, 2025], "start_doy": 160, "end_doy": 250}
    assert forest_baseline(nd, nb, **kw).values.ravel().tolist() == [True, True, True, True]  # the window alone
    with CountTasks() as c:
        f = forest_baseline(nd, nb, ndsi=ns, **kw)
    assert c.n == 0
    assert f.values.ravel().tolist() == [True, False, True, True]


def test_seasonal_anomaly_uses_previous_years_within_15_days(backend):
    nd, _ = _cube_years(backend)
    nd = nd.copy()
    vals = nd.values.copy()
    vals[-2, 0, 0] = 0.35  # 2026-08-04: the forest pixel is cleared
    nd = nd.copy(data=vals)
    if backend == "dask":
        nd = nd.chunk({"time": 3})
    with CountTasks() as c:
        an = seasonal_anomaly(nd, start="2026-01-01")
    assert c.n == 0
    a = an.values
    assert an.sizes["time"] == 5 and a[3, 0, 0] == pytest.approx(0.5)
    assert abs(a[0, 0, 0]) < 1e-6  # forest, no change
    # an observation with no baseline day within 15 days has no anomaly
    odd = nd.assign_coords(time=nd["time"].values + np.where(nd["time"].dt.year.values == 2026, np.timedelta64(40, "D"), np.timedelta64(0, "D")))
    assert np.isnan(seasonal_anomaly(odd, start="2026-01-01").values[-1]).all()


def test_trigger_starts_events_and_persistence_confirms():
    rows = [[0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0]]
    da, t = _series(rows)
    trig = da.copy(data=np.zeros_like(da.values))
    trig[1, 0, 0] = 1.0  # only the first pixel (y=0) had an abrupt start
    res = loss_status(da, trigger=trig)
    assert res["status"].values[:, 0].tolist() == [CONFIRMED, NONE]
    assert res["first_detected"].values[0, 0] == t[1]


def test_first_detected_is_exactly_a_time_of_the_series():
    rows = [[0, 1, 1, 1, 0]]
    t = pd.DatetimeIndex(["2026-06-01T02:21:38.200", "2026-06-06T02:21:41.933", "2026-06-11T02:21:39.1",
                          "2026-06-16T02:21:40.7", "2026-06-21T02:21:38.2"])
    da = xr.DataArray(np.array(rows, np.float32).T[:, :, None], dims=("time", "y", "x"), coords={"time": t})
    first = loss_status(da)["first_detected"].values[0, 0]
    assert first == t[1].to_datetime64()
    assert bool((da["time"] == first).any())


def test_vectorised_nanquantile_equals_numpy():
    """forest_baseline's quantile: NumPy's nanquantile loops in Python over every pixel."""
    import warnings

    from processors.forest import nanquantile_time

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for t in (1, 2, 3, 5, 20):
            a = rng.normal(size=(50, 40, t)).astype(dtype)
            a[rng.random(a.shape) < 0.4] = np.nan
            for q in (0.0, 0.2, 0.5, 1.0):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # all-NaN pixels
                    ref = np.nanquantile(a, q, axis=-1)
                got = nanquantile_time(a, q)
                assert got.dtype == dtype
                one_ulp = np.finfo(dtype).eps * np.nanmax(np.abs(a))  # of the largest value
                np.testing.assert_allclose(got, ref, rtol=0, atol=2 * one_ulp)
                assert np.array_equal(np.isnan(got), np.isnan(ref))


def test_vectorised_nanmedian_equals_numpy_exactly():
    """The same-season anomaly's baseline median: over a few values, NumPy's nanmedian goes through
    numpy.ma. Ours must give NumPy's values bit for bit (the nightly state and the season chain
    both use it, and the thresholds sit on its output)."""
    import warnings

    from processors.forest import nanmedian_time

    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        for t in (1, 2, 3, 4, 5, 8, 13):
            a = (rng.normal(size=(60, 50, t)) * 10.0 ** rng.integers(-3, 3)).astype(dtype)
            a[rng.random(a.shape) < 0.4] = np.nan
            a[0, 0] = np.nan  # a pixel with no value at all
            a[1, 1] = 0.25  # ties
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # all-NaN pixels
                ref = np.nanmedian(a, axis=-1)
            got = nanmedian_time(a)
            assert got.dtype == ref.dtype and got.shape == ref.shape
            np.testing.assert_array_equal(got, ref)  # NaN where NaN, every other value identical
