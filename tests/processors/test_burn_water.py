from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from demo.physics import BANDS, SPECTRA
from processors.burn import SEVERITY_BREAKS, burn_signature, dnbr, rdnbr, severity_classes
from processors.indices import mndwi
from processors.water import otsu_threshold, water_extent_ha, water_frequency, water_mask

from .conftest import CountTasks, make_cube


def test_dnbr_of_identical_scenes_is_zero(backend):
    nbr = make_cube(backend=backend)["nir"]
    assert float(abs(dnbr(nbr, nbr)).max()) == 0.0


def test_severity_class_edges():
    d = xr.DataArray([np.nan, -0.2, 0.0999, 0.10, 0.2699, 0.27, 0.44, 0.6599, 0.66, 1.2])
    assert severity_classes(d).values.tolist() == [-1, 0, 0, 1, 1, 2, 3, 3, 4, 4]
    assert SEVERITY_BREAKS == (0.10, 0.27, 0.44, 0.66)


def test_severity_classes_lazy_and_equal_on_dask(backend):
    d = make_cube(backend=backend)["nir"] * 2 - 0.2
    with CountTasks() as c:
        k = severity_classes(d)
    assert c.n == 0 and k.dtype == np.int8
    ref = np.digitize(make_cube()["nir"].values * 2 - 0.2, SEVERITY_BREAKS)
    np.testing.assert_array_equal(k.values, ref)


def test_rdnbr():
    pre, d = xr.DataArray([0.64, 0.0, -0.25]), xr.DataArray([0.4, 0.4, 0.1])
    np.testing.assert_allclose(rdnbr(pre, d).values, [0.5, np.nan, 0.2], equal_nan=True)


def _scene(spec_name):
    v = SPECTRA[spec_name]
    return xr.Dataset({b: xr.DataArray([float(v[i])]) for i, b in enumerate(BANDS)})


def _mix(a, b, f):
    return xr.Dataset({k: (1 - f) * a[k] + f * b[k] for k in a})


@pytest.mark.parametrize("severity", [0.3, 0.6, 1.0])
def test_fire_and_clearing_have_different_signatures(severity):
    forest = _scene("larch_peak")
    burned = _mix(forest, _scene("char"), severity)
    cleared = _scene("clearing")
    assert bool(burn_signature(forest, burned).item())
    assert not bool(burn_signature(forest, cleared).item())


def _water_scene(backend, frac=0.3, seed=0):
    rng = np.random.default_rng(seed)
    h, w = 60, 60
    water = np.zeros((h, w), bool)
    water[:, : int(w * frac)] = True
    v = np.where(water, rng.normal(0.55, 0.08, (h, w)), rng.normal(-0.35, 0.1, (h, w))).astype(np.float32)
    da = xr.DataArray(v[None], dims=("time", "y", "x"))
    return (da.chunk({"y": 20, "x": 20}) if backend == "dask" else da), water


def test_otsu_separates_water(backend):
    m, truth = _water_scene(backend)
    thr = float(otsu_threshold(m).compute().item())
    assert -0.1 <= thr <= 0.3
    w = water_mask(m)
    assert (w.values[0] == truth).mean() > 0.99


def test_threshold_is_clamped_and_cloudy_scene_falls_back():
    m, _ = _water_scene("numpy")
    assert float(otsu_threshold(m + 0.5).item()) == pytest.approx(0.3)  # a shifted histogram: clamped
    cloudy = m.where(False)
    assert float(otsu_threshold(cloudy).item()) == 0.0
    assert np.isnan(water_mask(cloudy).values).all()


def test_frequency_and_extent(backend):
    a, _ = _water_scene(backend, 0.3, 0)
    b, _ = _water_scene(backend, 0.5, 1)
    c = a.where(False)  # an all-cloud scene
    m = xr.concat([a, b, c], dim="time")
    w = water_mask(m)
    f = water_frequency(w)
    assert int(f["clear"].max()) == 2 and float(f["frequency"].values[0, 0]) == 1.0
    ha = water_extent_ha(w, pixel_area_ha=0.01).values
    np.testing.assert_allclose(ha[:2], [60 * 18 * 0.01, 60 * 30 * 0.01], rtol=0.02)
    assert np.isnan(ha[2])


