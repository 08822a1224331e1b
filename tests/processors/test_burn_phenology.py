"""Burn severity and the fire trigger in a late green-up: the pre-fire look is two weeks before the
fire, the forest greens up 0.1 NBR in between, and dNBR (pre - post) reads a burn as lighter than it
was - a low-severity burn as no burn at all. The season's course, read from the undisturbed forest
around the fire (the dNBR offset), is taken off."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr

from processors.burn import burn_severity_at_detection, drop_from_previous, severity_classes
from processors.chain import forest_burn_layers, observation_layers
from processors.forest import CONFIRMED, tile_median
from processors.indices import nbr

BANDS = ("blue", "green", "red", "nir", "nir08", "swir16", "swir22")
PEAK = np.array([0.020, 0.045, 0.022, 0.330, 0.345, 0.160, 0.070], np.float32)  # larch in summer
DORMANT = np.array([0.035, 0.045, 0.045, 0.150, 0.160, 0.140, 0.085], np.float32)
CHAR = np.array([0.030, 0.035, 0.040, 0.075, 0.080, 0.140, 0.130], np.float32)
FIRE_DAY = pd.Timestamp("2026-06-24")
SEVERITIES = (0.25, 0.4, 0.6, 0.8, 1.0)  # fraction of the canopy burned, by columns of the scar


def _veg(t: pd.Timestamp) -> np.ndarray:
    """Larch on day ``t``: green-up centred on day 150 in the baseline years, 8 days late in 2026."""
    centre = 158 if t.year == 2026 else 150
    g = 1 / (1 + np.exp(-(t.dayofyear - centre) / 6))
    return DORMANT + (PEAK - DORMANT) * g


def _nbr(r: np.ndarray) -> np.ndarray:
    return (r[3] - r[6]) / (r[3] + r[6])  # broad NIR, as Key & Benson (and the demo's truth)


def _scene(shape=(48, 48)):
    """Larch forest, one Sentinel-2 look every 5 days from April to September of three baseline years
    and 2026; a 20 x 20 px fire on 24 June 2026, its severity rising by columns. The scar was under
    cloud for the two looks before the fire: its last clear look is 14 days before it (10 June)."""
    rng = np.random.default_rng(5)
    times = pd.DatetimeIndex([d for y in (2023, 2024, 2025, 2026)
                              for d in pd.date_range(f"{y}-04-01", f"{y}-09-30", freq="5D")])
    sev = np.zeros(shape, np.float32)
    for k, s in enumerate(SEVERITIES):
        sev[14:34, 14 + 4 * k:18 + 4 * k] = s
    scar = sev > 0
    data = np.empty((len(BANDS), len(times)) + shape, np.float32)
    for k, t in enumerate(times):
        veg = np.broadcast_to(_veg(t)[:, None, None], (len(BANDS),) + shape)
        f = sev if t >= FIRE_DAY else np.zeros(shape, np.float32)
        data[:, k] = veg * (1 - f) + CHAR[:, None, None] * f + rng.normal(0, 0.003, (len(BANDS),) + shape)
        if FIRE_DAY - pd.Timedelta(days=14) < t < FIRE_DAY:
            data[:, k][:, scar] = np.nan
    h, w = shape
    ds = xr.Dataset({b: (("time", "y", "x"), data[i]) for i, b in enumerate(BANDS)},
                    coords={"time": times, "y": 5680000 - (np.arange(h) + 0.5) * 10,
                            "x": 450000 + (np.arange(w) + 0.5) * 10,
                            "platform": ("time", np.full(len(times), "sentinel-2a"))}).rio.write_crs(32651)
    # the truth: dNBR between the day before the fire and the day after (the demo archive's)
    before, after = _veg(FIRE_DAY - pd.Timedelta(days=1)), _veg(FIRE_DAY + pd.Timedelta(days=1))
    truth = np.where(scar, _nbr(before) - _nbr(after[:, None, None] * (1 - sev) + CHAR[:, None, None] * sev), np.nan)
    return ds, sev, truth.astype(np.float32)


def _layers(ds):
    return forest_burn_layers(ds, monitor_start="2026-04-01", mask_years=[2023, 2024, 2025], start_doy=152,
                              end_doy=243)


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_severity_in_a_late_green_up_is_the_fire_s(backend):
    ds, sev, truth = _scene()
    if backend == "dask":
        ds = ds.chunk({"time": 20, "y": 24, "x": 24}).assign_coords(platform=("time", ds["platform"].values))
    lay = _layers(ds).compute()
    scar = sev > 0
    assert lay["forest"].values.all()
    # the scar burned, nothing outside it; of the lightest band (dNBR ~0.13, its drop below the baseline
    # at the 0.10 floor, to noise) at least 90%
    burned = lay["burn_status"].values == CONFIRMED
    light = sev == SEVERITIES[0]
    assert burned[scar & ~light].all() and burned[light].mean() >= 0.9 and not burned[~scar].any()
    scar &= burned
    err = lay["dnbr"].values[scar] - truth[scar]
    assert np.abs(np.median(err)) <= 0.01 and np.percentile(np.abs(err), 95) <= 0.05, np.percentile(err, [5, 50, 95])
    classes = severity_classes(xr.DataArray(truth)).values
    assert (lay["severity"].values[scar] == classes[scar]).mean() >= 0.9
    assert set(np.unique(classes[scar])) >= {1, 2, 3, 4}  # the scar spans the classes


def test_without_the_season_s_course_the_burn_reads_lighter():
    """The same scene through the uncorrected rules: the 14-day green-up takes 0.1 off every dNBR,
    and the lightest band's drop since its last clear look is under the fire trigger."""
    ds, sev, truth = _scene()
    scar = sev > 0
    obs = observation_layers(ds, monitor_start="2026-04-01")
    first = (obs["time"] == np.datetime64("2026-06-25")).astype(np.float32) * xr.DataArray(scar, dims=("y", "x"))
    raw = burn_severity_at_detection(obs["nbr_broad"], first).compute()
    corrected = burn_severity_at_detection(obs["nbr_broad"], first, expected=obs["nbr_expected"]).compute()
    assert np.median(raw["dnbr"].values[scar] - truth[scar]) < -0.08
    assert np.abs(np.median(corrected["dnbr"].values[scar] - truth[scar])) <= 0.01
    light = sev == SEVERITIES[0]
    step = drop_from_previous(nbr(ds["nir08"], ds["swir22"])).sel(time="2026-06-25").values
    dev_step = drop_from_previous(obs["nbr_dev"]).sel(time="2026-06-25").values
    assert (step[light] < 0.10).all()  # the old trigger misses the light burn ...
    assert (dev_step[light] >= 0.10).mean() >= 0.9  # ... the season-corrected one catches it (to noise)


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_tile_median(backend):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 10, 7)).astype(np.float32)
    a[0, :4, :4][a[0, :4, :4] > 0] = np.nan  # a tile with half its values missing
    a[1, 8:, 4:] = np.nan  # a tile with none
    x = xr.DataArray(a, dims=("time", "y", "x"), coords={"y": np.arange(10.0), "x": np.arange(7.0)})
    if backend == "dask":
        x = x.chunk({"time": 1, "y": 3, "x": 4})
    m = tile_median(x, 4, min_count=3)
    assert m.dims == x.dims and m.shape == x.shape and m.dtype == np.float32
    assert (backend == "dask") == (m.chunks is not None)  # lazy on dask
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an all-NaN tile is not news: no RuntimeWarning, on dask at compute
        m = m.values
    for t in range(3):
        for r in range(0, 10, 4):
            for c in range(0, 7, 4):
                v = a[t, r:r + 4, c:c + 4]
                want = np.nanmedian(v) if np.isfinite(v).sum() >= 3 else np.nan
                np.testing.assert_array_equal(m[t, r:r + 4, c:c + 4], np.full(v.shape, want, np.float32))
    assert np.isnan(m[1, 8:, 4:]).all()
    # a tile left with under two-thirds of the pixels its values were picked from gives no median
    shared = tile_median(x, 4, min_count=3, of=xr.ones_like(x, dtype=bool), min_share=0.67).values
    assert np.isnan(shared[0, :4, :4]).all() and np.isfinite(m[0, :4, :4]).all()
    np.testing.assert_array_equal(shared[2], m[2])  # (no gaps at time 2)
    # a band of rows that starts on a tile gets the whole grid's tiles (the nightly state's strips)
    band = tile_median(x.isel(y=slice(4, 10)), 4, min_count=3).values
    np.testing.assert_array_equal(band, m[:, 4:10])


