"""A fire first seen by a 30 m Landsat look: the post-fire NBR's 10 m detail from a later Sentinel-2
look (processors.coarse). The Landsat look is built as the loader sees it: each 30 m pixel the area
mean of 3 x 3 Sentinel-2 pixels (its edges at 15 m mod 30, so off the 10 m grid's 3 x 3 blocks by
one pixel), on the narrow NIR, put on the 10 m grid by nearest neighbour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from processors.burn import SEVERITY_BREAKS
from processors.chain import ChainThresholds
from processors.coarse import coarse_refine_plan, refine_coarse_severity
from processors.forest import CONFIRMED

BANDS = ("blue", "green", "red", "nir", "nir08", "swir16", "swir22")
FOREST = np.array([0.020, 0.045, 0.022, 0.330, 0.345, 0.160, 0.070])
CHAR = np.array([0.030, 0.035, 0.040, 0.060, 0.080, 0.140, 0.130])  # broad NIR darker than narrow on char
H = W = 31
T_L, T_S = pd.Timestamp("2026-06-22T02:30"), pd.Timestamp("2026-06-30T02:20")


def _nbr(r):
    return (r[3] - r[6]) / (r[3] + r[6])


def _scene(gap_days: float = 8.0, cloud_mate: bool = False, char: np.ndarray = CHAR):
    rng = np.random.default_rng(11)
    sev = np.zeros((H, W))
    sev[6:26, 5:27] = rng.uniform(0.2, 1.0, (20, 22))  # patchy at 10 m
    refl = FOREST[:, None, None] * (1 - sev) + char[:, None, None] * sev  # (band, y, x), after the fire
    # Landsat: 3 x 3 area means with the blocks starting at row/column 1, copied back to their 10 m pixels
    land = refl.copy()
    for r0 in range(-2, H, 3):
        for c0 in range(-2, W, 3):
            ys, xs = slice(max(r0, 0), max(r0 + 3, 0)), slice(max(c0, 0), max(c0 + 3, 0))
            if land[:, ys, xs].size:
                land[:, ys, xs] = refl[:, ys, xs].mean(axis=(1, 2), keepdims=True)
    land[3] = land[4]  # OLI has the narrow NIR only
    t_s = T_L + pd.Timedelta(days=gap_days)
    s2 = refl.copy()
    if cloud_mate:
        s2[:, 10, 10] = np.nan  # one 10 m pixel of a 30 m pixel under cloud at the Sentinel-2 look
    looks = xr.Dataset({b: (("time", "y", "x"), np.stack([land[i], s2[i]]).astype(np.float32)) for i, b in enumerate(BANDS)},
                       coords={"time": [T_L, t_s], "platform": ("time", ["landsat-9", "sentinel-2b"])})
    pre = _nbr(FOREST)
    burned = sev > 0
    dnbr = np.where(burned, pre - _nbr(land), np.nan).astype(np.float32)
    truth = np.where(burned, pre - _nbr(refl), np.nan)  # Key & Benson's broad NIR at 10 m
    sev_cls = np.where(burned, np.digitize(dnbr, SEVERITY_BREAKS), -1).astype(np.int8)
    layers = xr.Dataset({"forest": (("y", "x"), np.ones((H, W), bool)),
                         "burn_status": (("y", "x"), np.where(burned, CONFIRMED, 0).astype(np.int8)),
                         "burn_first": (("y", "x"), np.where(burned, np.datetime64(T_L, "ns"), np.datetime64("NaT", "ns"))),
                         "dnbr": (("y", "x"), dnbr), "severity": (("y", "x"), sev_cls)})
    return layers, looks, truth, burned


def _classes(d):
    return np.digitize(d, SEVERITY_BREAKS)


def test_the_sentinel2_detail_restores_the_10m_severity():
    layers, looks, truth, burned = _scene()
    plan = coarse_refine_plan(layers, looks["time"].values, looks["platform"].values)
    assert plan.looks == [0, 1] and plan.rows == slice(6, 26)
    out = refine_coarse_severity(layers, looks)
    before, after = layers["dnbr"].values[burned], out["dnbr"].values[burned]
    assert np.abs(before - truth[burned]).mean() > 0.05  # the 30 m look blurs and reads the narrow NIR
    # exact where the burn is whole under each 30 m pixel's mates (char the same at both looks)
    np.testing.assert_allclose(after, truth[burned], atol=1e-5)
    assert (out["severity"].values[burned] == _classes(truth[burned])).all()
    assert (_classes(before) == _classes(truth[burned])).mean() < 0.8
    assert (out["severity"].values[~burned] == -1).all() and np.isnan(out["dnbr"].values[~burned]).all()


def test_a_cloudy_mate_a_near_or_a_late_look_leave_the_value():
    layers, looks, truth, burned = _scene(cloud_mate=True)
    out = refine_coarse_severity(layers, looks)
    # the pixels within 2 px of the cloudy one (a cloud's edge), the 30 m pixel over rows 10-12 and
    # columns 10-12 among them, keep the 30 m value
    blk = np.zeros_like(burned)
    blk[8:13, 8:13] = True
    np.testing.assert_array_equal(out["dnbr"].values[blk], layers["dnbr"].values[blk])
    np.testing.assert_allclose(out["dnbr"].values[burned & ~blk], truth[burned & ~blk], atol=1e-5)
    th = ChainThresholds()
    for gap in (th.burn_post_fine_days - 1, th.burn_post_coarse_days + 1):  # the upgrade's look already; too late
        layers, looks, _, _ = _scene(gap_days=gap)
        out = refine_coarse_severity(layers, looks, thresholds=th)
        np.testing.assert_array_equal(out["dnbr"].values, layers["dnbr"].values)


def test_pixels_first_seen_at_10m_are_not_touched():
    layers, looks, _, burned = _scene()
    layers["burn_first"] = layers["burn_first"].where(~burned, np.datetime64(T_S, "ns"))
    assert coarse_refine_plan(layers, looks["time"].values, looks["platform"].values).looks == []
    out = refine_coarse_severity(layers, looks)
    np.testing.assert_array_equal(out["dnbr"].values, layers["dnbr"].values)


@pytest.mark.parametrize("band_rows", [4, 7, 1024])
def test_band_by_band_equals_the_whole_grid(band_rows):
    """The flows' helper loads the looks band by band with a halo of 2 rows: the same values."""
    from flows.pipeline import refine_coarse

    layers, looks, _, _ = _scene()
    whole = refine_coarse_severity(layers, looks)
    series = looks.chunk({"y": 5})  # lazy, as the cube is
    got = refine_coarse(layers.copy(deep=True), series, ChainThresholds(), band_rows=band_rows)
    np.testing.assert_array_equal(got["dnbr"].values, whole["dnbr"].values)
    np.testing.assert_array_equal(got["severity"].values, whole["severity"].values)