def test_mndwi_of_demo_spectra_is_water_positive():
    g, s = BANDS.index("green"), BANDS.index("swir16")
    wat, reed = SPECTRA["water"], SPECTRA["reed_peak"]
    assert float(mndwi(xr.DataArray([wat[g]]), xr.DataArray([wat[s]]))[0]) > 0.5
    assert float(mndwi(xr.DataArray([reed[g]]), xr.DataArray([reed[s]]))[0]) < 0


def test_drop_from_previous_skips_cloudy_looks(backend):
    import pandas as pd

    from processors.burn import drop_from_previous

    t = pd.date_range("2026-06-01", periods=5, freq="5D")
    v = np.array([0.6, np.nan, 0.2, 0.25, 0.1], np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)
    da = xr.DataArray(v, dims=("time", "y", "x"), coords={"time": t})
    if backend == "dask":
        da = da.chunk({"y": 1})
    with CountTasks() as c:
        d = drop_from_previous(da)
    assert c.n == 0 and d.dims == da.dims
    np.testing.assert_allclose(d.values[:, 0, 0], [np.nan, np.nan, 0.4, -0.05, 0.15], atol=1e-6)


def test_fire_like_and_severity_at_detection(backend):
    import pandas as pd

    from processors.burn import burn_severity_at_detection, fire_like

    t = pd.date_range("2026-06-01", periods=4, freq="5D")
    nbr = np.array([0.65, np.nan, -0.1, 0.0], np.float32)[:, None, None] * np.ones((1, 1, 2), np.float32)
    nbr[:, 0, 1] = [0.65, 0.6, 0.62, 0.6]  # unburned neighbour
    mk = lambda a: xr.DataArray(a, dims=("time", "y", "x"), coords={"time": t})  # noqa: E731
    nb = mk(nbr)
    drop = mk(np.where(np.isfinite(nbr), 0.65 - nbr, np.nan).astype(np.float32))
    swdrop = mk(np.zeros_like(nbr))
    vis = mk(np.full_like(nbr, 0.04))
    if backend == "dask":
        nb, drop, swdrop, vis = (x.chunk({"x": 1}) for x in (nb, drop, swdrop, vis))
    fl = fire_like(drop.where(nb.notnull()), swdrop.where(nb.notnull()), vis.where(nb.notnull()))
    assert fl.values[:, 0, 0].tolist()[2:] == [1.0, 1.0] and np.isnan(fl.values[1, 0, 0])
    assert (fl.values[:, 0, 1] == 0).all()
    sev = burn_severity_at_detection(nb, fl)
    assert float(sev["pre_nbr"].values[0, 0]) == pytest.approx(0.65) and float(sev["post_nbr"].values[0, 0]) == pytest.approx(-0.1)
    assert int(sev["severity"].values[0, 0]) == 4 and int(sev["severity"].values[0, 1]) == -1
    # a clearing-like change (SWIR 1.6 up, bright) is not fire
    assert (fire_like(drop, swdrop - 0.14, vis + 0.05).fillna(0).values == 0).all()