def test_tile_median_is_quiet_on_dask_threads():
    # all-NaN tiles computed on several threads at once: the silencing must not rely on
    # ``warnings.catch_warnings``, which one thread's exit undoes for the others
    import dask

    rng = np.random.default_rng(1)
    a = rng.normal(size=(8, 64, 64)).astype(np.float32)
    a[:, :, ::2] = np.nan  # every other column of 2 px tiles: half the tiles all-NaN
    x = xr.DataArray(a, dims=("time", "y", "x")).chunk({"time": 1, "y": 8, "x": 8})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with dask.config.set(scheduler="threads", num_workers=4):
            for _ in range(3):
                m = tile_median(x, 1, min_count=1).values
    np.testing.assert_array_equal(np.isnan(m), np.isnan(a))


def test_a_fire_over_most_of_a_tile_leaves_it_no_reference():
    """With 18 px tiles, the scar covers 79% of the tile at rows and columns 18-35: after the fire
    that tile has too few pixels near its reference value (``reference_min_share``), so the fire is
    read from the NBR itself there, and still confirmed, rather than measured against 68 edge pixels."""
    from processors.chain import ChainThresholds

    ds, sev, _ = _scene()
    th = ChainThresholds(reference_tile_px=18, reference_min_px=20)
    tile = (slice(18, 36), slice(18, 36))
    assert (sev[tile] > 0).mean() > 0.75

    def dev(**kw):
        obs = observation_layers(ds, monitor_start="2026-04-01", thresholds=ChainThresholds(**{**th.__dict__, **kw}))
        return obs["nbr_dev"].sel(time="2026-06-25").values

    d = dev()
    assert np.isnan(d[tile]).all() and np.isfinite(d[:18, :18]).all()
    assert np.isfinite(dev(reference_min_share=0.0)[tile]).all()  # (the share is what leaves it out)
    lay = forest_burn_layers(ds, monitor_start="2026-04-01", mask_years=[2023, 2024, 2025], start_doy=152,
                             end_doy=243, thresholds=th).compute()
    burned = lay["burn_status"].values == CONFIRMED
    assert burned[tile][sev[tile] >= 0.6].all()