def test_lazy_looks_are_refused():
    layers, looks, _, _ = _scene()
    with pytest.raises(TypeError, match="compute it"):
        refine_coarse_severity(layers, looks.chunk({"y": 8}))


def test_the_work_is_confined_to_the_fire_s_box_with_the_same_values():
    """A small fire in a wide landscape (and a halo row above the layers' rows): the refinement works
    in the box around the 30 m detections only, and gives exactly the values of the fire's own scene."""
    layers, looks, truth, burned = _scene()
    ref = refine_coarse_severity(layers, looks)
    top, (y0, x0), (hh, ww) = 2, (37, 101), (90, 160)

    def pad_looks(a, fill):
        out = np.broadcast_to(fill, (a.shape[0], hh + top, ww)).astype(np.float32).copy()
        out[:, top + y0:top + y0 + H, x0:x0 + W] = a
        return out

    big_looks = xr.Dataset({b: (("time", "y", "x"), pad_looks(looks[b].values, np.float32(FOREST[i])))
                            for i, b in enumerate(BANDS)}, coords=looks.coords)

    def pad_layer(v, fill):
        out = np.full((hh, ww), fill, dtype=v.dtype)
        out[y0:y0 + H, x0:x0 + W] = v
        return out

    big = xr.Dataset({"forest": (("y", "x"), pad_layer(layers["forest"].values, True)),
                      "burn_status": (("y", "x"), pad_layer(layers["burn_status"].values, np.int8(0))),
                      "burn_first": (("y", "x"), pad_layer(layers["burn_first"].values, np.datetime64("NaT", "ns"))),
                      "dnbr": (("y", "x"), pad_layer(layers["dnbr"].values, np.float32(np.nan))),
                      "severity": (("y", "x"), pad_layer(layers["severity"].values, np.int8(-1)))})
    out = refine_coarse_severity(big, big_looks, top=top)
    win = (slice(y0, y0 + H), slice(x0, x0 + W))
    np.testing.assert_array_equal(out["dnbr"].values[win], ref["dnbr"].values)
    np.testing.assert_array_equal(out["severity"].values[win], ref["severity"].values)
    rest = np.ones((hh, ww), bool)
    rest[win] = False
    assert np.isnan(out["dnbr"].values[rest]).all() and (out["severity"].values[rest] == -1).all()
    assert not np.array_equal(ref["dnbr"].values[burned], layers["dnbr"].values[burned])  # it did refine


