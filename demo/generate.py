"""Generate the demo archive: a static STAC catalog of Sentinel-2 L2A and Landsat C2 L2 COGs, plus truth.

Layout of ``ARCHIVE/``::

    catalog.json                       static STAC catalog (relative links)
    sentinel-2-c1-l2a/collection.json  and <item-id>/<item-id>.json + B02.tif ... SCL.tif
    landsat-c2-l2/collection.json      and <item-id>/<item-id>.json + <product>_SR_B2.TIF ... _QA_PIXEL.TIF
    aoi.geojson                        the demo windows as landscapes (same schema as aoi/landscapes.geojson)
    truth/truth.json                   scenario, events, distractors, per-scene notes
    truth/events.geojson               event and distractor outlines (EPSG:4326) with expected outcome
    truth/<window>/*.tif               static truth rasters on the window's landscape grid
    truth/<window>/sky/<item-id>.tif   per-scene sky truth (0 clear, 1 thin cloud, 2 cloud, 3 shadow, 4 haze)
    truth/<window>/observations.csv    per-scene truth: water ha, snow, haze, cloud fractions
    manifest.json                      seed, size, counts, and a digest of every file
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import datetime as dt
import functools
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import Transformer
from rasterio.features import shapes as raster_shapes
from rasterio.io import MemoryFile
from shapely.geometry import Polygon, shape
from shapely.ops import unary_union

from aoi import Grid, load_landscapes
from aoi.grid import reproject_geometry, utm_epsg_for
from aoi.errors import AmurwatchError
from sources.profiles import (
    LANDSAT_C2_BANDS,
    LANDSAT_QA_ASSET,
    LANDSAT_SR_OFFSET,
    LANDSAT_SR_SCALE,
    NODATA_DN,
    S2_BOA_ADD_OFFSET_DN,
    S2_C1_BANDS,
    S2_SCALE,
    S2_SCL_ASSET,
    SCL,
)

from . import physics
from .physics import BANDS, LC, World, build_world, surface_reflectance
from .scenario import Acquisition, Scenario, WindowSpec, build_scenario, rng_for
from .sky import apply_sky, block_mean, draw_sky, msi_to_oli, qa_pixel_from, scl_from, to_landsat_grid
from .stac import LANDSAT_COLLECTION, S2_COLLECTION, collection_dict, footprint_lonlat, landsat_item, s2_item

__all__ = ["generate_archive", "ArchiveSummary", "GENERATOR_VERSION", "DemoArchiveError", "demo_landscapes",
           "load_world", "USGS_DNBR_BREAKS"]

GENERATOR_VERSION = "1"
_MARKER = ".amurwatch-demo-archive"
#: Key & Benson (2006) dNBR class breaks: unburned, low, moderate-low, moderate-high, high
USGS_DNBR_BREAKS = (0.10, 0.27, 0.44, 0.66)
_NOISE_ABS, _NOISE_REL = 0.002, 0.006  # sensor + atmospheric-correction noise, reflectance units


class DemoArchiveError(AmurwatchError):
    """The demo archive cannot be generated where asked."""


@dataclass
class ArchiveSummary:
    root: Path
    seed: int
    size: str
    n_items: dict[str, int]
    n_files: int
    bytes: int
    seconds: float


# ------------------------------------------------------------------------------------ windows as AOIs
def _window_polygon(spec: WindowSpec, side_m: float) -> tuple[dict, int]:
    epsg = utm_epsg_for(spec.lon, spec.lat)
    fwd = Transformer.from_crs(4326, epsg, always_xy=True)
    cx, cy = fwd.transform(spec.lon, spec.lat)
    cx, cy = round(cx / 60) * 60, round(cy / 60) * 60
    half = side_m / 2
    sq = Polygon([(cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half), (cx - half, cy + half)])
    ll = reproject_geometry(sq.segmentize(side_m / 8), epsg, 4326)
    coords = [[round(x, 7), round(y, 7)] for x, y in ll.exterior.coords]
    return {"type": "Polygon", "coordinates": [coords]}, epsg


def demo_landscapes(scenario: Scenario) -> dict[str, Any]:
    """The demo windows as an AOI FeatureCollection (the same schema as ``aoi/landscapes.geojson``)."""
    side = scenario.spec.window_px * 10.0
    feats = []
    for w in scenario.windows:
        geom, _ = _window_polygon(w, side)
        feats.append({"type": "Feature", "id": w.id, "properties": {
            "id": w.id, "name": w.name, "country": ["CN"], "ecosystems": list(w.ecosystems),
            "managers": [f"{w.landscape_id}.manager@example.org"], "boundary_source": f"demo window in {w.landscape_id}"},
            "geometry": geom})
    return {"type": "FeatureCollection", "name": "amurwatch_demo_windows", "features": feats}


# ------------------------------------------------------------------------------------ raster IO
def _write_cog(path: Path, arr: np.ndarray, epsg: int, transform: tuple, nodata: float | int | None) -> int:
    """Write a single-band tiled, DEFLATE-compressed COG; return its size in bytes."""
    h, w = arr.shape
    profile = dict(driver="GTiff", width=w, height=h, count=1, dtype=arr.dtype.name, crs=f"EPSG:{epsg}",
                   transform=Affine(*transform), nodata=nodata)
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(arr, 1)
        with mem.open() as src:
            rasterio.shutil.copy(src, str(path), driver="COG", COMPRESS="DEFLATE", PREDICTOR="2",
                                 BLOCKSIZE="256", OVERVIEWS="NONE" if max(h, w) <= 512 else "AUTO")
    return path.stat().st_size


def _crop_to(world: World, grid: Grid, arr: np.ndarray) -> np.ndarray:
    """Cut a world-grid (10 m) array to a landscape grid (10 m, inside the world grid)."""
    c0 = int(round((grid.bounds[0] - world.grid.bounds[0]) / 10))
    r0 = int(round((world.grid.bounds[3] - grid.bounds[3]) / 10))
    h, w = grid.shape
    return arr[..., r0:r0 + h, c0:c0 + w]


# ------------------------------------------------------------------------------------ worker side
@functools.lru_cache(maxsize=4)
def load_world(seed: int, size: str, window_id: str) -> World:
    """The static world of a demo window (cached per process)."""
    sc = build_scenario(seed, size)
    spec = next(w for w in sc.windows if w.id == window_id)
    fc = demo_landscapes(sc)
    from aoi import parse_landscapes

    ls = {x.id: x for x in parse_landscapes(json.dumps(fc), source="demo windows")}
    return build_world(sc, spec, ls[window_id].grid(10.0))


def _noisy(rng: np.random.Generator, r: np.ndarray) -> np.ndarray:
    gain = 1 + rng.normal(0, 0.005)
    return (r * gain + rng.normal(0, 1, r.shape).astype(np.float32) * (_NOISE_ABS + _NOISE_REL * np.abs(r))).astype(np.float32)


def _s2_dn(r: np.ndarray, valid: np.ndarray) -> np.ndarray:
    dn = np.rint(r / S2_SCALE - S2_BOA_ADD_OFFSET_DN)
    return np.where(valid, np.clip(dn, 1, 65535), NODATA_DN).astype(np.uint16)


def _landsat_dn(r: np.ndarray, valid: np.ndarray) -> np.ndarray:
    dn = np.rint((r - LANDSAT_SR_OFFSET) / LANDSAT_SR_SCALE)
    return np.where(valid, np.clip(dn, 1, 65535), NODATA_DN).astype(np.uint16)


def _s2_item_id(acq: Acquisition, spec: WindowSpec) -> str:
    return f"S2{acq.platform[-1].upper()}_T{spec.mgrs}_{acq.datetime.strftime('%Y%m%dT%H%M%S')}_L2A"


def _landsat_ids(acq: Acquisition, spec: WindowSpec) -> tuple[str, str]:
    prefix = "LC08" if acq.platform == "landsat-8" else "LC09"
    d = acq.datetime.strftime("%Y%m%d")
    proc = (acq.datetime + dt.timedelta(days=6)).strftime("%Y%m%d")
    return f"{prefix}_L2SP_{spec.wrs}_{d}_02_T1", f"{prefix}_L2SP_{spec.wrs}_{d}_{proc}_02_T1"


def _render(root: str, seed: int, size: str, window_id: str, acq: Acquisition) -> dict[str, Any]:
    """Render one acquisition: COGs, item JSON and per-scene truth. Runs in a worker process."""
    world = load_world(seed, size, window_id)
    spec = world.spec
    rng = rng_for(seed, "noise", window_id, acq.sensor, acq.datetime.isoformat())
    refl, aux = surface_reflectance(world, acq.date)
    sky = draw_sky(world, acq)
    obs = apply_sky(refl, sky)
    epsg = world.grid.epsg
    sun = (sky.sun_elevation, sky.sun_azimuth)
    rootp = Path(root)
    wtruth = rootp / "truth" / window_id
    truth_sky = _crop_to(world, world.aoi_grid, sky.truth_classes())

    if acq.sensor == "S2":
        item_id = _s2_item_id(acq, spec)
        d = rootp / S2_COLLECTION / item_id
        d.mkdir(parents=True, exist_ok=True)
        b = world.grid.bounds
        t10 = [10.0, 0.0, b[0], 0.0, -10.0, b[3]]
        t20 = [20.0, 0.0, b[0], 0.0, -20.0, b[3]]
        valid10 = sky.valid
        valid20 = block_mean(sky.valid.astype(np.float32), 2) > 0.999
        obs20 = block_mean(obs, 2)
        files, sizes = {}, {}
        for i, band in enumerate(BANDS):
            bs = S2_C1_BANDS[band]
            if bs.gsd == 10:
                dn, tr = _s2_dn(_noisy(rng, obs[i]), valid10), t10
            else:
                dn, tr = _s2_dn(_noisy(rng, obs20[i]), valid20), t20
            fn = f"{bs.file_stem}.tif"
            sizes[band] = _write_cog(d / fn, dn, epsg, tr, NODATA_DN)
            files[band] = f"./{fn}"
        sky20 = {"opacity": block_mean(sky.opacity, 2), "shadow": block_mean(sky.shadow, 2),
                 "haze": block_mean(sky.haze, 2), "detect": block_mean(sky.detect, 2), "valid": valid20}
        surf20 = {"water": block_mean(aux["water"].astype(np.float32), 2), "snow": block_mean(aux["snow"], 2)}
        scl = scl_from(obs20, surf20, sky20, rng)
        sizes[S2_SCL_ASSET] = _write_cog(d / "SCL.tif", scl, epsg, t20, NODATA_DN)
        files[S2_SCL_ASSET] = "./SCL.tif"
        n_valid = max(1, int(valid20.sum()))
        pct = lambda *cls: float(np.isin(scl, cls).sum()) / n_valid * 100  # noqa: E731
        stats = {"cloud_cover": pct(SCL.CLOUD_MEDIUM, SCL.CLOUD_HIGH, SCL.THIN_CIRRUS),
                 "nodata": float((~valid20).mean() * 100), "shadow": pct(SCL.CLOUD_SHADOW),
                 "vegetation": pct(SCL.VEGETATION), "not_vegetated": pct(SCL.NOT_VEGETATED),
                 "water": pct(SCL.WATER), "cloud_medium": pct(SCL.CLOUD_MEDIUM), "cloud_high": pct(SCL.CLOUD_HIGH),
                 "cirrus": pct(SCL.THIN_CIRRUS), "snow": pct(SCL.SNOW)}
        geometry = _footprint(epsg, b, valid10, 10.0)
        item = s2_item(item_id=item_id, platform=acq.platform, when=acq.datetime, epsg=epsg, geometry=geometry,
                       transforms={10: t10, 20: t20}, shapes={10: list(obs.shape[1:]), 20: list(obs20.shape[1:])},
                       files=files, file_sizes=sizes, stats=stats, mgrs=spec.mgrs, sun=sun)
        cloud_cover = stats["cloud_cover"]
        collection = S2_COLLECTION
    else:
        item_id, product_id = _landsat_ids(acq, spec)
        d = rootp / LANDSAT_COLLECTION / item_id
        d.mkdir(parents=True, exist_ok=True)
        obs30, lb = to_landsat_grid(obs, world)
        oli = msi_to_oli(obs30)
        valid30 = to_landsat_grid(sky.valid.astype(np.float32), world)[0] > 0.999
        t30 = [30.0, 0.0, lb[0], 0.0, -30.0, lb[3]]
        files, sizes = {}, {}
        for i, band in enumerate(LANDSAT_C2_BANDS):
            fn = f"{product_id}_{LANDSAT_C2_BANDS[band].file_stem}.TIF"
            sizes[band] = _write_cog(d / fn, _landsat_dn(_noisy(rng, oli[i]), valid30), epsg, t30, NODATA_DN)
            files[band] = f"./{fn}"
        g30 = lambda a: to_landsat_grid(a.astype(np.float32), world)[0]  # noqa: E731
        sky30 = {"opacity": g30(sky.opacity), "shadow": g30(sky.shadow), "haze": g30(sky.haze),
                 "detect": g30(sky.detect), "valid": valid30}
        qa = qa_pixel_from(obs30, {"water": g30(aux["water"]), "snow": g30(aux["snow"])}, sky30)
        fn = f"{product_id}_QA_PIXEL.TIF"
        sizes[LANDSAT_QA_ASSET] = _write_cog(d / fn, qa, epsg, t30, 1)
        files[LANDSAT_QA_ASSET] = f"./{fn}"
        cloud_cover = float(((qa >> 3) & 1)[valid30].mean() * 100) if valid30.any() else 100.0
        geometry = _footprint(epsg, lb, valid30, 30.0)
        item = landsat_item(item_id=item_id, platform=acq.platform, when=acq.datetime, epsg=epsg, geometry=geometry,
                            transform=t30, shape=list(qa.shape), files=files, file_sizes=sizes,
                            cloud_cover=cloud_cover, wrs=spec.wrs, sun=sun)
        collection = LANDSAT_COLLECTION

    (d / f"{item_id}.json").write_text(json.dumps(item, indent=1))
    (wtruth / "sky").mkdir(parents=True, exist_ok=True)
    _write_cog(wtruth / "sky" / f"{item_id}.tif", truth_sky, epsg, world.aoi_grid.transform, 255)
    water = _crop_to(world, world.aoi_grid, aux["water"])
    snow = _crop_to(world, world.aoi_grid, aux["snow"])
    n = truth_sky.size
    return {
        "window_id": window_id, "collection": collection, "item_id": item_id, "sensor": acq.sensor,
        "datetime": item["properties"]["datetime"], "date": acq.date.isoformat(),
        "eo_cloud_cover": round(cloud_cover, 3),
        "true_cloud_fraction": round(float(np.isin(truth_sky, (1, 2)).sum()) / n, 4),
        "true_shadow_fraction": round(float((truth_sky == 3).sum()) / n, 4),
        "haze": bool(sky.haze.max() > 0.3),
        "mean_snow_fraction": round(float(snow.mean()), 4),
        "water_ha": round(float(water.sum()) * world.aoi_grid.pixel_area_ha, 2),
        "bbox": item["bbox"],
    }


def _footprint(epsg: int, bounds, valid: np.ndarray, res: float) -> dict:
    if valid.all():
        return footprint_lonlat(epsg, bounds)
    rows, cols = np.nonzero(valid[::4, ::4])
    xs = bounds[0] + (cols * 4 + 0.5) * res
    ys = bounds[3] - (rows * 4 + 0.5) * res
    if len(xs) < 3:
        return footprint_lonlat(epsg, bounds)
    return footprint_lonlat(epsg, bounds, list(zip(xs.tolist(), ys.tolist())))


def _render_many(root: str, seed: int, size: str, window_id: str, acqs: list[Acquisition]) -> list[dict]:
    os.environ.setdefault("GDAL_NUM_THREADS", "1")
    return [_render(root, seed, size, window_id, a) for a in acqs]


# ------------------------------------------------------------------------------------ static truth
def _nbr(r: np.ndarray) -> np.ndarray:
    nir, sw = r[BANDS.index("nir")], r[BANDS.index("swir22")]
    return (nir - sw) / np.maximum(nir + sw, 1e-6)


def _ndvi(r: np.ndarray) -> np.ndarray:
    nir, red = r[BANDS.index("nir")], r[BANDS.index("red")]
    return (nir - red) / np.maximum(nir + red, 1e-6)


def _vectorise(mask: np.ndarray, grid: Grid, min_px: int = 1):
    polys = [shape(g) for g, v in raster_shapes(mask.astype(np.uint8), mask=mask, transform=Affine(*grid.transform)) if v == 1]
    if not polys:
        return None
    u = unary_union(polys)
    return reproject_geometry(u, grid.epsg, 4326)


def _theil_sen_mk(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Theil-Sen slope and Mann-Kendall two-sided p (no ties correction) along axis 0."""
    from scipy.stats import norm

    n = y.shape[0]
    i, j = np.triu_indices(n, 1)
    diffs = y[j] - y[i]
    slope = np.median(diffs / (j - i)[:, None, None], axis=0)
    s = np.sign(diffs).sum(axis=0)
    var = n * (n - 1) * (2 * n + 5) / 18.0
    z = np.where(s > 0, (s - 1) / np.sqrt(var), np.where(s < 0, (s + 1) / np.sqrt(var), 0.0))
    return slope.astype(np.float32), (2 * (1 - norm.cdf(np.abs(z)))).astype(np.float32)


