"""A clearing's extent is judged by the 10-20 m looks: 30 m Landsat looks that smear its edge over
the forest around it may detect and date it, but not widen it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr

from processors.chain import forest_burn_alerts, forest_burn_layers

from .nightly import nightly_layers

BANDS = ("blue", "green", "red", "nir", "nir08", "swir16", "swir22")
FOREST = np.array([0.020, 0.045, 0.022, 0.330, 0.345, 0.160, 0.070], np.float32)
CLEARED = np.array([0.065, 0.085, 0.100, 0.220, 0.230, 0.300, 0.210], np.float32)
CLEARING_DAY = pd.Timestamp("2026-07-01")


def _at_30m(frac: np.ndarray) -> np.ndarray:
    """A 10 m field seen by 30 m pixels (edges at rows and columns 2 mod 3), resampled back with
    nearest neighbour: a pixel takes the mean of the 30 m pixel it lies in."""
    out = np.empty_like(frac)
    for r0 in range(-1, frac.shape[0], 3):
        for c0 in range(-1, frac.shape[1], 3):
            win = slice(max(r0, 0), r0 + 3), slice(max(c0, 0), c0 + 3)
            out[win] = frac[win].mean()
    return out


def _scene(shape=(40, 40)):
    """Forest with a 10 x 10 px (1 ha) clearing from 1 July 2026; three baseline summers and the
    monitoring summer, one look every 4 days, every third one by Landsat, and the two looks after
    the clearing too (they detect and confirm it). Landsat's 30 m pixels straddle the clearing's
    edge: those two-thirds cleared read as clearing 10 m beyond it."""
    rng = np.random.default_rng(3)
    times = pd.DatetimeIndex([d for y in (2023, 2024, 2025, 2026) for d in pd.date_range(f"{y}-06-01", f"{y}-08-31", freq="4D")])
    landsat = (np.arange(len(times)) % 3 == 1) | ((times >= CLEARING_DAY) & (times < CLEARING_DAY + pd.Timedelta(days=8)))
    platform = np.where(landsat, "landsat-8", "sentinel-2a")
    cut = np.zeros(shape, bool)
    cut[15:25, 15:25] = True
    data = np.empty((len(BANDS), len(times)) + shape, np.float32)
    for k, t in enumerate(times):
        frac = cut.astype(np.float32) if t >= CLEARING_DAY else np.zeros(shape, np.float32)
        if platform[k].startswith("landsat"):
            frac = _at_30m(frac)
        data[:, k] = (FOREST[:, None, None] * (1 - frac) + CLEARED[:, None, None] * frac
                      + rng.normal(0, 0.003, (len(BANDS),) + shape))
    return _dataset(data, times, platform), cut


def _dataset(data: np.ndarray, times: pd.DatetimeIndex, platform: np.ndarray) -> xr.Dataset:
    """(band, time, y, x) reflectance on a 10 m UTM grid, with each look's platform."""
    h, w = data.shape[-2:]
    x = 450000 + (np.arange(w) + 0.5) * 10
    y = 5680000 - (np.arange(h) + 0.5) * 10
    return xr.Dataset({b: (("time", "y", "x"), data[i]) for i, b in enumerate(BANDS)},
                      coords={"time": times, "y": y, "x": x, "platform": ("time", platform)}).rio.write_crs(32651)