def test_the_nightly_flow_keeps_each_band_s_detail_until_its_inputs_change(tmp_path):
    """With a cube store, a band's detail is saved beside the cube and reused while its detections,
    forest mask, looks and thresholds are the same (the looks are not read again); a changed
    detection in a band recomputes that band; a changed dNBR (a later look's upgrade) is refined
    with the kept detail."""
    import dask
    import dask.array as da

    from flows.pipeline import refine_coarse
    from outputs.cube import CubeStore

    def _boom():
        raise AssertionError("the looks were read again")

    layers, looks, _, burned = _scene()
    th = ChainThresholds()
    store = CubeStore(str(tmp_path / "forest.zarr"))
    series = looks.chunk({"y": 5})
    poison = series.copy()
    for b in BANDS:
        poison[b] = (("time", "y", "x"), da.from_delayed(dask.delayed(_boom)(), looks[b].shape, np.float32))
    run = lambda lay, ds: refine_coarse(lay.copy(deep=True), ds, th, band_rows=7, store=store, year=2026)  # noqa: E731

    first = run(layers, series)
    np.testing.assert_array_equal(first["dnbr"].values, refine_coarse_severity(layers, looks)["dnbr"].values)
    assert len(list((tmp_path / "forest.state").glob("coarse-detail-2026-rows*.npz"))) == 3  # rows 6-26 in bands of 7
    again = run(layers, poison)  # nothing changed: no look is read
    np.testing.assert_array_equal(again["dnbr"].values, first["dnbr"].values)
    np.testing.assert_array_equal(again["severity"].values, first["severity"].values)

    upgraded = layers.copy(deep=True)
    upgraded["dnbr"] = upgraded["dnbr"] + np.float32(0.01)
    np.testing.assert_array_equal(run(upgraded, poison)["dnbr"].values,
                                  refine_coarse_severity(upgraded, looks)["dnbr"].values)

    moved = layers.copy(deep=True)
    moved["burn_first"][20, 10] = np.datetime64(T_S, "ns")  # a pixel of the last band: first seen at 10 m
    with pytest.raises(AssertionError, match="read again"):
        run(moved, poison)
    got = run(moved, series)
    np.testing.assert_array_equal(got["dnbr"].values, refine_coarse_severity(moved, looks)["dnbr"].values)
    assert not np.array_equal(got["dnbr"].values[burned], first["dnbr"].values[burned], equal_nan=True)


REGROW = np.array([0.040, 0.080, 0.050, 0.300, 0.310, 0.250, 0.150])  # herbs and resprouts on the char
EARLY = FOREST * np.array([1.0, 1.0, 1.1, 0.9, 0.9, 1.0, 1.05])  # the forest 12 days before: greening up
#: char whose broad NIR is 6% under its narrow one (the demo's, USGS-typical; CHAR's 25% is a stress
#: case for the bracket): the pair's fit is on the narrow NIR, the only one Landsat has, and carries
#: over to the broad one as far as regrowth moves both alike (with CHAR, the pair reads 0.05 light)
CHAR_S2 = np.array([0.030, 0.035, 0.040, 0.075, 0.080, 0.140, 0.130])


def _pair_scene(regrow: float = 0.2, before_days: float = 12.0, after_days: float = 20.0, fire_px: slice = slice(5, 27)):
    """:func:`_scene`'s fire (with :data:`CHAR_S2`) and two more Sentinel-2 looks: one
    ``before_days`` before the Landsat detection (the forest greening up: NBR 0.05 lower than at
    the fire), and the later one ``after_days`` after it, by when herbs cover ``regrow`` of the char."""
    layers, looks, truth, burned = _scene(char=CHAR_S2)
    if fire_px != slice(5, 27):  # a smaller fire: the rest unburned
        keep = np.zeros_like(burned)
        keep[6:26, fire_px] = True
        burned &= keep
        truth = np.where(burned, truth, np.nan)
        layers["burn_status"] = layers["burn_status"].where(burned, 0)
        layers["burn_first"] = layers["burn_first"].where(burned)
        layers["dnbr"] = layers["dnbr"].where(burned)
    # the chain's 30 m dNBR when its pre-fire look was Landsat's too: on the narrow NIR both sides
    land_post = looks.isel(time=0)
    n8 = lambda r8, r12: (r8 - r12) / (r8 + r12)  # noqa: E731
    narrow = n8(FOREST[4], FOREST[6]) - n8(land_post["nir08"].values, land_post["swir22"].values)
    layers["dnbr"] = layers["dnbr"].copy(data=np.where(burned, narrow, np.nan).astype(np.float32))
    rng = np.random.default_rng(11)
    frac = np.zeros((H, W))
    frac[6:26, 5:27] = rng.uniform(0.2, 1.0, (20, 22))  # the same draw as _scene's
    frac = np.where(burned, frac, 0.0)
    char_now = CHAR_S2 * (1 - regrow) + REGROW * regrow
    after = FOREST[:, None, None] * (1 - frac) + char_now[:, None, None] * frac
    before = np.broadcast_to(EARLY[:, None, None], after.shape)
    t_pre, t_post = T_L - pd.Timedelta(days=before_days), T_L + pd.Timedelta(days=after_days)
    extra = xr.Dataset({b: (("time", "y", "x"), np.stack([before[i], after[i]]).astype(np.float32)) for i, b in enumerate(BANDS)},
                       coords={"time": [t_pre, t_post], "platform": ("time", ["sentinel-2a", "sentinel-2b"])})
    land = looks.isel(time=[0])
    return layers, xr.concat([extra.isel(time=[0]), land, extra.isel(time=[1])], dim="time"), truth, burned