def _static_truth(root: Path, scenario: Scenario, world: World) -> tuple[list[dict], dict]:
    """Write the static truth rasters of one window; return its event features and notes."""
    g = world.aoi_grid
    wd = root / "truth" / world.spec.id
    wd.mkdir(parents=True, exist_ok=True)
    crop = functools.partial(_crop_to, world, g)
    lc = crop(world.landcover)
    _write_cog(wd / "landcover.tif", lc, g.epsg, g.transform, 0)
    my = scenario.spec.monitoring_year
    feats: list[dict] = []
    notes: dict[str, Any] = {"landcover_codes": {str(k): v for k, v in physics.LC_NAMES.items()}}
    pixel_ha = g.pixel_area_ha

    def feat(fid, kind, geom, expect_alert, **props):
        if geom is None:
            return
        feats.append({"type": "Feature", "id": fid, "geometry": json.loads(json.dumps(geom.__geo_interface__)),
                      "properties": {"id": fid, "window_id": world.spec.id, "landscape_id": world.spec.id,
                                     "parent_landscape_id": world.spec.landscape_id, "kind": kind,
                                     "expect_alert": expect_alert, **props}})

    if world.spec.kind == "forest":
        forest = np.isin(world.landcover, (LC.LARCH, LC.BIRCH))
        if world.old_clearing is not None:
            forest &= ~world.old_clearing.mask
        _write_cog(wd / "forest_baseline.tif", crop(forest).astype(np.uint8), g.epsg, g.transform, None)
        cdoy = np.zeros(world.shape, np.int16)
        for c in world.clearings:
            cdoy[c.mask] = c.date.timetuple().tm_yday
            m = crop(c.mask)
            feat(c.id, "forest_loss", _vectorise(m, g), True, date=c.date.isoformat(),
                 area_ha=round(float(m.sum()) * pixel_ha, 3))
        _write_cog(wd / "clearing_doy.tif", crop(cdoy), g.epsg, g.transform, 0)
        oc = world.old_clearing
        feat(oc.id, "distractor", _vectorise(crop(oc.mask), g), False, distractor="old_clearing",
             date=oc.date.isoformat(), area_ha=round(float(crop(oc.mask).sum()) * pixel_ha, 3),
             note="cleared in the baseline years; regrowing; must not alert again")
        fd = world.fire_date
        pre, _ = surface_reflectance(world, fd - dt.timedelta(days=1))
        post, _ = surface_reflectance(world, fd + dt.timedelta(days=1))
        dnbr = crop(_nbr(pre) - _nbr(post)) * crop(world.fire_severity > 0)
        cls = np.digitize(dnbr, USGS_DNBR_BREAKS).astype(np.uint8)
        _write_cog(wd / "burn_dnbr.tif", dnbr.astype(np.float32), g.epsg, g.transform, None)
        _write_cog(wd / "burn_severity.tif", cls, g.epsg, g.transform, None)
        burned = cls >= 1
        comp = {name: round(float((cls == k).sum()) * pixel_ha, 3) for k, name in
                enumerate(("unburned", "low", "moderate_low", "moderate_high", "high")) if k > 0}
        feat(f"{world.spec.id}-fire", "burn_scar", _vectorise(burned, g), True, date=fd.isoformat(),
             area_ha=round(float(burned.sum()) * pixel_ha, 3), severity_ha=comp)
    if world.crop_fields:
        for k, (fm, harvest) in enumerate(world.crop_fields):
            feat(f"{world.spec.id}-field-{k + 1}", "distractor", _vectorise(crop(fm), g), False, distractor="crop_harvest",
                 harvest_doy={str(y): d for y, d in harvest.items()}, area_ha=round(float(crop(fm).sum()) * pixel_ha, 3))
    if world.spec.kind == "steppe":
        years = world.years
        gs_dates = lambda y: [dt.date(y, 6, 1) + dt.timedelta(days=k) for k in range(0, 107, 7)]  # noqa: E731
        series = np.stack([np.mean([crop(_ndvi(surface_reflectance(world, d)[0])) for d in gs_dates(y)], axis=0)
                           for y in years])
        slope, p = _theil_sen_mk(series)
        grass = lc == LC.GRASS
        klass = np.zeros(lc.shape, np.int8)
        klass[(slope <= -0.005) & (p <= 0.05)] = -1
        klass[(slope >= 0.005) & (p <= 0.05)] = 1
        klass[~grass] = 0
        _write_cog(wd / "grassland_slope.tif", np.where(grass, slope, np.nan).astype(np.float32), g.epsg, g.transform, None)
        _write_cog(wd / "grassland_class.tif", klass, g.epsg, g.transform, None)
        _write_cog(wd / "grassland_mask.tif", grass.astype(np.uint8), g.epsg, g.transform, None)
        notes["grassland"] = {"growing_season": "06-01..09-15", "years": list(years),
                              "ndvi_mean_by_year": [round(float(series[i][grass].mean()), 4) for i in range(len(years))],
                              "class_ha": {"degrading": round(float((klass == -1).sum()) * pixel_ha, 2),
                                           "stable": round(float(((klass == 0) & grass).sum()) * pixel_ha, 2),
                                           "improving": round(float((klass == 1).sum()) * pixel_ha, 2)}}
        deg = klass == -1
        feat(f"{world.spec.id}-degradation", "grassland_degradation", _vectorise(deg, g), True,
             date=f"{years[0]}..{years[-1]}", area_ha=round(float(deg.sum()) * pixel_ha, 3))
        imp = klass == 1
        feat(f"{world.spec.id}-improving", "distractor", _vectorise(imp, g), False, distractor="grassland_improving",
             area_ha=round(float(imp.sum()) * pixel_ha, 3))
    if world.spec.kind == "wetland":
        _write_cog(wd / "elevation.tif", crop(world.elevation).astype(np.float32), g.epsg, g.transform, None)
        season = lambda y: [dt.date(y, 7, 1) + dt.timedelta(days=k) for k in range(0, 92, 7)]  # noqa: E731
        base = np.mean([crop(physics.water_mask(world, d)) for y in scenario.spec.baseline_years for d in season(y)], axis=0)
        now = np.mean([crop(physics.water_mask(world, d)) for d in season(my)], axis=0)
        _write_cog(wd / "water_baseline_frequency.tif", base.astype(np.float32), g.epsg, g.transform, None)
        lost = (base >= 0.5) & (now < 0.5)
        _write_cog(wd / "water_lost.tif", lost.astype(np.uint8), g.epsg, g.transform, None)
        base_ha, now_ha = float((base >= 0.5).sum()) * pixel_ha, float((now >= 0.5).sum()) * pixel_ha
        notes["wetland"] = {"season": "07-01..09-30", "baseline_water_ha": round(base_ha, 2),
                            "monitoring_water_ha": round(now_ha, 2),
                            "change_pct": round((now_ha - base_ha) / base_ha * 100, 1)}
        feat(f"{world.spec.id}-drying", "wetland_loss", _vectorise(lost, g), True,
             date=world.drying[0].isoformat(), area_ha=round(float(lost.sum()) * pixel_ha, 3))
        ff = crop(world.flood_field)
        feat(f"{world.spec.id}-temporary-flood", "distractor", _vectorise(ff, g), False, distractor="temporary_flood",
             date=world.flood_window[0].isoformat(), date_end=world.flood_window[1].isoformat(),
             area_ha=round(float(ff.sum()) * pixel_ha, 3))
    notes["transient_snow"] = [{"date": d.isoformat(), "days": n, "depth": v} for d, n, v in world.transient_snow]
    notes["interannual_vigour"] = {str(y): round(v, 4) for y, v in world.year_vigour.items()}
    return feats, notes