def _layers(ds, **kw):
    return forest_burn_layers(ds, monitor_start="2026-06-01", mask_years=[2023, 2024, 2025], start_doy=152, end_doy=243,
                              **kw)


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_landsat_smear_does_not_widen_a_clearing(backend):
    ds, cut = _scene()
    if backend == "dask":
        # (the loader's provenance coordinates are NumPy arrays; chunk the bands only)
        ds = ds.chunk({"time": 7, "y": 16, "x": 16}).assign_coords(platform=("time", ds["platform"].values))
    lay = _layers(ds).compute()
    confirmed = lay["forest_status"].values == 2
    fine_normal = lay["forest_fine_normal"].values
    # the smear confirms a ring around the clearing on the Landsat looks alone ...
    assert (confirmed & ~cut).sum() >= 20
    # ... which the Sentinel-2 looks since saw normal: exactly the ring, never the clearing
    assert fine_normal.any() and not (fine_normal & cut).any()
    assert np.array_equal(fine_normal, confirmed & ~cut)
    a = forest_burn_alerts(lay, landscape_id="x").query("kind == 'forest_loss'")
    assert len(a) == 1 and a.area_ha.iloc[0] == pytest.approx(1.0)
    # detection and date stay with every look: the first look after the clearing, whichever mission
    first_look = ds["time"].values[ds["time"].values >= np.datetime64(CLEARING_DAY)][0]
    assert a.first_detected.iloc[0] == pd.Timestamp(first_look).date()
    # without the check (layers of an older version), the ring makes the alert a fifth larger or more
    wide = forest_burn_alerts(lay.drop_vars("forest_fine_normal"), landscape_id="x").query("kind == 'forest_loss'")
    assert wide.area_ha.iloc[0] >= 1.2


def test_a_clearing_seen_only_by_landsat_keeps_its_extent():
    """Without a clear 10-20 m look since the detection there is nothing to judge the edge by: the
    Landsat extent stands (and so does a clearing in a Landsat-only archive)."""
    ds, cut = _scene()
    after = ds["time"] >= np.datetime64(CLEARING_DAY)
    s2 = ds["platform"].str.startswith("sentinel")
    ds = ds.isel(time=np.nonzero((~(after & s2)).values)[0])
    lay = _layers(ds).compute()
    assert not lay["forest_fine_normal"].values.any()
    assert ((lay["forest_status"].values == 2) & ~cut).sum() >= 20


def _small_clearing_scene(haze_strip: bool = False):
    """Forest with a 10 x 5 px (0.5 ha) clearing from 1 July 2026, Sentinel-2 looks only, every 4
    days. The 10 m bands see the clearing whole; the 20 m bands (B8A, B11, B12) see its border
    pixels a fifth cleared, as a cleared 10 m pixel on a 20 m cell's corner is. ``haze_strip``: on
    three looks after the clearing, the 2 px strip of forest along its east side is under haze the
    cloud mask missed (blue, green and red brightened alike, NIR slightly darker, SWIR brighter)."""
    rng = np.random.default_rng(5)
    shape = (30, 30)
    times = pd.DatetimeIndex([d for y in (2023, 2024, 2025, 2026) for d in pd.date_range(f"{y}-06-01", f"{y}-08-31", freq="4D")])
    cut = np.zeros(shape, bool)
    cut[10:20, 10:15] = True
    inner = np.zeros(shape, bool)
    inner[11:19, 11:14] = True
    frac20 = np.where(inner, 1.0, np.where(cut, 0.2, 0.0)).astype(np.float32)
    strip = np.zeros(shape, bool)
    strip[10:20, 15:17] = True
    fine10 = np.array([b in ("blue", "green", "red", "nir") for b in BANDS])
    haze = np.array([0.10, 0.10, 0.10, 0.0, -0.02, 0.01, 0.02], np.float32)
    hazy_days = set(times[times >= CLEARING_DAY][[2, 5, 8]])
    data = np.empty((len(BANDS), len(times)) + shape, np.float32)
    for k, t in enumerate(times):
        after = t >= CLEARING_DAY
        f10, f20 = (cut.astype(np.float32), frac20) if after else (np.zeros(shape, np.float32),) * 2
        frac = np.where(fine10[:, None, None], f10[None], f20[None])
        data[:, k] = FOREST[:, None, None] * (1 - frac) + CLEARED[:, None, None] * frac + rng.normal(0, 0.003, (len(BANDS),) + shape)
        if haze_strip and t in hazy_days:
            data[:, k] += haze[:, None, None] * strip[None]
    return _dataset(data, times, np.full(len(times), "sentinel-2b")), cut, strip


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_a_small_clearing_keeps_its_edge_where_the_20m_bands_blur_it(backend):
    """The border of a 0.5 ha clearing shows the full NDVI drop at 10 m but only a fifth of the NBR
    drop at 20 m (0.12, under the hysteresis' half threshold 0.15): judged on NBR, only its 24 inner
    pixels hold, 0.24 ha, and the clearing is lost under the 0.5 ha unit. The 10 m edge rule (full
    NDVI threshold, a quarter of the NBR one, on a look redder than blue) keeps all 50 pixels."""
    from processors.chain import ChainThresholds

    ds, cut, _ = _small_clearing_scene()
    if backend == "dask":
        ds = ds.chunk({"time": 9, "y": 16, "x": 16}).assign_coords(platform=("time", ds["platform"].values))
    lay = _layers(ds).compute()
    confirmed = lay["forest_status"].values == 2
    assert (confirmed & cut).sum() >= 24 and not (confirmed & ~cut).any()
    a = forest_burn_alerts(lay, landscape_id="x").query("kind == 'forest_loss'")
    assert len(a) == 1 and a["n_pixels"].iloc[0] == 50 and a.area_ha.iloc[0] == pytest.approx(0.5)
    old = _layers(ds, thresholds=ChainThresholds(edge_nbr_fraction=10.0)).compute()
    assert len(forest_burn_alerts(old, landscape_id="x").query("kind == 'forest_loss'")) == 0


