"""Loading clear-sky reflectance: real scenes, provider invariance, offsets, CRSs, mosaics, faults."""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from aoi import Grid, load_landscapes
from demo.generate import load_world
from demo.physics import BANDS, surface_reflectance
from sources.load import AssetGridMismatchError, load_reflectance
from sources.profiles import MissingMetadataError, SourceError
from sources.search import search_items

from .conftest import as_earth_search_c1, as_planetary_computer, demo_items

KHINGAN, STEPPE, ZHALONG = "51UVR", "50UQV", "51TXM"


def _landscape(root: Path, lid: str):
    return {x.id: x for x in load_landscapes(root / "aoi.geojson")}[lid]


def _ndvi(ds):
    return (ds.nir - ds.red) / (ds.nir + ds.red)


# ------------------------------------------------------------------------------------------ real data
def _real_s2_item(real_data: Path) -> dict:
    d = real_data / "sentinel-2-l2a_S2A_29RKH_20200219"
    it = json.loads((d / "item.json").read_text())
    files = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "nir08": "B8A", "swir16": "B11",
             "swir22": "B12", "scl": "SCL"}
    it["assets"] = {k: {**it["assets"][k], "href": str(d / f"{v}.tif")} for k, v in files.items()}
    it["collection"] = "sentinel-2-l2a"
    return it


def _file_grid(path: Path, resolution: float) -> Grid:
    with rasterio.open(path) as ds:
        return Grid(epsg=ds.crs.to_epsg(), resolution=resolution, bounds=tuple(ds.bounds))


def test_real_sentinel2_scene_through_its_item(real_data):
    it = _real_s2_item(real_data)
    grid = _file_grid(real_data / "sentinel-2-l2a_S2A_29RKH_20200219" / "B04.tif", 100.0)
    ds, rep = load_reflectance([it], grid, use_file_grid=True)
    assert rep.loaded == [it["id"]] and not rep.skipped and len(rep.grid_overrides) == 7
    assert isinstance(ds.red.data, da.Array)  # lazy
    r = ds.isel(time=0).compute()
    with rasterio.open(real_data / "sentinel-2-l2a_S2A_29RKH_20200219" / "SCL.tif") as f:
        scl = f.read(1)
    cloudy = np.isin(scl, [8, 9, 10]).sum()
    assert cloudy > 0
    clear = r.clear.values
    # every cloud pixel of the SCL is masked (20 m mask, nearest, on the 100 m grid)
    for b in ("blue", "red", "nir", "swir22"):
        v = r[b].values[clear]
        assert np.all((v >= 0) & (v <= 1)) and 0.05 < np.median(v) < 0.6, b  # physical desert reflectance
    assert np.all(np.isnan(r.red.values[~clear]))
    nd = _ndvi(r).values[clear]
    assert np.mean((nd >= -0.05) & (nd <= 0.2)) >= 0.95
    assert r.processing_baseline.item() == "02.14" and r.offset.item() == 0.0


def test_real_sentinel2_item_grid_mismatch_is_a_clear_error(real_data):
    it = _real_s2_item(real_data)
    grid = _file_grid(real_data / "sentinel-2-l2a_S2A_29RKH_20200219" / "B04.tif", 100.0)
    with pytest.raises(AssetGridMismatchError, match=r"proj:shape \[10980, 10980\] vs file \[1098, 1098\].*use_file_grid=True"):
        load_reflectance([it], grid)


