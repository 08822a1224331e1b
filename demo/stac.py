"""STAC items and collections for the demo archive, in the conventions of Earth Search.

Sentinel-2 items follow ``sentinel-2-c1-l2a`` (per-asset ``proj:shape``/``proj:transform``,
``raster:bands`` scale 0.0001 / offset -0.1, ``s2:processing_baseline``); Landsat items follow
``landsat-c2-l2`` (item-level ``proj:*``, scale 2.75e-05 / offset -0.2, ``qa_pixel`` bitfields).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from shapely.geometry import MultiPoint, box, mapping

from aoi.grid import reproject_geometry

from sources.profiles import (
    LANDSAT_C2_BANDS,
    LANDSAT_QA_ASSET,
    LANDSAT_SR_OFFSET,
    LANDSAT_SR_SCALE,
    NODATA_DN,
    QA,
    S2_C1_BANDS,
    S2_OFFSET_C1,
    S2_SCALE,
    S2_SCL_ASSET,
)

__all__ = ["S2_COLLECTION", "LANDSAT_COLLECTION", "s2_item", "landsat_item", "collection_dict",
           "s2_processing_baseline", "footprint_lonlat", "COG_TYPE"]

S2_COLLECTION = "sentinel-2-c1-l2a"
LANDSAT_COLLECTION = "landsat-c2-l2"
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
_EXT = "https://stac-extensions.github.io/{}/schema.json"
S2_EXTENSIONS = [_EXT.format(e) for e in ("eo/v1.1.0", "file/v2.1.0", "grid/v1.1.0", "mgrs/v1.0.0", "processing/v1.1.0",
                                          "projection/v1.1.0", "raster/v1.1.0", "sentinel-2/v1.0.0", "view/v1.0.0")]
LANDSAT_EXTENSIONS = [_EXT.format(e) for e in ("projection/v1.1.0", "classification/v1.0.0", "raster/v1.1.0",
                                               "processing/v1.1.0", "grid/v1.1.0", "view/v1.0.0", "eo/v1.1.0",
                                               "landsat/v2.0.0")]


def s2_processing_baseline(date: dt.date) -> str:
    """Processing baseline of a collection-1 product acquired on ``date``.

    Collection-1 reprocessed the archive before 2022 with baseline 05.00; later products carry the
    baseline in force when they were made. All are >= 04.00, so all carry the +1000 DN offset.
    """
    if date < dt.date(2022, 1, 25):
        return "05.00"
    for start, pb in ((dt.date(2024, 7, 23), "05.11"), (dt.date(2023, 12, 13), "05.10"),
                      (dt.date(2022, 12, 6), "05.09"), (dt.date(2022, 1, 25), "04.00")):
        if date >= start:
            return pb
    raise AssertionError  # pragma: no cover


def footprint_lonlat(epsg: int, bounds, valid_points_xy=None) -> dict[str, Any]:
    """GeoJSON footprint in lon/lat: the data area of the scene, from its projected bounds or points."""
    geom = box(*bounds) if valid_points_xy is None else MultiPoint(valid_points_xy).convex_hull
    g = reproject_geometry(geom.segmentize(500.0), epsg, 4326).simplify(1e-6)
    out = mapping(g)
    return {"type": out["type"], "coordinates": _round(out["coordinates"])}


def _round(c):
    if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
        return [round(float(v), 7) for v in c]
    return [_round(x) for x in c]


def _bbox(geom: dict) -> list[float]:
    xs, ys = [], []

    def walk(c):
        if c and isinstance(c[0], (int, float)):
            xs.append(c[0]), ys.append(c[1])
        else:
            for x in c:
                walk(x)
    walk(geom["coordinates"])
    return [min(xs), min(ys), max(xs), max(ys)]


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _links(collection: str, item_id: str) -> list[dict]:
    return [
        {"rel": "self", "href": f"./{item_id}.json", "type": "application/geo+json"},
        {"rel": "parent", "href": "../collection.json", "type": "application/json"},
        {"rel": "collection", "href": "../collection.json", "type": "application/json"},
        {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
    ]


def s2_item(*, item_id: str, platform: str, when: dt.datetime, epsg: int, geometry: dict,
            transforms: dict[int, list[float]], shapes: dict[int, list[int]], files: dict[str, str],
            file_sizes: dict[str, int], stats: dict[str, float], mgrs: str, sun: tuple[float, float]) -> dict[str, Any]:
    """A Sentinel-2 L2A item as Earth Search ``sentinel-2-c1-l2a`` publishes it.

    ``files`` maps asset keys to relative hrefs; ``transforms``/``shapes`` are keyed by gsd (10, 20).
    ``stats`` holds the SCL class percentages and ``cloud_cover``.
    """
    pb = s2_processing_baseline(when.date())
    zone, band, square = mgrs[:2], mgrs[2], mgrs[3:]
    stamp = when.strftime("%Y%m%dT%H%M%S")
    created = when + dt.timedelta(hours=2, minutes=17)
    props = {
        "created": _iso(created),
        "platform": platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(stats["cloud_cover"], 6),
        "proj:epsg": epsg,
        "mgrs:utm_zone": int(zone),
        "mgrs:latitude_band": band,
        "mgrs:grid_square": square,
        "grid:code": f"MGRS-{mgrs}",
        "view:sun_azimuth": round(sun[1], 6),
        "view:sun_elevation": round(sun[0], 6),
        "s2:nodata_pixel_percentage": round(stats["nodata"], 6),
        "s2:cloud_shadow_percentage": round(stats["shadow"], 6),
        "s2:vegetation_percentage": round(stats["vegetation"], 6),
        "s2:not_vegetated_percentage": round(stats["not_vegetated"], 6),
        "s2:water_percentage": round(stats["water"], 6),
        "s2:medium_proba_clouds_percentage": round(stats["cloud_medium"], 6),
        "s2:high_proba_clouds_percentage": round(stats["cloud_high"], 6),
        "s2:thin_cirrus_percentage": round(stats["cirrus"], 6),
        "s2:snow_ice_percentage": round(stats["snow"], 6),
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": pb,
        "s2:product_uri": f"{platform.upper().replace('SENTINEL-', 'S')}_MSIL2A_{stamp}_N{pb.replace('.', '')}_T{mgrs}_{created.strftime('%Y%m%dT%H%M%S')}.SAFE",
        "s2:generation_time": _iso(created),
        "datetime": _iso(when),
        "processing:software": {"amurwatch-demo": "1"},
        "updated": _iso(created),
    }
    assets: dict[str, Any] = {}
    for key, spec in S2_C1_BANDS.items():
        assets[key] = {
            "href": files[key], "type": COG_TYPE, "title": spec.title,
            "eo:bands": [{"name": spec.name, "common_name": spec.common_name,
                          "center_wavelength": spec.center_wavelength, "full_width_half_max": spec.full_width_half_max}],
            "gsd": spec.gsd, "proj:shape": shapes[spec.gsd], "proj:transform": transforms[spec.gsd],
            "raster:bands": [{"nodata": NODATA_DN, "data_type": "uint16", "spatial_resolution": spec.gsd,
                              "scale": S2_SCALE, "offset": S2_OFFSET_C1}],
            "file:size": file_sizes[key], "roles": ["data", "reflectance"],
        }
    assets[S2_SCL_ASSET] = {
        "href": files[S2_SCL_ASSET], "type": COG_TYPE, "title": "Scene classification map (SCL)", "gsd": 20,
        "proj:shape": shapes[20], "proj:transform": transforms[20],
        "raster:bands": [{"nodata": NODATA_DN, "data_type": "uint8", "spatial_resolution": 20}],
        "file:size": file_sizes[S2_SCL_ASSET], "roles": ["data"],
    }
    return {"type": "Feature", "stac_version": "1.0.0", "stac_extensions": S2_EXTENSIONS, "id": item_id,
            "collection": S2_COLLECTION, "geometry": geometry, "bbox": _bbox(geometry), "properties": props,
            "links": _links(S2_COLLECTION, item_id), "assets": assets}


_QA_BITFIELDS = [
    {"name": "fill", "offset": QA.FILL, "length": 1, "classes": [{"value": 0, "name": "not_fill"}, {"value": 1, "name": "fill"}]},
    {"name": "dilated_cloud", "offset": QA.DILATED_CLOUD, "length": 1, "classes": [{"value": 0, "name": "not_dilated"}, {"value": 1, "name": "dilated"}]},
    {"name": "cirrus", "offset": QA.CIRRUS, "length": 1, "classes": [{"value": 0, "name": "not_cirrus"}, {"value": 1, "name": "cirrus"}]},
    {"name": "cloud", "offset": QA.CLOUD, "length": 1, "classes": [{"value": 0, "name": "not_cloud"}, {"value": 1, "name": "cloud"}]},
    {"name": "cloud_shadow", "offset": QA.CLOUD_SHADOW, "length": 1, "classes": [{"value": 0, "name": "not_shadow"}, {"value": 1, "name": "shadow"}]},
    {"name": "snow", "offset": QA.SNOW, "length": 1, "classes": [{"value": 0, "name": "not_snow"}, {"value": 1, "name": "snow"}]},
    {"name": "clear", "offset": QA.CLEAR, "length": 1, "classes": [{"value": 0, "name": "not_clear"}, {"value": 1, "name": "clear"}]},
    {"name": "water", "offset": QA.WATER, "length": 1, "classes": [{"value": 0, "name": "not_water"}, {"value": 1, "name": "water"}]},
    {"name": "cloud_confidence", "offset": QA.CLOUD_CONF, "length": 2, "classes": [{"value": 1, "name": "low"}, {"value": 2, "name": "medium"}, {"value": 3, "name": "high"}]},
    {"name": "cloud_shadow_confidence", "offset": QA.SHADOW_CONF, "length": 2, "classes": [{"value": 1, "name": "low"}, {"value": 3, "name": "high"}]},
    {"name": "snow_confidence", "offset": QA.SNOW_CONF, "length": 2, "classes": [{"value": 1, "name": "low"}, {"value": 3, "name": "high"}]},
    {"name": "cirrus_confidence", "offset": QA.CIRRUS_CONF, "length": 2, "classes": [{"value": 1, "name": "low"}, {"value": 3, "name": "high"}]},
]


def landsat_item(*, item_id: str, platform: str, when: dt.datetime, epsg: int, geometry: dict, transform: list[float],
                 shape: list[int], files: dict[str, str], file_sizes: dict[str, int], cloud_cover: float,
                 wrs: str, sun: tuple[float, float]) -> dict[str, Any]:
    """A Landsat C2 L2 item as Earth Search ``landsat-c2-l2`` publishes it."""
    created = when + dt.timedelta(days=6, hours=5)
    props = {
        "platform": platform, "instruments": ["oli", "tirs"], "created": _iso(created), "gsd": 30,
        "description": "Landsat Collection 2 Level-2", "eo:cloud_cover": round(cloud_cover, 2),
        "view:off_nadir": 0, "view:sun_elevation": round(sun[0], 8), "view:sun_azimuth": round(sun[1], 7),
        "proj:epsg": epsg, "proj:shape": shape, "proj:transform": transform,
        "landsat:cloud_cover_land": round(cloud_cover, 2), "landsat:wrs_type": "2",
        "landsat:wrs_path": wrs[:3], "landsat:wrs_row": wrs[3:], "landsat:collection_category": "T1",
        "landsat:collection_number": "02", "landsat:correction": "L2SP",
        "grid:code": f"WRS2-{wrs}", "datetime": _iso(when), "updated": _iso(created),
        "processing:software": {"amurwatch-demo": "1"},
    }
    assets: dict[str, Any] = {}
    for key, spec in LANDSAT_C2_BANDS.items():
        assets[key] = {
            "href": files[key], "type": COG_TYPE, "title": spec.title,
            "description": f"Collection 2 Level-2 {spec.title} ({spec.file_stem}) Surface Reflectance",
            "eo:bands": [{"name": spec.name, "common_name": spec.common_name,
                          "center_wavelength": spec.center_wavelength, "full_width_half_max": spec.full_width_half_max}],
            "raster:bands": [{"nodata": NODATA_DN, "data_type": "uint16", "spatial_resolution": 30,
                              "scale": LANDSAT_SR_SCALE, "offset": LANDSAT_SR_OFFSET}],
            "file:size": file_sizes[key], "roles": ["data", "reflectance"],
        }
    assets[LANDSAT_QA_ASSET] = {
        "href": files[LANDSAT_QA_ASSET], "type": COG_TYPE, "title": "Pixel Quality Assessment Band",
        "description": "Collection 2 Level-1 Pixel Quality Assessment Band (QA_PIXEL)",
        "classification:bitfields": _QA_BITFIELDS,
        "raster:bands": [{"nodata": 1, "data_type": "uint16", "spatial_resolution": 30, "unit": "bit index"}],
        "file:size": file_sizes[LANDSAT_QA_ASSET], "roles": ["cloud", "cloud-shadow", "snow-ice", "water-mask"],
    }
    return {"type": "Feature", "stac_version": "1.0.0", "stac_extensions": LANDSAT_EXTENSIONS, "id": item_id,
            "collection": LANDSAT_COLLECTION, "geometry": geometry, "bbox": _bbox(geometry), "properties": props,
            "links": _links(LANDSAT_COLLECTION, item_id), "assets": assets}


def collection_dict(collection_id: str, bbox: list[float], interval: list[str | None], item_ids: list[str]) -> dict:
    """A static-catalog collection linking its items."""
    title = {S2_COLLECTION: "Sentinel-2 Level-2A Collection 1 (amurwatch demo)",
             LANDSAT_COLLECTION: "Landsat Collection 2 Level-2 (amurwatch demo)"}[collection_id]
    return {
        "type": "Collection", "stac_version": "1.0.0", "id": collection_id, "title": title,
        "description": f"Synthetic {title} for offline demos and tests. Not real data.",
        "license": "CC-BY-4.0",
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}},
        "links": [{"rel": "root", "href": "../catalog.json", "type": "application/json"},
                  {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
                  {"rel": "self", "href": "./collection.json", "type": "application/json"}]
                 + [{"rel": "item", "href": f"./{i}/{i}.json", "type": "application/geo+json"} for i in item_ids],
    }