def test_haze_beside_a_clearing_does_not_join_it():
    """Haze over the forest beside the clearing drops NDVI by 0.4 and NBR by 0.1 on three looks, as
    the clearing's blurred edge does, but brightens blue as much as red: not evidence. With the
    blue/red test off, the strip joins the clearing."""
    from processors.chain import ChainThresholds

    ds, cut, strip = _small_clearing_scene(haze_strip=True)
    a = forest_burn_alerts(_layers(ds).compute(), landscape_id="x").query("kind == 'forest_loss'")
    assert len(a) == 1 and a["n_pixels"].iloc[0] == 50
    loose = _layers(ds, thresholds=ChainThresholds(edge_max_blue_red=10.0)).compute()
    b = forest_burn_alerts(loose, landscape_id="x").query("kind == 'forest_loss'")
    assert len(b) == 1 and b["n_pixels"].iloc[0] == 50 + strip.sum()


CHAR = np.array([0.030, 0.035, 0.040, 0.060, 0.080, 0.140, 0.130], np.float32)


def _landsat_first_scene():
    """Forest with a 10 x 5 px (0.5 ha) clearing and a 12 x 12 px (1.44 ha) fire, both on 1 July
    2026. The first three looks after that day are Landsat's (30 m, edges at rows and columns 2 mod
    3), then Sentinel-2's, every 4 days; the baseline summers are Sentinel-2's. Landsat's pixels a
    third over the clearing read as a fire: dark enough (the forest's dark visible averages in), the
    NBR 0.2 lower, SWIR 1.6 µm barely up. Sentinel-2 sees bare soil there, and char in the fire."""
    rng = np.random.default_rng(7)
    shape = (40, 40)
    times = pd.DatetimeIndex([d for y in (2023, 2024, 2025, 2026) for d in pd.date_range(f"{y}-06-01", f"{y}-08-31", freq="4D")])
    after = times >= CLEARING_DAY
    landsat = after & (np.cumsum(after) <= 3)
    cut = np.zeros(shape, bool)
    cut[25:35, 10:15] = True
    fire = np.zeros(shape, bool)
    fire[5:17, 20:32] = True
    data = np.empty((len(BANDS), len(times)) + shape, np.float32)
    for k, t in enumerate(times):
        fc, ff = (cut.astype(np.float32), fire.astype(np.float32)) if t >= CLEARING_DAY else (np.zeros(shape, np.float32),) * 2
        if landsat[k]:
            fc, ff = _at_30m(fc), _at_30m(ff)
        data[:, k] = (FOREST[:, None, None] * (1 - fc - ff) + CLEARED[:, None, None] * fc + CHAR[:, None, None] * ff
                      + rng.normal(0, 0.003, (len(BANDS),) + shape))
    return _dataset(data, times, np.where(landsat, "landsat-9", "sentinel-2a")), cut, fire


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_a_landsat_pixel_over_a_clearing_s_edge_is_not_a_fire(backend):
    """Landsat's mixed pixels on the clearing's edge start and confirm a "burn" on its three looks;
    the 10 m looks after them never see one there: the burn is withdrawn, and the clearing keeps
    its edge (50 px, 0.5 ha; it would fall under the 0.5 ha unit without its burned edge). The fire
    the 10 m looks see as char stays a burn scar, its edge included."""
    from processors.forest import CONFIRMED, WITHDRAWN

    ds, cut, fire = _landsat_first_scene()
    if backend == "dask":
        ds = ds.chunk({"time": 9, "y": 16, "x": 16}).assign_coords(platform=("time", ds["platform"].values))
    lay = _layers(ds).compute()
    bs = lay["burn_status"].values
    near_cut = np.zeros_like(cut)
    near_cut[22:38, 7:18] = True
    withdrawn = (bs == WITHDRAWN) & near_cut
    assert (withdrawn & cut).sum() >= 10 and not ((bs == CONFIRMED) & near_cut).any()
    assert ((bs == CONFIRMED) & fire).sum() == fire.sum()  # char at 10 m: a fire
    a = forest_burn_alerts(lay, landscape_id="x")
    loss, scar = a.query("kind == 'forest_loss'"), a.query("kind == 'burn_scar'")
    assert len(loss) == 1 and loss["n_pixels"].iloc[0] == 50 and loss.area_ha.iloc[0] == pytest.approx(0.5)
    assert len(scar) == 1 and scar["n_pixels"].iloc[0] == fire.sum()
    # the nightly state gives the same layers, night by night
    got = nightly_layers(ds, lay["forest"], "2026-06-01")
    for v in ("burn_status", "forest_status", "dnbr"):
        np.testing.assert_array_equal(got[v].values, lay[v].values)