def test_real_landsat_scene_is_almost_all_cloud(real_data):
    d = real_data / "landsat-c2-l2_LC08_L2SP_001062_20201031"
    it = json.loads((d / "LC08_L2SP_001062_20201031_20201106_02_T2_SR_stac.json").read_text())
    for k, a in it["assets"].items():
        if k.endswith(".TIF"):
            a["href"] = str(d / Path(a["href"]).name)
    it["assets"] = {k: a for k, a in it["assets"].items() if k.endswith(".TIF") and Path(a["href"]).exists()}
    with rasterio.open(d / "LC08_L2SP_001062_20201031_20201106_02_T2_QA_PIXEL.TIF") as f:
        grid = Grid(epsg=f.crs.to_epsg(), resolution=abs(f.transform.a), bounds=tuple(f.bounds))
    with pytest.raises(MissingMetadataError, match="lacks proj:epsg"):
        load_reflectance([it], grid)
    ds, rep = load_reflectance([it], grid, use_file_grid=True)
    assert ds.collection.item() == "usgs/landsat-c2l2-sr" and ds.platform.item() == "landsat-8"
    clear = ds.clear.isel(time=0).values
    assert clear.mean() <= 0.01
    assert np.isnan(ds.red.isel(time=0).values).mean() >= 0.99


# ------------------------------------------------------------------------------------------ demo archive
def test_provider_invariance_earth_search_vs_planetary_computer(small_archive):
    it = demo_items(small_archive, "sentinel-2-c1-l2a", STEPPE, "2026-07")[0]
    grid = _landscape(small_archive, "hulunbuir-steppe-demo").grid(10)
    es, _ = load_reflectance([as_earth_search_c1(it)], grid)
    pc, _ = load_reflectance([as_planetary_computer(it)], grid)
    assert es.collection.item() == "earth-search/sentinel-2-c1-l2a"
    assert pc.collection.item() == "planetary-computer/sentinel-2-l2a"
    for b in ("blue", "green", "red", "nir", "swir16", "swir22", "clear"):
        np.testing.assert_array_equal(es[b].values, pc[b].values)
    np.testing.assert_array_equal(_ndvi(es).values, _ndvi(pc).values)


@pytest.mark.parametrize("window,lid", [(KHINGAN, "greater-khingan-demo"), (ZHALONG, "zhalong-demo")])
def test_loaded_reflectance_matches_truth_on_clear_pixels(small_archive, window, lid):
    items = demo_items(small_archive, "sentinel-2-c1-l2a", window, "2026-08")
    land = _landscape(small_archive, lid)
    ds, rep = load_reflectance(items, land.grid(10), bands=list(BANDS))
    world = load_world(42, "small", lid)
    g = world.aoi_grid
    c0 = int(round((g.bounds[0] - world.grid.bounds[0]) / 10))
    r0 = int(round((world.grid.bounds[3] - g.bounds[3]) / 10))
    errs = []
    for t in range(ds.sizes["time"]):
        date = dt.date.fromisoformat(str(ds.solar_date.values[t]))
        truth, _ = surface_reflectance(world, date)
        truth = truth[:, r0:r0 + g.height, c0:c0 + g.width]
        sky = rasterio.open(small_archive / "truth" / lid / "sky" / f"{ds.item_id.values[t]}.tif").read(1)
        m = ds.clear.isel(time=t).values & (sky == 0)
        if m.sum() < 100:
            continue
        red = ds.red.isel(time=t).values
        errs.append(np.abs(red[m] - truth[2][m]))
    err = np.concatenate(errs)
    assert len(errs) >= 3
    assert np.median(err) < 0.003 and np.percentile(err, 99) < 0.02


def test_cloud_leak_is_small(small_archive):
    items = demo_items(small_archive, "sentinel-2-c1-l2a", KHINGAN, "2026-0")
    ds, _ = load_reflectance(items, _landscape(small_archive, "greater-khingan-demo").grid(10))
    leak, cloudy = 0, 0
    for t in range(ds.sizes["time"]):
        sky = rasterio.open(small_archive / "truth" / "greater-khingan-demo" / "sky" / f"{ds.item_id.values[t]}.tif").read(1)
        m = sky == 2  # thick cloud
        cloudy += m.sum()
        leak += (ds.clear.isel(time=t).values & m).sum()
    assert cloudy > 1000 and leak / cloudy < 0.03