def test_the_season_s_course_is_read_for_the_reference_cover_only():
    """The forest's green-up says nothing of a crop's harvest or a marsh's flood: outside the
    reference mask there is no deviation (the fire trigger and dNBR use the NBR itself there)."""
    ds, sev, _ = _scene()
    ref = xr.DataArray(np.ones(sev.shape, bool), dims=("y", "x"), coords={"y": ds["y"], "x": ds["x"]})
    ref[:, :10] = False
    dev = observation_layers(ds, monitor_start="2026-04-01", reference=ref)["nbr_dev"].sel(time="2026-06-10").values
    assert np.isnan(dev[:, :10]).all() and np.isfinite(dev[:, 10:]).all()


HAZE = np.array([0.26, 0.25, 0.24, 0.26, 0.26, 0.22, 0.18], np.float32)  # thin cloud: bright and flat


def _hazy_scene():
    """The late green-up scene, with thin cloud that the mask let through over the scar on the first
    look after the fire (25 June): its NBR reads as low as the char's, its visible bright (~0.15)."""
    ds, sev, truth = _scene()
    k = int(np.nonzero(ds["time"].values == np.datetime64("2026-06-25"))[0][0])
    box = (slice(8, 40), slice(8, 40))
    for b, h in zip(BANDS, HAZE):
        a = ds[b].values
        a[(k,) + box] = 0.45 * a[(k,) + box] + 0.55 * h
    return ds, sev, truth


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_a_hazy_look_after_the_fire_does_not_hide_it(backend):
    """The haze is not fire-like (bright), and the first clear look after it (30 June) shows no drop
    from it: measured from the haze, the fire would never start. Over the forest, a look brighter
    than ``haze_visible`` is left out of the trigger's previous look and of the pre-fire look."""
    ds, sev, truth = _hazy_scene()
    if backend == "dask":
        ds = ds.chunk({"time": 20, "y": 24, "x": 24}).assign_coords(platform=("time", ds["platform"].values))
    lay = _layers(ds).compute()
    scar, light = sev > 0, sev == SEVERITIES[0]
    burned = lay["burn_status"].values == CONFIRMED
    assert burned[scar & ~light].all() and not burned[~scar].any()
    assert (lay["burn_first"].values[scar & burned] == np.datetime64("2026-06-30")).all()
    classes = severity_classes(xr.DataArray(truth)).values
    assert (lay["severity"].values[scar & burned] == classes[scar & burned]).mean() >= 0.9


