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


def _lake_scene(backend: str, *, rng_seed: int = 3, agg: int = 3, noise: float = 0.003):
    """Round ponds and a dark burn scar far from it, on a 10 m grid, seen by a sensor of ``agg`` x 10 m
    pixels (each band the area mean of its pixel: linear mixing), with a cloud over part of the shore.
    Returns (green, nir, swir16) DataArrays and the lake's true 10 m mask."""
    rng = np.random.default_rng(rng_seed)
    n = 150
    yy, xx = np.mgrid[0:n, 0:n]
    lake = np.zeros((n, n), bool)
    for cy, cx, r in ((30.3, 30.6, 14.2), (75.5, 40.2, 9.7), (60.1, 95.4, 17.3), (112.6, 60.8, 11.1)):
        lake |= (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    scar = (yy > 120) & (xx > 120)  # char: dark in NIR, far from the lake
    spec = {"water": SPECTRA["water"], "land": SPECTRA["reed_peak"], "char": SPECTRA["char"]}
    out = []
    for band in ("green", "nir", "swir16"):
        i = BANDS.index(band)
        v = np.where(lake, spec["water"][i], np.where(scar, spec["char"][i], spec["land"][i])).astype(np.float64)
        if agg > 1:  # area mean over each coarse pixel, repeated on the 10 m grid
            c = v.reshape(n // agg, agg, n // agg, agg).mean(axis=(1, 3))
            v = np.repeat(np.repeat(c, agg, 0), agg, 1)
        v = v + rng.normal(0, noise, v.shape)
        v[5:40, 80:115] = np.nan  # a cloud over the north-east shore
        out.append(xr.DataArray(v[None].astype(np.float32), dims=("time", "y", "x"),
                                coords={"y": 5000.0 - 10 * np.arange(n), "x": 300000.0 + 10 * np.arange(n)}))
    if backend == "dask":
        out = [a.chunk({"y": 40, "x": 55}) for a in out]
    return (*out, lake)


@pytest.mark.parametrize("agg", [3, 2])
def test_shore_pixels_are_water_by_their_water_fraction(backend, agg):
    from processors.water import refine_water_edges

    green, nir, swir, lake = _lake_scene(backend, agg=agg)
    plain = water_mask(mndwi(green, swir))
    refined = refine_water_edges(plain, nir, swir)
    p, r = plain.values[0], refined.values[0]
    seen = np.isfinite(p)
    truth_ha, plain_ha, refined_ha = (lake & seen).sum(), (p == 1).sum(), (r == 1).sum()
    # MNDWI alone misses the shore's mixed pixels; their water fraction puts the extent back
    assert plain_ha < 0.96 * truth_ha
    assert abs(refined_ha - truth_ha) / truth_ha < 0.015, (plain_ha, refined_ha, truth_ha)
    # only land within 30 m of mapped water changes, only to water; clouds stay NaN; the dark scar stays land
    changed = (p != r) & seen
    assert np.all(p[changed] == 0) and np.all(r[changed] == 1)
    assert np.array_equal(np.isnan(p), np.isnan(r))
    from scipy import ndimage
    assert not (changed & ~ndimage.binary_dilation(p == 1, np.ones((7, 7), bool))).any()
    assert (r[121:, 121:] == 0).all()
    assert refined.dims == plain.dims and refined.dtype == np.float32


def test_shore_refinement_is_the_same_for_any_chunking():
    from processors.water import refine_water_edges

    green, nir, swir, _ = _lake_scene("numpy", noise=0.02)  # noisy: many shore pixels near a fraction of 0.5
    two = xr.concat([green, green.isel(x=slice(None, None, -1)).assign_coords(x=green.x)], "time")
    n2 = xr.concat([nir, nir.isel(x=slice(None, None, -1)).assign_coords(x=nir.x)], "time")
    s2 = xr.concat([swir, swir.isel(x=slice(None, None, -1)).assign_coords(x=swir.x)], "time")
    plain = water_mask(mndwi(two, s2))
    ref = refine_water_edges(plain, n2, s2).values
    for chunks in ({"time": 1, "y": 40, "x": 55}, {"time": 2, "y": 17, "x": 150}, {"time": 1, "y": 150, "x": 7}):
        with CountTasks() as c:
            got = refine_water_edges(plain.chunk(chunks), n2.chunk(chunks), s2.chunk(chunks))
        assert c.n == 0  # lazy
        np.testing.assert_array_equal(got.values, ref)


def test_shore_refinement_edge_cases():
    from processors.water import refine_water_edges

    green, nir, swir, _ = _lake_scene("numpy")
    cloudy = water_mask(mndwi(green, swir)).where(False)
    assert np.isnan(refine_water_edges(cloudy, nir, swir).values).all()  # all cloud: nothing to refine
    dry = water_mask(mndwi(green, swir)) * 0  # no water: nothing changes
    np.testing.assert_array_equal(refine_water_edges(dry, nir, swir).values, dry.values)
    flat = nir * 0 + 0.1  # no contrast between water and land in either band: no pixel assigned
    w = water_mask(mndwi(green, swir))
    np.testing.assert_array_equal(refine_water_edges(w, flat, flat).values, w.values)
    with pytest.raises(ValueError, match="pass pixel_size_m"):
        refine_water_edges(w.drop_vars("x"), nir.drop_vars("x"), swir.drop_vars("x"))