HERBS = np.array([0.030, 0.060, 0.040, 0.280, 0.290, 0.200, 0.110], np.float32)


def _at_20m(frac: np.ndarray) -> np.ndarray:
    """A 10 m field seen in Sentinel-2's 20 m bands (B8A, B11, B12) and resampled back bilinearly:
    each 10 m pixel takes a quarter of each neighbour's value, and a sixteenth of each diagonal's."""
    from scipy.ndimage import convolve1d

    k = np.array([0.25, 0.5, 0.25])
    return convolve1d(convolve1d(frac, k, axis=0, mode="nearest"), k, axis=1, mode="nearest")


def _blurred_clearing_scene(shape=(40, 40)):
    """Forest with a 10 x 5 px (0.5 ha) clearing from 1 July 2026, half grown over by herbs, seen by
    Sentinel-2 only: its 20 m bands blur the clearing's edge a pixel into the forest. The forest
    pixels around it keep their 10 m NDVI and dark visible, but their NBR drops by 0.15: fire-like,
    as are the clearing's corners (a quarter forest at 20 m, darker than bare soil)."""
    rng = np.random.default_rng(3)
    times = pd.DatetimeIndex([d for y in (2023, 2024, 2025, 2026) for d in pd.date_range(f"{y}-06-01", f"{y}-08-31", freq="4D")])
    cut = np.zeros(shape, bool)
    cut[16:26, 16:21] = True
    cleared = 0.5 * CLEARED + 0.5 * HERBS
    data = np.empty((len(BANDS), len(times)) + shape, np.float32)
    for k, t in enumerate(times):
        f = cut.astype(np.float32) if t >= CLEARING_DAY else np.zeros(shape, np.float32)
        for i, b in enumerate(BANDS):
            fb = _at_20m(f) if b in ("nir08", "swir16", "swir22") else f
            data[i, k] = FOREST[i] * (1 - fb) + cleared[i] * fb + rng.normal(0, 0.003, shape)
    return _dataset(data, times, np.full(len(times), "sentinel-2a")), cut


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_a_burn_too_small_for_a_scar_leaves_the_clearing_its_pixels(backend):
    """The blurred edge confirms a ring of low-severity "burns" round the clearing, its corners
    included: no burn scar (under the 1 ha unit, no moderate core). A burn is never also forest
    loss, but only the burn scars' pixels are burns: the clearing keeps its corners and its 0.5 ha
    (without them, 0.46 ha: under the 0.5 ha unit, missed). The nightly state agrees."""
    from processors.forest import CONFIRMED

    ds, cut = _blurred_clearing_scene()
    if backend == "dask":
        ds = ds.chunk({"time": 9, "y": 16, "x": 16}).assign_coords(platform=("time", ds["platform"].values))
    lay = _layers(ds).compute()
    burned = lay["burn_status"].values == CONFIRMED
    assert (burned & ~cut).sum() >= 10 and (burned & cut).sum() >= 4
    a = forest_burn_alerts(lay, landscape_id="x")
    loss = a.query("kind == 'forest_loss'")
    assert len(loss) == 1 and loss["n_pixels"].iloc[0] == cut.sum() and loss.area_ha.iloc[0] == pytest.approx(0.5)
    assert not (a["kind"] == "burn_scar").any()
    got = nightly_layers(ds, lay["forest"], "2026-06-01")
    for v in ("burn_status", "forest_status", "forest_weak"):
        np.testing.assert_array_equal(got[v].values, lay[v].values)