def test_measured_from_the_haze_the_fire_never_starts():
    from processors.chain import ChainThresholds

    ds, sev, _ = _hazy_scene()
    lay = forest_burn_layers(ds, monitor_start="2026-04-01", mask_years=[2023, 2024, 2025], start_doy=152,
                             end_doy=243, thresholds=ChainThresholds(haze_visible=1.0)).compute()
    assert (lay["burn_status"].values[sev > 0] == CONFIRMED).mean() < 0.2


SNOWY = 0.5 * DORMANT + 0.5 * np.array([0.85, 0.84, 0.82, 0.74, 0.72, 0.09, 0.07], np.float32)  # snow under bare larch


def _spring_scene():
    """Larch, no fire. The baseline years' looks until 10 May see snow under the bare crowns (NBR ~0.6:
    snow is dark at 2.2 µm); in 2026 the snow is gone by the first clear look, 16 April (cloud before
    it), so that look sits 0.3 NBR under its same-season baseline - fire-like - and 0.35 under the last
    clear look, the previous September's green canopy, while the visible barely changed."""
    times = pd.DatetimeIndex([d for y in (2023, 2024, 2025, 2026)
                              for d in pd.date_range(f"{y}-04-01", f"{y}-09-30", freq="5D")])
    shape = (12, 12)
    rng = np.random.default_rng(3)
    data = np.empty((len(BANDS), len(times)) + shape, np.float32)
    for k, t in enumerate(times):
        look = SNOWY if (t.year < 2026 and t.dayofyear <= 130) else _veg(t)
        data[:, k] = look[:, None, None] + rng.normal(0, 0.002, (len(BANDS),) + shape)
        if t.year == 2026 and t < pd.Timestamp("2026-04-16"):
            data[:, k] = np.nan
    h, w = shape
    return xr.Dataset({b: (("time", "y", "x"), data[i]) for i, b in enumerate(BANDS)},
                      coords={"time": times, "y": 5680000 - (np.arange(h) + 0.5) * 10,
                              "x": 450000 + (np.arange(w) + 0.5) * 10,
                              "platform": ("time", np.full(len(times), "sentinel-2a"))}).rio.write_crs(32651)


def test_a_drop_across_the_winter_does_not_start_a_fire():
    """The fire trigger's previous look must be recent (``burn_step_max_gap_days``): from last
    September's canopy to this April's bare crowns the NBR falls by as much as a fire takes, and
    every look after stays under a snowy baseline. Seed 23 of the demo archive lost 279 px of its
    real June fire to such an April 'fire' (its pixels were already burned). In the season chain
    and in the nightly state alike."""
    from processors.chain import ChainThresholds
    from processors.incremental import ForestBurnState, advance, prime, state_layers

    ds = _spring_scene()
    t = pd.DatetimeIndex(ds["time"].values)
    autumn, first = ds.isel(time=np.nonzero(t.year == 2025)[0][-1]), ds.sel(time="2026-04-16")
    assert float(_nbr(np.array([float(autumn[b].mean()) for b in BANDS]))
                 - _nbr(np.array([float(first[b].mean()) for b in BANDS]))) > 0.3
    # the whole scene moved together, which the season's course (its tile's median) now reads too: the
    # gap rule is checked where no tile has enough reference pixels to read it (as under a fire over
    # most of the tile), and the defaults must not burn either
    unread = {"reference_min_px": 10**6}
    for th, burns in ((ChainThresholds(), False), (ChainThresholds(**unread), False),
                      (ChainThresholds(**unread, burn_step_max_gap_days=1e6), True)):
        lay = forest_burn_layers(ds, monitor_start="2026-04-01", mask_years=[2023, 2024, 2025], start_doy=152,
                                 end_doy=243, thresholds=th).compute()
        assert lay["forest"].values.all()
        burned = lay["burn_status"].values == CONFIRMED
        assert burned.all() if burns else not burned.any(), (th.burn_step_max_gap_days, burned.mean())
        # the nightly state, primed with the looks before the season, then fed the season a look a night
        season = np.asarray(t >= pd.Timestamp("2026-04-01"))
        st = ForestBurnState.new((12, 12))
        prime(st, ds.isel(time=np.nonzero(~season)[0]), reference=lay["forest"], thresholds=th)
        base = np.nonzero(~season)[0]
        for k in np.nonzero(season)[0]:
            obs = observation_layers(ds.isel(time=np.concatenate([base, [k]])), monitor_start="2026-04-01",
                                     thresholds=th, reference=lay["forest"])
            advance(st, obs.compute(), th)
        got = state_layers(st, lay["forest"], th)
        np.testing.assert_array_equal(got["burn_status"].values, lay["burn_status"].values)