# ------------------------------------------------------------------------------------ driver
def _digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
    return out


def generate_archive(out: str | Path, *, seed: int = 42, size: str = "default", workers: int | None = None,
                     overwrite: bool = False, progress: Callable[[int, int], None] | None = None) -> ArchiveSummary:
    """Generate the demo archive under ``out``.

    Parameters
    ----------
    out
        Target folder. It must be empty or absent unless ``overwrite`` (which deletes it first).
    seed
        Scenario seed: the same seed and size give a byte-identical archive.
    size
        ``"default"`` (3 windows of 4 km, ~300 MB) or ``"small"`` (1.6 km windows, for tests).
    workers
        Worker processes (spawned). Defaults to the number of CPUs.
    progress
        Called as ``progress(done, total)`` after each rendered scene.
    """
    t0 = time.perf_counter()
    root = Path(out)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise DemoArchiveError(f"{str(root)!r} is not empty; pass overwrite=True (CLI: --overwrite) to replace it, "
                                   "or choose an empty folder")
        if not (root / _MARKER).exists():
            raise DemoArchiveError(f"refusing to delete {str(root)!r}: it does not look like a demo archive "
                                   "(no .amurwatch-demo-archive marker); remove it yourself or choose another folder")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / _MARKER).write_text("amurwatch demo archive; safe to delete\n")
    scenario = build_scenario(seed, size)
    fc = demo_landscapes(scenario)
    (root / "aoi.geojson").write_text(json.dumps(fc, indent=1) + "\n")
    landscapes = {x.id: x for x in load_landscapes(root / "aoi.geojson")}

    jobs = []
    for w in scenario.windows:
        acqs = scenario.acquisitions[w.id]
        for k in range(0, len(acqs), 8):
            jobs.append((str(root), seed, size, w.id, acqs[k:k + 8]))
    total = sum(len(j[4]) for j in jobs)
    results: list[dict] = []
    workers = workers or os.cpu_count() or 1
    done = 0
    if workers == 1:
        for j in jobs:
            r = _render_many(*j)
            results += r
            done += len(r)
            if progress:
                progress(done, total)
    else:
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
            futs = [ex.submit(_render_many, *j) for j in jobs]
            for f in cf.as_completed(futs):
                r = f.result()
                results += r
                done += len(r)
                if progress:
                    progress(done, total)
    results.sort(key=lambda r: (r["window_id"], r["datetime"], r["collection"]))

    # static truth (main process)
    events: list[dict] = []
    window_notes = {}
    for w in scenario.windows:
        world = load_world(seed, size, w.id)
        f, n = _static_truth(root, scenario, world)
        events += f
        window_notes[w.id] = n
        with open(root / "truth" / w.id / "observations.csv", "w", newline="") as fh:
            cols = ["item_id", "collection", "sensor", "datetime", "eo_cloud_cover", "true_cloud_fraction",
                    "true_shadow_fraction", "haze", "mean_snow_fraction", "water_ha"]
            wr = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            wr.writeheader()
            wr.writerows(r for r in results if r["window_id"] == w.id)
    (root / "truth" / "events.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": events}, indent=1))

    # collections and catalog
    by_col: dict[str, list[dict]] = {S2_COLLECTION: [], LANDSAT_COLLECTION: []}
    for r in results:
        by_col[r["collection"]].append(r)
    for cid, rs in by_col.items():
        bb = [min(r["bbox"][0] for r in rs), min(r["bbox"][1] for r in rs),
              max(r["bbox"][2] for r in rs), max(r["bbox"][3] for r in rs)]
        times = sorted(r["datetime"] for r in rs)
        (root / cid / "collection.json").write_text(json.dumps(
            collection_dict(cid, bb, [times[0], times[-1]], sorted(r["item_id"] for r in rs)), indent=1))
    (root / "catalog.json").write_text(json.dumps({
        "type": "Catalog", "stac_version": "1.0.0", "id": "amurwatch-demo",
        "description": f"amurwatch synthetic demo archive (seed {seed}, size {size}). Not real data.",
        "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"},
                  {"rel": "self", "href": "./catalog.json", "type": "application/json"}]
                 + [{"rel": "child", "href": f"./{cid}/collection.json", "type": "application/json"} for cid in by_col],
    }, indent=1))
    truth = {
        "generator_version": GENERATOR_VERSION, "seed": seed, "size": size,
        "baseline_years": list(scenario.spec.baseline_years), "monitoring_year": scenario.spec.monitoring_year,
        "monitoring_season": [f"{scenario.spec.monitoring_year}-{scenario.spec.monitoring_start}",
                              f"{scenario.spec.monitoring_year}-{scenario.spec.monitoring_end}"],
        "windows": {w.id: {"landscape_id": w.landscape_id, "kind": w.kind, "epsg": landscapes[w.id].grid().epsg,
                           "grid_bounds": list(landscapes[w.id].grid().bounds), **window_notes[w.id]}
                    for w in scenario.windows},
        "scenes_with_haze": [r["item_id"] for r in results if r["haze"]],
        "sky_codes": {"0": "clear", "1": "thin cloud", "2": "cloud", "3": "cloud shadow", "4": "haze", "255": "no data"},
        "noise": {"absolute": _NOISE_ABS, "relative": _NOISE_REL},
        "usgs_dnbr_breaks": list(USGS_DNBR_BREAKS),
    }
    (root / "truth" / "truth.json").write_text(json.dumps(truth, indent=1))
    digest = _digest(root)
    nbytes = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    n_items = {cid: len(rs) for cid, rs in by_col.items()}
    (root / "manifest.json").write_text(json.dumps({
        "generator_version": GENERATOR_VERSION, "seed": seed, "size": size, "items": n_items,
        "files": digest}, indent=1))
    return ArchiveSummary(root, seed, size, n_items, len(digest) + 1, nbytes, time.perf_counter() - t0)