def test_severity_takes_the_post_fire_nbr_from_a_fine_look_soon_after_a_coarse_detection(backend):
    """A burn first seen by a 30 m look: the 10 m look 2 days later gives the post-fire NBR (a 30 m
    pixel averages a patchy burn); one 5 days later does not (3-day limit); a fine detection keeps
    its own look. The nightly state gives the same."""
    import pandas as pd

    from processors.burn import burn_severity_at_detection
    from processors.chain import ChainThresholds
    from processors.forest import CONFIRMED, time_axes
    from processors.incremental import ForestBurnState, advance

    t = pd.DatetimeIndex(["2026-06-10", "2026-06-20", "2026-06-22", "2026-06-25", "2026-06-28"])
    fine = xr.DataArray(np.array([True, False, True, True, False]), dims="time", coords={"time": t})
    nbr = np.full((5, 1, 3), np.nan, np.float32)
    nbr[:, 0, 0] = [0.65, 0.20, -0.15, -0.12, 0.0]  # coarse detection (06-20), fine look 2 days on
    nbr[:, 0, 1] = [0.65, 0.20, np.nan, -0.15, 0.0]  # the only fine look is 5 days on: stays coarse
    nbr[:, 0, 2] = [0.60, np.nan, -0.10, -0.12, 0.0]  # detected by the fine look itself
    det = np.zeros_like(nbr)
    det[1, 0, :2] = 1
    det[2, 0, 2] = 1
    mk = lambda a: xr.DataArray(a, dims=("time", "y", "x"), coords={"time": t})  # noqa: E731
    nb, dt_ = mk(nbr), mk(det)
    if backend == "dask":
        nb, dt_ = nb.chunk({"x": 1}), dt_.chunk({"x": 2})
    sev = burn_severity_at_detection(nb, dt_, fine=fine, post_fine_days=3)
    np.testing.assert_allclose(sev["post_nbr"].values[0], [-0.15, 0.20, -0.10])
    np.testing.assert_allclose(sev["dnbr"].values[0], [0.80, 0.45, 0.70], atol=1e-6)
    plain = burn_severity_at_detection(nb, dt_)  # without platforms: the detection's own look
    np.testing.assert_allclose(plain["post_nbr"].values[0], [0.20, 0.20, -0.10])

    # the nightly state machine (processors.incremental), fed one look at a time, agrees
    st = ForestBurnState.new((1, 3))
    st.arrays["prev_nbr_broad"][:] = np.nan
    days, secs = time_axes(t)
    burning = np.maximum.accumulate(det, axis=0)  # fire-like from the detection on
    for k in range(len(t)):
        one = xr.Dataset({
            "fire": mk(burning).isel(time=[k]), "loss": mk(np.zeros_like(nbr)).isel(time=[k]),
            "weak": mk(np.zeros_like(nbr, bool)).isel(time=[k]), "fine": fine.isel(time=[k]),
            "nbr": mk(np.where(burning > 0, -1.0, 0.6).astype(np.float32)).isel(time=[k]),
            "visible": mk(np.full_like(nbr, 0.04)).isel(time=[k]), "nbr_broad": nb.isel(time=[k]).compute()})
        advance(st, one, ChainThresholds(confirm=1, of_next=1))
    assert (st.arrays["burn_status"] == CONFIRMED).all()
    np.testing.assert_allclose(st.arrays["burn_post"][0], [-0.15, 0.20, -0.10])
    np.testing.assert_allclose(st.arrays["burn_pre"][0], [0.65, 0.65, 0.60])


def test_otsu_from_summed_histograms_equals_the_whole_scene():
    """Big scenes: histograms of bands of rows add up to the scene's; NumPy and dask agree."""
    from processors.water import _otsu_1d, mndwi_histogram, otsu_threshold

    rng = np.random.default_rng(0)
    a = np.concatenate([rng.normal(-0.4, 0.1, (4, 50, 60)), rng.normal(0.3, 0.1, (4, 50, 60))], axis=1)
    a = a.astype(np.float32)
    a[rng.random(a.shape) < 0.3] = np.nan
    a[3] = np.nan
    a[3, :5, :5] = 0.1  # too few clear pixels: the fallback
    x = xr.DataArray(a, dims=("time", "y", "x"), coords={"time": np.arange(4)})
    want = np.clip(np.nan_to_num([_otsu_1d(a[k].ravel()) for k in range(4)], nan=0.0), -0.1, 0.3).astype(np.float32)
    parts = mndwi_histogram(x.isel(y=slice(0, 40))) + mndwi_histogram(x.isel(y=slice(40, None)))
    for got in (otsu_threshold(x), otsu_threshold(x.chunk({"time": 1, "y": 32, "x": 25})).compute(),
                otsu_threshold(histogram=parts)):
        np.testing.assert_array_equal(got.values, want)
    assert want[1] != 0 and want[3] == 0