def _rewrite_dn(src: Path, dst: Path, delta: int) -> None:
    with rasterio.open(src) as s:
        prof = s.profile
        a = s.read(1).astype(np.int32)
    a = np.where(a == 0, 0, np.clip(a + delta, 1, 65535)).astype(np.uint16)
    prof.update(driver="GTiff")
    with rasterio.open(dst, "w", **prof) as d:
        d.write(a, 1)


def test_double_offset_is_detected_and_corrected(small_archive, tmp_path):
    """A catalog that says 'offset -0.1' over DN already harmonised by the provider (the Earth Search v1 case)."""
    it = demo_items(small_archive, "sentinel-2-c1-l2a", ZHALONG, "2026-08")[0]
    grid = _landscape(small_archive, "zhalong-demo").grid(10)
    good, _ = load_reflectance([it], grid)
    bad = copy.deepcopy(it)
    for k, a in bad["assets"].items():
        if k != "scl":
            dst = tmp_path / Path(a["href"]).name
            _rewrite_dn(Path(a["href"]), dst, -1000)  # harmonised DN, yet raster:bands still says -0.1
            a["href"] = str(dst)
    ds, rep = load_reflectance([bad], grid)
    assert rep.offset_corrections and "applied twice" in rep.offset_corrections[0]
    assert ds.offset.item() == 0.0
    np.testing.assert_allclose(ds.red.values, good.red.values, atol=2e-4)
    raw, rep2 = load_reflectance([bad], grid, check_offset=False)
    # unchecked, the dark band silently collapses to 0 (clipped): the broken series users report
    v = raw.red.values[np.isfinite(raw.red.values)]
    assert not rep2.offset_corrections and np.mean(v == 0) > 0.5


def test_wrong_offset_applied_flag_is_caught_by_the_water_check(small_archive):
    """An item that claims the offset was removed while its DN still carry +1000 (clear water gives it away)."""
    it = demo_items(small_archive, "sentinel-2-c1-l2a", ZHALONG, "2026-08")[0]
    lie = copy.deepcopy(it)
    lie["collection"] = "sentinel-2-l2a"
    lie["properties"].pop("processing:software")
    lie["properties"]["earthsearch:boa_offset_applied"] = True
    grid = _landscape(small_archive, "zhalong-demo").grid(10)
    good, _ = load_reflectance([it], grid)
    ds, rep = load_reflectance([lie], grid)
    assert ds.collection.item() == "earth-search/sentinel-2-l2a"
    assert rep.offset_corrections and "+1000" in rep.offset_corrections[0]
    np.testing.assert_allclose(ds.red.values, good.red.values, atol=2e-4)


def _reproject_item(it: dict, dst_epsg: int, out: Path) -> dict:
    new = copy.deepcopy(it)
    new["id"] = it["id"] + "-utm" + str(dst_epsg)
    new["properties"]["proj:epsg"] = dst_epsg
    for k, a in new["assets"].items():
        with rasterio.open(a["href"]) as s:
            tr, w, h = calculate_default_transform(s.crs, f"EPSG:{dst_epsg}", s.width, s.height, *s.bounds,
                                                   resolution=abs(s.transform.a))
            prof = s.profile | {"driver": "GTiff", "crs": f"EPSG:{dst_epsg}", "transform": tr, "width": w, "height": h}
            dst = out / f"{k}_{dst_epsg}.tif"
            with rasterio.open(dst, "w", **prof) as d:
                reproject(rasterio.band(s, 1), rasterio.band(d, 1), dst_resolution=abs(s.transform.a),
                          resampling=Resampling.nearest, src_nodata=0, dst_nodata=0)
        a["href"] = str(dst)
        a["proj:epsg"] = dst_epsg
        a["proj:shape"] = [h, w]
        a["proj:transform"] = list(tr)[:6]
    return new