def test_a_burn_scar_s_pixels_are_never_forest_loss():
    """Layers by hand: a confirmed clearing whose half is also a confirmed burn with a moderate core,
    over 1 ha: those pixels raise the burn scar only, and the clearing keeps the rest."""
    from processors.forest import CONFIRMED

    h, w = 40, 40
    like = xr.DataArray(np.zeros((h, w), np.int8), dims=("y", "x"),
                        coords={"y": 5680000 - (np.arange(h) + 0.5) * 10, "x": 450000 + (np.arange(w) + 0.5) * 10}
                        ).rio.write_crs(32651)
    cut = np.zeros((h, w), bool)
    cut[5:15, 5:25] = True  # 2 ha
    fire = np.zeros((h, w), bool)
    fire[5:25, 15:30] = True  # 3 ha, over half the clearing
    t0 = np.datetime64("2026-07-01T00:00:00", "ns")
    lay = xr.Dataset({
        "forest": like.copy(data=np.ones((h, w), bool)),
        "forest_status": like.copy(data=np.where(cut, CONFIRMED, 0).astype(np.int8)),
        "forest_first": like.copy(data=np.where(cut, t0, np.datetime64("NaT", "ns"))),
        "forest_weak": like.copy(data=cut.copy()),
        "forest_fine_normal": like.copy(data=np.zeros((h, w), bool)),
        "burn_status": like.copy(data=np.where(fire, CONFIRMED, 0).astype(np.int8)),
        "burn_first": like.copy(data=np.where(fire, t0, np.datetime64("NaT", "ns"))),
        "dnbr": like.copy(data=np.where(fire, 0.5, np.nan).astype(np.float32)),
        "severity": like.copy(data=np.where(fire, 3, -1).astype(np.int8)),
    })
    a = forest_burn_alerts(lay, landscape_id="x")
    loss, scar = a.query("kind == 'forest_loss'"), a.query("kind == 'burn_scar'")
    assert len(scar) == 1 and scar["n_pixels"].iloc[0] == fire.sum()
    assert len(loss) == 1 and loss["n_pixels"].iloc[0] == (cut & ~fire).sum()
