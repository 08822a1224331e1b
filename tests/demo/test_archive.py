"""The demo archive: determinism, provider conventions, truth round trip, physical plausibility."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import stackstac

from demo.generate import generate_archive, load_world
from demo.physics import BANDS, LC, surface_reflectance
from demo.scenario import WINDOWS, build_scenario
from demo.sky import msi_to_oli, to_landsat_grid
from sources.profiles import LANDSAT_SR_OFFSET, LANDSAT_SR_SCALE, QA, SCL, s2_offset_applies

SEED, SIZE = 42, "small"


def items_of(root: Path, collection: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / collection).glob("*/*.json"))]


def window_of(item: dict) -> str:
    for w in WINDOWS:
        if w.mgrs in item["id"] or w.wrs in item["id"]:
            return w.id
    raise AssertionError(item["id"])


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


# ----------------------------------------------------------------------------------- determinism
def test_generator_is_deterministic(small_archive, tmp_path):
    again = generate_archive(tmp_path / "again", seed=SEED, size=SIZE, workers=1)
    a = json.loads((small_archive / "manifest.json").read_text())
    b = json.loads((again.root / "manifest.json").read_text())
    assert a["files"] == b["files"]  # byte-identical, whatever the number of workers
    assert len(a["files"]) > 1000


def test_another_seed_gives_another_world():
    from demo.physics import build_world
    from demo.generate import demo_landscapes
    from aoi import parse_landscapes

    worlds = []
    for seed in (1, 2):
        sc = build_scenario(seed, SIZE)
        ls = {x.id: x for x in parse_landscapes(json.dumps(demo_landscapes(sc)))}
        w = WINDOWS[0]
        worlds.append(build_world(sc, w, ls[w.id].grid(10)))
    assert not np.array_equal(worlds[0].fire_severity, worlds[1].fire_severity)
    assert worlds[0].fire_date != worlds[1].fire_date or worlds[0].clearings[0].date != worlds[1].clearings[0].date \
        or not np.array_equal(worlds[0].clearings[0].mask, worlds[1].clearings[0].mask)


# ----------------------------------------------------------------------------------- calendar
def test_calendar_sparse_baseline_then_dense_season(small_archive):
    truth = json.loads((small_archive / "truth" / "truth.json").read_text())
    assert len(truth["baseline_years"]) >= 5
    my = truth["monitoring_year"]
    for col, step in (("sentinel-2-c1-l2a", 5), ("landsat-c2-l2", 8)):
        per_window: dict[str, list[dt.date]] = {}
        for it in items_of(small_archive, col):
            per_window.setdefault(window_of(it), []).append(dt.date.fromisoformat(it["properties"]["datetime"][:10]))
        assert set(per_window) == {w.id for w in WINDOWS}
        for wid, dates in per_window.items():
            mon = sorted(d for d in dates if d.year == my)
            assert {(b - a).days for a, b in zip(mon, mon[1:])} == {step}, (col, wid)
            years = Counter(d.year for d in dates if d.year < my)
            assert len(years) >= 5 and all(n >= 3 for n in years.values()), (col, wid, years)
            assert max(years.values()) < len(mon) / 2  # baseline seasons are sparse


# ----------------------------------------------------------------------------------- conventions
def test_items_follow_earth_search_conventions(small_archive):
    s2 = items_of(small_archive, "sentinel-2-c1-l2a")
    assert s2
    for it in s2:
        p = it["properties"]
        assert set(it["assets"]) == {"blue", "green", "red", "nir", "nir08", "swir16", "swir22", "scl"}
        assert s2_offset_applies(p["s2:processing_baseline"])
        assert p["proj:epsg"] in (32650, 32651) and 0 <= p["eo:cloud_cover"] <= 100
        for key, a in it["assets"].items():
            rb = a["raster:bands"][0]
            assert rb["nodata"] == 0
            if key != "scl":
                assert (rb["scale"], rb["offset"], rb["data_type"]) == (0.0001, -0.1, "uint16")
            assert a["gsd"] == (10 if key in ("blue", "green", "red", "nir") else 20)
        pystac.Item.from_dict(it)
    ls = items_of(small_archive, "landsat-c2-l2")
    for it in ls:
        p = it["properties"]
        assert p["platform"] in ("landsat-8", "landsat-9") and p["proj:transform"][0] == 30
        assert p["proj:transform"][2] % 30 == 15  # Landsat pixel edges sit at 15 m mod 30
        for key in ("blue", "green", "red", "nir08", "swir16", "swir22"):
            rb = it["assets"][key]["raster:bands"][0]
            assert (rb["scale"], rb["offset"]) == (LANDSAT_SR_SCALE, LANDSAT_SR_OFFSET)
        assert it["assets"]["qa_pixel"]["raster:bands"][0]["nodata"] == 1
        assert {b["name"] for b in it["assets"]["qa_pixel"]["classification:bitfields"]} >= {"cloud", "cloud_shadow", "snow", "clear"}


def test_asset_files_are_cogs_matching_their_metadata(small_archive):
    it = items_of(small_archive, "sentinel-2-c1-l2a")[10]
    base = small_archive / "sentinel-2-c1-l2a" / it["id"]
    for key, a in it["assets"].items():
        with rasterio.open(base / a["href"]) as ds:
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert ds.compression.name.upper() == "DEFLATE" and ds.profile["tiled"]
            assert ds.nodata == 0 and ds.dtypes[0] == ("uint8" if key == "scl" else "uint16")
            assert list(ds.shape) == a["proj:shape"]
            assert list(ds.transform)[:6] == pytest.approx(a["proj:transform"])
            assert ds.crs.to_epsg() == it["properties"]["proj:epsg"]


def test_static_catalog_reads_with_pystac(small_archive):
    cat = pystac.Catalog.from_file(str(small_archive / "catalog.json"))
    manifest = json.loads((small_archive / "manifest.json").read_text())
    counts = Counter(i.collection_id for i in cat.get_items(recursive=True))
    assert dict(counts) == manifest["items"]


# ----------------------------------------------------------------------------------- truth round trip
def _clear_s2_item(root: Path, window_id: str, month: str) -> dict:
    cands = [it for it in items_of(root, "sentinel-2-c1-l2a") if window_of(it) == window_id
             and it["properties"]["datetime"].startswith(month)]
    return min(cands, key=lambda it: it["properties"]["eo:cloud_cover"])


def _with_abs_hrefs(it: dict, root: Path, collection: str) -> dict:
    it = json.loads(json.dumps(it))
    for a in it["assets"].values():
        a["href"] = str(root / collection / it["id"] / a["href"])
    return it


@pytest.mark.parametrize("window_id", [w.id for w in WINDOWS])
def test_stackstac_with_scale_and_offset_gives_back_truth(small_archive, window_id):
    it = _clear_s2_item(small_archive, window_id, "2026-07")
    world = load_world(SEED, SIZE, window_id)
    g = world.aoi_grid
    date = dt.date.fromisoformat(it["properties"]["datetime"][:10])
    refl, _ = surface_reflectance(world, date)
    stack = stackstac.stack([_with_abs_hrefs(it, small_archive, "sentinel-2-c1-l2a")], assets=list(BANDS),
                            epsg=g.epsg, resolution=10, bounds=g.bounds, snap_bounds=False, rescale=True, resampling=rasterio.enums.Resampling.nearest,
                            dtype="float64", fill_value=np.nan)
    got = stack.isel(time=0).values
    assert got.shape == (7, g.height, g.width)
    sky = read(small_archive / "truth" / window_id / "sky" / f"{it['id']}.tif")
    clear = sky == 0
    assert clear.mean() > 0.5
    c0 = int(round((g.bounds[0] - world.grid.bounds[0]) / 10))
    r0 = int(round((world.grid.bounds[3] - g.bounds[3]) / 10))
    for i, band in enumerate(BANDS):
        truth = refl[i]
        if band in ("nir08", "swir16", "swir22"):  # 20 m: the sensor averages 2x2 of the 10 m truth
            h, w = truth.shape
            truth = np.repeat(np.repeat(truth.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)), 2, 0), 2, 1)
        truth = truth[r0:r0 + g.height, c0:c0 + g.width]
        err = got[i][clear] - truth[clear]
        tol = 4 * (0.002 + 0.006 * truth[clear]) + 0.02 * truth[clear] + 1e-4  # 4 sigma noise + gain + quantisation
        assert abs(float(np.mean(err))) < 0.002, (band, float(np.mean(err)))
        assert np.mean(np.abs(err) <= tol) > 0.995, band
        assert np.all(np.isfinite(got[i][clear]))


def test_dn_carry_the_baseline_04_offset(small_archive):
    it = _clear_s2_item(small_archive, "zhalong-demo", "2026-08")
    dn = read(small_archive / "sentinel-2-c1-l2a" / it["id"] / "B12.tif").astype(float)
    scl = read(small_archive / "sentinel-2-c1-l2a" / it["id"] / "SCL.tif")
    water = dn[scl == SCL.WATER]
    assert water.size > 100
    # open water is dark in SWIR (~0.006): its DN sit just above 1000, never near 0
    assert 1000 < np.median(water) < 1200


def test_landsat_round_trip_on_its_own_30m_grid(small_archive):
    wid = "hulunbuir-steppe-demo"
    cands = [it for it in items_of(small_archive, "landsat-c2-l2") if window_of(it) == wid
             and it["properties"]["datetime"].startswith("2026-07")]
    it = min(cands, key=lambda x: x["properties"]["eo:cloud_cover"])
    world = load_world(SEED, SIZE, wid)
    date = dt.date.fromisoformat(it["properties"]["datetime"][:10])
    refl, _ = surface_reflectance(world, date)
    oli, lb = to_landsat_grid(refl, world)
    oli = msi_to_oli(oli)
    p = it["properties"]
    stack = stackstac.stack([_with_abs_hrefs(it, small_archive, "landsat-c2-l2")],
                            assets=["blue", "green", "red", "nir08", "swir16", "swir22"], epsg=p["proj:epsg"],
                            resolution=30, bounds=lb, snap_bounds=False, rescale=True, dtype="float64", fill_value=np.nan)
    got = stack.isel(time=0).values
    from demo.scenario import Acquisition
    from demo.sky import draw_sky

    acq = Acquisition(wid, "L", p["platform"], dt.datetime.fromisoformat(p["datetime"].replace("Z", "+00:00")), 0)
    # the sky of this acquisition is a pure function of it: rebuild it to know which pixels are truly clear
    sky = draw_sky(world, acq)
    opaque, _ = to_landsat_grid(((sky.opacity > 0.02) | (sky.shadow > 0.1) | (sky.haze > 0.3) | ~sky.valid).astype(np.float32), world)
    clear = opaque == 0
    assert clear.mean() > 0.5
    err = got[:, clear] - oli[:, clear]
    assert np.abs(err.mean(axis=1)).max() < 0.003
    assert np.mean(np.abs(err) < 4 * (0.002 + 0.006 * oli[:, clear]) + 0.02 * oli[:, clear] + 1e-4) > 0.995


# ----------------------------------------------------------------------------------- masks
def _upsample_scl_to_aoi(scl: np.ndarray, world) -> np.ndarray:
    g = world.aoi_grid
    up = np.repeat(np.repeat(scl, 2, 0), 2, 1)
    c0 = int(round((g.bounds[0] - world.grid.bounds[0]) / 10))
    r0 = int(round((world.grid.bounds[3] - g.bounds[3]) / 10))
    return up[r0:r0 + g.height, c0:c0 + g.width]


def test_scl_right_for_most_but_not_all_cloudy_pixels(small_archive):
    counts = Counter()
    for it in items_of(small_archive, "sentinel-2-c1-l2a"):
        wid = window_of(it)
        world = load_world(SEED, SIZE, wid)
        sky = read(small_archive / "truth" / wid / "sky" / f"{it['id']}.tif")
        scl = _upsample_scl_to_aoi(read(small_archive / "sentinel-2-c1-l2a" / it["id"] / "SCL.tif"), world)
        flagged = np.isin(scl, [SCL.CLOUD_MEDIUM, SCL.CLOUD_HIGH, SCL.THIN_CIRRUS, SCL.CLOUD_SHADOW])
        for cls, name in ((2, "cloud"), (1, "thin"), (3, "shadow"), (0, "clear")):
            m = sky == cls
            counts[name] += int(m.sum())
            counts[name + "_flagged"] += int((m & flagged).sum())
    rate = {k: counts[k + "_flagged"] / counts[k] for k in ("cloud", "thin", "shadow", "clear")}
    assert rate["cloud"] > 0.97, rate  # thick cloud is almost always flagged
    assert 0.3 < rate["thin"] < 0.97, rate  # thin edges: often, not always
    assert 0.4 < rate["shadow"] < 0.97, rate  # shadow rims leak, as in Sen2Cor
    assert rate["clear"] < 0.05, rate  # few false alarms


def test_qa_pixel_bits_are_real_landsat_values(small_archive):
    values = Counter()
    for it in items_of(small_archive, "landsat-c2-l2")[::5]:
        qa = read(small_archive / "landsat-c2-l2" / it["id"] / it["assets"]["qa_pixel"]["href"])
        values.update(np.unique(qa).tolist())
    assert 21824 in values  # clear land, low confidences: the most common real value
    cloud = [v for v in values if v & (1 << QA.CLOUD)]
    assert cloud and all(not v & (1 << QA.CLEAR) for v in cloud)
    assert any(v & (1 << QA.CLOUD_SHADOW) and v & (1 << QA.CLEAR) for v in values)  # shadow keeps the clear bit


# ----------------------------------------------------------------------------------- physics & truth
def _ndvi(r):
    return (r[3] - r[2]) / (r[3] + r[2])


def test_phenology_snow_and_spectra_are_plausible():
    world = load_world(SEED, SIZE, "greater-khingan-demo")
    forest = world.landcover == LC.LARCH
    jul, _ = surface_reflectance(world, dt.date(2026, 7, 20))
    apr, aux_apr = surface_reflectance(world, dt.date(2026, 4, 5))
    may, _ = surface_reflectance(world, dt.date(2026, 5, 15))
    assert np.median(_ndvi(jul)[forest]) > 0.8
    assert np.median(_ndvi(may)[forest]) < 0.7  # before green-up of the larch
    assert aux_apr["snow"][forest].mean() > 0.2 and aux_apr["snow"][world.landcover == LC.GRASS].mean() > 0.6
    assert np.all((jul >= 0) & (jul <= 1))
    wet = load_world(SEED, SIZE, "zhalong-demo")
    r, aux = surface_reflectance(wet, dt.date(2024, 8, 10))
    mndwi = (r[1] - r[5]) / (r[1] + r[5])
    assert np.median(mndwi[aux["water"]]) > 0.6 and np.median(mndwi[~aux["water"]]) < 0


def test_events_and_distractors_in_truth(small_archive):
    ev = json.loads((small_archive / "truth" / "events.geojson").read_text())["features"]
    kinds = Counter(f["properties"]["kind"] for f in ev)
    assert kinds["forest_loss"] >= 3 and kinds["burn_scar"] == 1
    assert kinds["wetland_loss"] == 1 and kinds["grassland_degradation"] == 1
    clear_ha = sorted(f["properties"]["area_ha"] for f in ev if f["properties"]["kind"] == "forest_loss")
    assert clear_ha[0] >= 0.5 and clear_ha[-1] >= 2 * clear_ha[0]  # several sizes, from 0.5 ha up
    distractors = {f["properties"].get("distractor") for f in ev if f["properties"]["kind"] == "distractor"}
    assert {"crop_harvest", "temporary_flood", "old_clearing", "grassland_improving"} <= distractors
    assert all(f["properties"]["expect_alert"] == (f["properties"]["kind"] != "distractor") for f in ev)
    truth = json.loads((small_archive / "truth" / "truth.json").read_text())
    assert truth["scenes_with_haze"]  # thin haze, unflagged: must not alert
    for w in truth["windows"].values():
        assert len(w["transient_snow"]) == 2  # snow at the season's edges
        assert np.std(list(w["interannual_vigour"].values())) > 0.01  # normal year-to-year variability
    wet = truth["windows"]["zhalong-demo"]["wetland"]
    assert wet["change_pct"] <= -25
    g = truth["windows"]["hulunbuir-steppe-demo"]["grassland"]["class_ha"]
    assert g["degrading"] >= 5 and g["improving"] > 0 and g["stable"] > g["degrading"]


def test_burn_severity_has_a_gradient(small_archive):
    cls = read(small_archive / "truth" / "greater-khingan-demo" / "burn_severity.tif")
    burned = cls[cls > 0]
    share = np.bincount(burned, minlength=5)[1:] / burned.size
    assert (share > 0.05).sum() >= 3, share  # low to high, not a single class


def test_fire_regrows_and_clearings_stay_bare():
    world = load_world(SEED, SIZE, "greater-khingan-demo")
    fd = world.fire_date
    core = world.fire_severity > 0.8
    nbr = lambda r: (r[3] - r[6]) / (r[3] + r[6])  # noqa: E731
    pre = nbr(surface_reflectance(world, fd - dt.timedelta(days=1))[0])[core].mean()
    post = nbr(surface_reflectance(world, fd + dt.timedelta(days=2))[0])[core].mean()
    later = nbr(surface_reflectance(world, fd + dt.timedelta(days=60))[0])[core].mean()
    assert pre - post > 0.66  # high severity in the core
    assert later > post + 0.05  # regrowth
    c = world.clearings[0]
    r = surface_reflectance(world, c.date + dt.timedelta(days=5))[0]
    # char is dark in NIR and visible; a clearing is bright in SWIR 1.6: the signatures differ
    assert r[5][c.mask].mean() > 0.25 and r[3][c.mask].mean() > 0.15


def test_events_lie_wholly_inside_their_landscape(small_archive):
    import geopandas as gpd

    from aoi import load_landscapes

    land = {x.id: x for x in load_landscapes(small_archive / "aoi.geojson")}
    ev = gpd.read_file(small_archive / "truth" / "events.geojson")
    for _, e in ev[ev.kind.isin(["forest_loss", "burn_scar"])].iterrows():
        ls = land[e.window_id]
        assert ls.shape.buffer(-0.0005).contains(e.geometry), e.id  # ~50 m inside the outline