def test_several_crs_in_one_search_and_proj_code(small_archive, tmp_path):
    items = demo_items(small_archive, "sentinel-2-c1-l2a", KHINGAN, "2026-07")[:2]
    grid = _landscape(small_archive, "greater-khingan-demo").grid(10)
    other = _reproject_item(items[1], 32652, tmp_path)  # the neighbouring zone, as from an overlapping tile
    # and one in pystac >= 1.13 style: proj:code instead of proj:epsg
    coded = copy.deepcopy(items[0])
    coded["properties"]["proj:code"] = f"EPSG:{coded['properties'].pop('proj:epsg')}"
    ref, _ = load_reflectance(items, grid)
    ds, rep = load_reflectance([coded, other], grid)
    assert ds.sizes["time"] == 2 and not rep.skipped
    np.testing.assert_array_equal(ds.red.isel(time=0).values, ref.red.isel(time=0).values)
    a, b = ds.red.isel(time=1).values, ref.red.isel(time=1).values
    both = np.isfinite(a) & np.isfinite(b)
    assert both.mean() > 0.3 and np.median(np.abs(a[both] - b[both])) < 0.01


def test_same_solar_day_tiles_are_mosaicked(small_archive):
    it = demo_items(small_archive, "sentinel-2-c1-l2a", KHINGAN, "2026-07")[0]
    west, east = copy.deepcopy(it), copy.deepcopy(it)
    east["id"] = it["id"].replace(KHINGAN, "51UWR")
    east["properties"]["grid:code"] = "MGRS-51UWR"
    grid = _landscape(small_archive, "greater-khingan-demo").grid(10)
    ds, _ = load_reflectance([west, east], grid)
    assert ds.sizes["time"] == 1 and "+" in ds.item_id.item()


def test_missing_and_corrupt_assets_skip_their_scene_and_are_reported(small_archive, tmp_path):
    items = demo_items(small_archive, "sentinel-2-c1-l2a", STEPPE, "2026-06")
    assert len(items) >= 4
    missing, corrupt = copy.deepcopy(items[0]), copy.deepcopy(items[1])
    missing["assets"]["red"]["href"] = str(tmp_path / "gone.tif")
    bad = tmp_path / "B11.tif"
    shutil.copy(corrupt["assets"]["swir16"]["href"], bad)
    bad.write_bytes(bad.read_bytes()[:300])  # truncated in the header
    corrupt["assets"]["swir16"]["href"] = str(bad)
    grid = _landscape(small_archive, "hulunbuir-steppe-demo").grid(10)
    ds, rep = load_reflectance([missing, corrupt] + items[2:], grid)
    skipped = {s.item_id: s for s in rep.skipped}
    assert set(skipped) == {missing["id"], corrupt["id"]}
    assert skipped[missing["id"]].asset == "red" and "unreadable" in skipped[missing["id"]].reason
    assert skipped[corrupt["id"]].asset == "swir16"
    assert ds.sizes["time"] == len(items) - 2 and set(ds.item_id.values) == {i["id"] for i in items[2:]}
    assert "2 skipped" in rep.summary()
    assert np.isfinite(ds.red.values).any()
    with pytest.raises(SourceError, match="every scene failed"):
        load_reflectance([missing], grid)


def test_landsat_harmonisation_brings_oli_onto_msi(small_archive):
    items = demo_items(small_archive, "landsat-c2-l2", "125026", "2026-07")
    land = _landscape(small_archive, "hulunbuir-steppe-demo")
    raw, _ = load_reflectance(items, land.grid(30))
    hls, _ = load_reflectance(items, land.grid(30), harmonize=True)
    world = load_world(42, "small", "hulunbuir-steppe-demo")
    g30 = land.grid(30)
    errs_raw, errs_hls = [], []
    for t in range(raw.sizes["time"]):
        date = dt.date.fromisoformat(str(raw.solar_date.values[t]))
        truth, _ = surface_reflectance(world, date)
        c0 = int(round((g30.bounds[0] - world.grid.bounds[0]) / 10))
        r0 = int(round((world.grid.bounds[3] - g30.bounds[3]) / 10))
        blue = truth[0, r0:r0 + g30.height * 3, c0:c0 + g30.width * 3]
        blue = blue.reshape(g30.height, 3, g30.width, 3).mean(axis=(1, 3))
        m = np.isfinite(raw.blue.isel(time=t).values)
        if m.sum() < 50:
            continue
        errs_raw.append(np.mean(raw.blue.isel(time=t).values[m] - blue[m]))
        errs_hls.append(np.mean(hls.blue.isel(time=t).values[m] - blue[m]))
    assert errs_raw
    # OLI blue reads ~0.004 lower than MSI (HLS offset): the adjustment removes that bias
    assert abs(np.mean(errs_hls)) < abs(np.mean(errs_raw))
    assert hls.attrs["harmonized"] == 1