def test_a_sentinel2_pair_scaled_to_the_detection_gives_the_fire_s_10m_severity():
    """With a clear Sentinel-2 look before the fire, dNBR is the pair's at 10 m, fitted to the 30 m
    detection's level: the regrowth by the later look (20% of the char covered) and the green-up
    since the earlier one are taken off. Without the fit the pair reads every burn too light; the
    bracket alone (no earlier look) carries the 30 m look's level, off by its blur."""
    from processors.coarse import coarse_detail, pair_gains, pair_sums

    layers, looks, truth, burned = _pair_scene()
    plan = coarse_refine_plan(layers, looks["time"].values, looks["platform"].values)
    assert plan.looks == [0, 1, 2]
    out = refine_coarse_severity(layers, looks)
    err = out["dnbr"].values[burned] - truth[burned]
    agree = (out["severity"].values[burned] == _classes(truth[burned])).mean()
    assert abs(err.mean()) < 0.02 and agree >= 0.92
    detail = coarse_detail(layers, looks)
    assert (detail[1][burned] - truth[burned]).mean() < -0.1  # the pair as it is
    (g, b), = pair_gains(pair_sums(layers, detail)).values()
    assert g > 1.1  # regrowth lowered the later dNBR in proportion
    bracket = refine_coarse_severity(layers, looks.isel(time=[1, 2]))
    assert (bracket["severity"].values[burned] == _classes(truth[burned])).mean() < agree - 0.05


def test_with_no_regrowth_the_fit_is_exact():
    """Char unchanged between the fire and the later look: the fit's gain is 1, its offset the
    green-up between the earlier look and the fire, and the pair gives the truth."""
    from processors.coarse import coarse_detail, pair_gains, pair_sums

    layers, looks, truth, burned = _pair_scene(regrow=0.0)
    (g, b), = pair_gains(pair_sums(layers, coarse_detail(layers, looks))).values()
    assert g == pytest.approx(1.0, abs=1e-6) and b == pytest.approx(_nbr(FOREST) - _nbr(EARLY), abs=0.002)
    np.testing.assert_allclose(refine_coarse_severity(layers, looks)["dnbr"].values[burned], truth[burned], atol=0.003)


def test_a_fire_too_small_for_the_fit_keeps_the_bracket():
    layers, looks, truth, burned = _pair_scene(fire_px=slice(5, 9))  # 80 px, under PAIR_MIN_PX
    from processors.coarse import PAIR_MIN_PX

    assert burned.sum() < PAIR_MIN_PX
    np.testing.assert_array_equal(refine_coarse_severity(layers, looks)["dnbr"].values,
                                  refine_coarse_severity(layers, looks.isel(time=[1, 2]))["dnbr"].values)


def test_the_later_look_may_come_later_for_the_pair_than_for_the_bracket():
    th = ChainThresholds()
    layers, looks, truth, burned = _pair_scene(after_days=th.burn_post_coarse_days + 5, regrow=0.3)
    out = refine_coarse_severity(layers, looks, thresholds=th)
    assert (out["severity"].values[burned] == _classes(truth[burned])).mean() >= 0.9
    layers, looks, _, _ = _pair_scene(after_days=th.burn_pair_post_days + 1)
    np.testing.assert_array_equal(refine_coarse_severity(layers, looks, thresholds=th)["dnbr"].values,
                                  layers["dnbr"].values)  # too late for either


@pytest.mark.parametrize("band_rows", [4, 7])
def test_the_pair_s_fit_is_the_whole_grid_s_band_by_band(band_rows):
    from flows.pipeline import refine_coarse

    layers, looks, _, _ = _pair_scene()
    whole = refine_coarse_severity(layers, looks)
    got = refine_coarse(layers.copy(deep=True), looks.chunk({"y": 5}), ChainThresholds(), band_rows=band_rows)
    np.testing.assert_allclose(got["dnbr"].values, whole["dnbr"].values, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got["severity"].values, whole["severity"].values)