def test_coordinates_are_pixel_centres_and_the_transform_is_the_grids(small_archive):
    """CF / rioxarray read x, y as pixel centres; a top-left convention would shift every cube by half a pixel."""
    it = demo_items(small_archive, "sentinel-2-c1-l2a", STEPPE, "2026-07")[0]
    grid = _landscape(small_archive, "hulunbuir-steppe-demo").grid(10)
    ds, _ = load_reflectance([it], grid)
    np.testing.assert_allclose(ds.x.values, grid.x_coords())
    np.testing.assert_allclose(ds.y.values, grid.y_coords())
    assert tuple(ds.red.rio.transform())[:6] == pytest.approx(grid.transform)
    assert ds.rio.crs.to_epsg() == grid.epsg and ds.red.rio.bounds() == pytest.approx(grid.bounds)


def test_sentinel2_at_20m_gives_the_native_pixels(small_archive):
    it = demo_items(small_archive, "sentinel-2-c1-l2a", ZHALONG, "2026-08")[0]
    g20 = _landscape(small_archive, "zhalong-demo").grid(20)
    ds, _ = load_reflectance([it], g20)
    assert ds.sizes["x"] == g20.width and ds.sizes["y"] == g20.height and ds.red.rio.resolution()[0] == 20
    with rasterio.open(it["assets"]["swir16"]["href"]) as f:
        win = rasterio.windows.from_bounds(*g20.bounds, transform=f.transform)
        dn = f.read(1, window=win).astype(np.float64)
    expected = dn * 1e-4 - 0.1
    got = ds.swir16.isel(time=0).values
    m = np.isfinite(got)
    assert m.mean() > 0.3
    np.testing.assert_allclose(got[m], np.clip(expected[m], 0, 1), atol=1e-6)


def test_a_subset_of_bands_still_gets_the_offset_check(small_archive, tmp_path):
    it = demo_items(small_archive, "sentinel-2-c1-l2a", ZHALONG, "2026-08")[0]
    bad = copy.deepcopy(it)
    for k in ("red", "nir", "swir22"):
        dst = tmp_path / Path(bad["assets"][k]["href"]).name
        _rewrite_dn(Path(bad["assets"][k]["href"]), dst, -1000)
        bad["assets"][k]["href"] = str(dst)
    ds, rep = load_reflectance([bad], _landscape(small_archive, "zhalong-demo").grid(10), bands=["red", "nir"])
    assert list(ds.data_vars) == ["red", "nir", "clear", "snow"]
    assert rep.offset_corrections and ds.offset.item() == 0.0


# ------------------------------------------------------------------------------------------ open handles
def test_each_asset_is_opened_once_per_load(small_archive, monkeypatch):
    """The preflight's open datasets are handed to the readers: one open per asset, not two."""
    import sources._reader as rd

    rd.HANDLES.clear()
    items = demo_items(small_archive, "sentinel-2-c1-l2a", STEPPE, "2026-06")[:3]
    grid = _landscape(small_archive, "hulunbuir-steppe-demo").grid(10)
    opened = []
    real_open = rasterio.open

    def counting_open(path, *a, **k):
        opened.append(str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(rasterio, "open", counting_open)
    bands = ["red", "nir"]
    ds, _ = load_reflectance(items, grid, bands=bands, check_offset=False)
    assert len(rd.HANDLES) == len(items) * (len(bands) + 1)  # every asset checked, its handle kept
    ds.load()
    assert len(opened) == len(set(opened)) == len(items) * (len(bands) + 1), opened
    assert len(rd.HANDLES) == 0


def test_a_file_rewritten_between_two_loads_is_read_as_it_is_now(small_archive, tmp_path):
    """A handle kept for a load that was never computed is not read by a later load of a changed file
    (small chunks on 4 threads: each thread takes a handle of its own)."""
    import dask

    it = demo_items(small_archive, "sentinel-2-c1-l2a", STEPPE, "2026-06")[0]
    red = tmp_path / "red.tif"
    shutil.copy(it["assets"]["red"]["href"], red)
    it["assets"]["red"]["href"] = str(red)
    grid = _landscape(small_archive, "hulunbuir-steppe-demo").grid(10)
    kw = dict(bands=["red"], check_offset=False, chunksize=64)
    with dask.config.set(scheduler="threads", num_workers=4):
        before = load_reflectance([it], grid, **kw)[0].red.values
        load_reflectance([it], grid, **kw)  # never computed: its handle waits
        _rewrite_dn(red, tmp_path / "new.tif", 500)
        shutil.move(tmp_path / "new.tif", red)  # a new file under the old name
        now = load_reflectance([it], grid, **kw)[0].red.values
    ok = np.isfinite(before) & np.isfinite(now) & (before < 0.9)
    assert ok.sum() > 1000
    assert np.allclose((now - before)[ok], 0.05, atol=1e-4)  # +500 DN everywhere: no chunk read the old file


def test_the_handle_pool_closes_what_nobody_takes():
    from sources._reader import HandlePool

    class H:
        closed = False

        def close(self):
            self.closed = True

    pool = HandlePool(cap=2, ttl_s=3600)
    a, b, c, d = H(), H(), H(), H()
    pool.give("u1", a)
    pool.give("u1", b)  # a later preflight of the same file: the older handle is closed
    assert a.closed and not b.closed and len(pool) == 1
    pool.give("u2", c)
    pool.give("u3", d)  # over the cap: the oldest given goes
    assert b.closed and len(pool) == 2
    assert pool.take("u3") is d and pool.take("u3") is None and pool.take("u1") is None
    short = HandlePool(ttl_s=0.0)
    e = H()
    short.give("u", e)
    import time

    time.sleep(0.01)
    assert short.take("u") is None and e.closed


# ------------------------------------------------------------------------------------------ fast paths
@pytest.mark.parametrize("mask_kind", ["scl", "qa"])
@pytest.mark.parametrize("dn_type", [np.uint16, np.float32])
def test_the_compiled_reflectance_kernel_equals_the_numpy_reference(mask_kind, dn_type):
    """The numba kernel the loader runs gives the NumPy reference's output bit for bit: nodata and
    NaN digital numbers, every SCL class and out-of-range values, QA_PIXEL bits, NaN masks, the HLS
    adjustment on and off, snow masked or kept."""
    from sources.load import _reflectance_block, _reflectance_fused

    rng = np.random.default_rng(3)
    t, b, h, w = 3, 6, 37, 29
    dn = rng.integers(0, 14000, (t, b, h, w)).astype(dn_type)
    dn[rng.random(dn.shape) < 0.05] = 0
    if dn_type == np.float32:
        dn[rng.random(dn.shape) < 0.03] = np.nan
    if mask_kind == "scl":
        mask = rng.integers(0, 13, (t, h, w)).astype(np.float32)
        mask[rng.random(mask.shape) < 0.02] = 300
    else:  # clear (21824), snow (30048), cloud (22280), shadow (23888), fill (1) and random bits
        mask = rng.choice([21824, 30048, 22280, 23888, 1], (t, h, w)).astype(np.float32)
        sel = rng.random(mask.shape) < 0.2
        mask[sel] = rng.integers(0, 2 ** 16, int(sel.sum()))
    mask[rng.random(mask.shape) < 0.05] = np.nan
    if dn_type == np.uint16:
        mask = np.nan_to_num(mask, nan=0 if mask_kind == "scl" else 1).astype(np.uint16)
    sc = rng.uniform(2e-5, 1e-4, (t, b)).astype(np.float32)
    off = rng.choice([0.0, -0.1, -0.2], (t, b)).astype(np.float32)
    nod = np.zeros((t, b), np.float32)
    for harmonize in (False, True):
        slope = (rng.uniform(0.97, 1.01, b) if harmonize else np.ones(b)).astype(np.float32)
        icpt = (rng.uniform(-0.004, 0.001, b) if harmonize else np.zeros(b)).astype(np.float32)
        for mask_snow in (True, False):
            kw = dict(slope=slope, intercept=icpt, mask_kind=mask_kind, mask_snow=mask_snow)
            ref = _reflectance_block(dn, mask, sc, off, nod, **kw)
            got = _reflectance_fused(dn, mask, sc, off, nod, **kw)
            assert got.dtype == ref.dtype == np.float32
            assert np.array_equal(got, ref, equal_nan=True), (harmonize, mask_snow)
            assert 0 < np.isnan(got[:, :b]).mean() < 1 and got[:, b].any() and not got[:, b].all()


@pytest.mark.parametrize("resampling", ["nearest", "bilinear"])
def test_integer_reads_give_the_float_reads_reflectance(small_archive, monkeypatch, resampling):
    """Digital numbers read as uint16 (the fast path) give the same dataset as float32 reads, with
    Landsat (30 m, warped, QA_PIXEL fill) and Sentinel-2 (10 and 20 m, SCL) in one load."""
    import dask

    import sources.load as ld

    lid = "hulunbuir-steppe-demo"
    land = _landscape(small_archive, lid)
    items = search_items(small_archive / "catalog.json", intersects=land.geometry, start="2026-06-01",
                         end="2026-07-15", max_cloud=90)
    assert {i["collection"] for i in items} == {"sentinel-2-c1-l2a", "landsat-c2-l2"}
    out, stacked = {}, {}
    real_stack = ld.stackstac.stack

    def spy(*a, **k):  # the pixel type each stackstac stack is built with
        stacked.setdefault(integer, set()).add(str(k["dtype"]))
        return real_stack(*a, **k)

    monkeypatch.setattr(ld.stackstac, "stack", spy)
    for integer in (True, False):
        monkeypatch.setattr(ld, "_INTEGER_READS", integer)
        ds, _ = load_reflectance(items, land.grid(10), bands=["red", "nir", "nir08", "swir22"], harmonize=True,
                                 resampling=resampling)
        with dask.config.set(scheduler="threads"):
            out[integer] = ds.compute()
    assert stacked == {True: {"uint16"}, False: {"float32"}}  # both paths really ran
    for v in out[True].data_vars:
        assert out[True][v].dtype == out[False][v].dtype
        np.testing.assert_array_equal(out[True][v].values, out[False][v].values, err_msg=v)
    assert 0.05 < float(out[True]["clear"].mean()) < 0.99


def test_the_crs_from_geokeys_alone_is_the_crs_of_the_real_scenes(real_data):
    """The loader's GDAL option ``GTIFF_SRS_SOURCE=GEOKEYS`` (half of an open's cost saved) reads the
    same CRS from the real Sentinel-2 and Landsat files as GDAL's default does."""
    from sources.load import _rio_env

    s2 = real_data / "sentinel-2-l2a_S2A_29RKH_20200219"
    files = [s2 / "B04.tif", s2 / "SCL.tif"]
    files += sorted((real_data / "landsat-c2-l2_LC08_L2SP_001062_20201031").glob("*.TIF"))[:2]
    assert len(files) == 4
    for f in files:
        with rasterio.Env():
            with rasterio.open(f) as ds:
                default = ds.crs
        with _rio_env():
            with rasterio.open(f) as ds:
                geokeys = ds.crs
        assert default.to_epsg() is not None and geokeys.to_epsg() == default.to_epsg(), f
        assert geokeys == default, f
