"""Google Earth Engine as an optional source: the same Dataset shape and grid as :func:`sources.load.load_reflectance`.

Collections: ``COPERNICUS/S2_SR_HARMONIZED`` (Sentinel-2 L2A, offset already removed by Google) and
``LANDSAT/LC08/C02/T1_L2``, ``LANDSAT/LC09/C02/T1_L2`` (Landsat C2 L2).

It speaks to Earth Engine only through ``ee.data.listImages`` (search) and ``ee.data.getPixels``
(pixels on our grid, as NumPy structured arrays, in blocks of at most ``block_px`` pixels a side),
so no server-side image algebra is needed and each block is one lazy dask task.

Authentication: a service-account JSON key whose path is in the environment variable
``AMURWATCH_EE_KEY`` (or the name passed to :func:`initialize`); never a config file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import dask
import dask.array as da
import numpy as np
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

from aoi.grid import Grid

from .load import _mosaic_solar_days, clear_sky_qa_pixel, clear_sky_scl
from .profiles import DEFAULT_BANDS, HLS_MSI_TO_OLI, SourceError

__all__ = ["EE_COLLECTIONS", "EeCollection", "initialize", "ensure_initialized", "search_ee", "load_ee", "as_item",
           "is_ee_item", "EarthEngineError", "KEY_ENV", "EE_ITEM_KEY"]

KEY_ENV = "AMURWATCH_EE_KEY"
_PUBLIC = "projects/earthengine-public/assets/"
#: where :func:`as_item` keeps the Earth Engine image descriptor inside the STAC-like item
EE_ITEM_KEY = "amurwatch:ee"
_initialized: dict[str, bool] = {}


class EarthEngineError(SourceError):
    """Earth Engine could not be used."""


@dataclass(frozen=True)
class EeCollection:
    id: str
    mission: str
    platform: str
    bands: Mapping[str, str]
    mask_band: str
    mask_kind: str
    scale: float
    offset: float
    cloud_property: str


_L_BANDS = {"blue": "SR_B2", "green": "SR_B3", "red": "SR_B4", "nir": "SR_B5", "nir08": "SR_B5", "swir16": "SR_B6",
            "swir22": "SR_B7"}
EE_COLLECTIONS: dict[str, EeCollection] = {c.id: c for c in (
    EeCollection("COPERNICUS/S2_SR_HARMONIZED", "sentinel-2", "sentinel-2",
                 {"blue": "B2", "green": "B3", "red": "B4", "nir": "B8", "nir08": "B8A", "swir16": "B11", "swir22": "B12"},
                 "SCL", "scl", 1e-4, 0.0, "CLOUDY_PIXEL_PERCENTAGE"),
    EeCollection("LANDSAT/LC08/C02/T1_L2", "landsat", "landsat-8", _L_BANDS, "QA_PIXEL", "qa_pixel",
                 2.75e-5, -0.2, "CLOUD_COVER"),
    EeCollection("LANDSAT/LC09/C02/T1_L2", "landsat", "landsat-9", _L_BANDS, "QA_PIXEL", "qa_pixel",
                 2.75e-5, -0.2, "CLOUD_COVER"),
)}


def initialize(key_env: str = KEY_ENV, project: str | None = None) -> None:
    """Authenticate with the service-account key named by ``$key_env`` and initialise ``ee``."""
    import ee

    path = os.environ.get(key_env)
    if not path:
        raise EarthEngineError(f"${key_env} is not set; point it at a service-account JSON key file "
                               f"(export {key_env}=/path/to/key.json) or disable the Earth Engine source")
    p = Path(path)
    if not p.is_file():
        raise EarthEngineError(f"${key_env}={path!r} is not a file; download the key of the service account from "
                               "the Google Cloud console and point the variable at it")
    try:
        email = json.loads(p.read_text())["client_email"]
    except (ValueError, KeyError) as exc:
        raise EarthEngineError(f"{path!r} is not a service-account key (no client_email)") from exc
    creds = ee.ServiceAccountCredentials(email, key_file=str(p))
    ee.Initialize(creds, project=project or json.loads(p.read_text()).get("project_id"))
    _initialized[key_env] = True


def ensure_initialized(project: str | None = None, key_env: str = KEY_ENV) -> None:
    """:func:`initialize` once per process (flows call it before searching; dask workers in other
    processes call it before their first read)."""
    if not _initialized.get(key_env):
        initialize(key_env, project)


def _collection_of(image: Mapping[str, Any]) -> EeCollection:
    cid = image.get("amurwatch:collection") or str(image["id"]).rsplit("/", 1)[0]
    if cid not in EE_COLLECTIONS:
        raise EarthEngineError(f"Earth Engine collection {cid!r} is not supported; use one of {sorted(EE_COLLECTIONS)}")
    return EE_COLLECTIONS[cid]


def as_item(image: Mapping[str, Any], region: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A STAC-like item for an Earth Engine image descriptor, so that the flows treat both sources alike.

    Watermarks, solar-day grouping, the cube's item ids and the merging of one acquisition found
    through two providers (:func:`sources.search.merge_duplicates`: platform, tile and time) read the
    usual STAC fields; the descriptor itself rides along under :data:`EE_ITEM_KEY` for :func:`load_ee`.
    ``region``: a footprint to use when the descriptor has none (the search region).
    """
    from shapely.geometry import shape

    col = _collection_of(image)
    props = dict(image.get("properties", {}))
    if col.mission == "sentinel-2":
        platform = str(props.get("SPACECRAFT_NAME") or "sentinel-2").lower()
        grid = f"MGRS-{props['MGRS_TILE']}" if props.get("MGRS_TILE") else None
    else:
        platform = col.platform
        grid = (f"WRS2-{int(props['WRS_PATH']):03d}{int(props['WRS_ROW']):03d}"
                if props.get("WRS_PATH") is not None and props.get("WRS_ROW") is not None else None)
    p: dict[str, Any] = {"datetime": image["startTime"], "platform": platform, "amurwatch:source": "earthengine"}
    if props.get(col.cloud_property) is not None:
        p["eo:cloud_cover"] = float(props[col.cloud_property])
    if props.get("PROCESSING_BASELINE"):
        p["s2:processing_baseline"] = str(props["PROCESSING_BASELINE"])
    if grid:
        p["grid:code"] = grid
    geom = image.get("geometry") or region
    item: dict[str, Any] = {"type": "Feature", "stac_version": "1.0.0", "id": str(image["id"]),
                            "collection": f"earth-engine/{col.id}", "properties": p, "geometry": geom,
                            "assets": {}, "links": [], EE_ITEM_KEY: {**image, "amurwatch:collection": col.id}}
    if geom:
        item["bbox"] = list(shape(geom).bounds)
    return item


def is_ee_item(item: Mapping[str, Any]) -> bool:
    """Whether ``item`` came from :func:`as_item` (an Earth Engine image, not a STAC item)."""
    return EE_ITEM_KEY in item


def search_ee(collection: str, *, intersects: Mapping[str, Any], start: str, end: str,
              max_cloud: float | None = None, page_size: int = 500) -> list[dict[str, Any]]:
    """Image descriptors (as ``ee.data.listImages`` returns them) over a landscape and a date range."""
    import ee

    if collection not in EE_COLLECTIONS:
        raise EarthEngineError(f"Earth Engine collection {collection!r} is not supported; use one of {sorted(EE_COLLECTIONS)}")
    c = EE_COLLECTIONS[collection]
    params: dict[str, Any] = {
        "parent": _PUBLIC + collection,
        "startTime": f"{start}T00:00:00Z" if len(start) == 10 else start,
        "endTime": f"{end}T23:59:59Z" if len(end) == 10 else end,
        "region": json.dumps(dict(intersects)),
        "pageSize": page_size,
    }
    if max_cloud is not None:
        params["filter"] = f"{c.cloud_property} <= {max_cloud}"
    out: list[dict] = []
    while True:
        resp = ee.data.listImages(params)
        out += resp.get("images", [])
        token = resp.get("nextPageToken")
        if not token:
            break
        params["pageToken"] = token
    for im in out:
        im.setdefault("amurwatch:collection", collection)
    out.sort(key=lambda im: im.get("startTime", ""))
    return out


def _fetch_block(asset_id: str, band_ids: list[str], grid: Grid, r0: int, c0: int, h: int, w: int) -> np.ndarray:
    import ee

    if not ee.data.is_initialized() and os.environ.get(KEY_ENV):
        ensure_initialized()  # a dask worker in another process than the flow's
    res = grid.resolution
    req = {
        "assetId": asset_id,
        "fileFormat": "NUMPY_NDARRAY",
        "bandIds": band_ids,
        "grid": {
            "dimensions": {"width": w, "height": h},
            "affineTransform": {"scaleX": res, "shearX": 0, "translateX": grid.bounds[0] + c0 * res,
                                "shearY": 0, "scaleY": -res, "translateY": grid.bounds[3] - r0 * res},
            "crsCode": f"EPSG:{grid.epsg}",
        },
    }
    arr = ee.data.getPixels(req)
    if arr.dtype.names is None or list(arr.dtype.names) != band_ids:
        raise EarthEngineError(f"getPixels for {asset_id} returned fields {arr.dtype.names}, expected {band_ids}")
    return np.stack([arr[b].astype(np.float32) for b in band_ids])


def _lazy_image(asset_id: str, band_ids: list[str], grid: Grid, block_px: int) -> da.Array:
    H, W = grid.shape
    rows = []
    for r0 in range(0, H, block_px):
        row = []
        for c0 in range(0, W, block_px):
            h, w = min(block_px, H - r0), min(block_px, W - c0)
            d = dask.delayed(_fetch_block, pure=True)(asset_id, band_ids, grid, r0, c0, h, w)
            row.append(da.from_delayed(d, shape=(len(band_ids), h, w), dtype=np.float32))
        rows.append(row)
    return da.block(rows)


def load_ee(images: Sequence[Mapping[str, Any]], grid: Grid, *, bands: Sequence[str] = DEFAULT_BANDS,
            harmonize: bool = False, mask_snow: bool = True, block_px: int = 1024) -> xr.Dataset:
    """Clear-sky reflectance from Earth Engine images, in the shape of :func:`load_reflectance`'s Dataset."""
    per_time = []
    meta = []
    for im in images:
        col = _collection_of(im)
        avail = [b for b in bands if b in col.bands]
        # each Earth Engine band once (Landsat's SR_B5 is both nir and nir08; getPixels refuses repeats)
        ids = list(dict.fromkeys([col.bands[b] for b in avail] + [col.mask_band]))
        arr = _lazy_image(im["id"], ids, grid, block_px)
        mask = xr.DataArray(arr[ids.index(col.mask_band)], dims=("y", "x"))
        mask = mask.where(mask != (1 if col.mask_kind == "qa_pixel" else 0))
        clear, snow = clear_sky_scl(mask) if col.mask_kind == "scl" else clear_sky_qa_pixel(mask)
        keep = clear | (snow if not mask_snow else False)
        data = {}
        for b in avail:
            dn = xr.DataArray(arr[ids.index(col.bands[b])], dims=("y", "x"))
            r = dn * col.scale + col.offset
            if harmonize and col.mission == "landsat":
                slope, icpt = HLS_MSI_TO_OLI["nir08" if b == "nir" else b]
                r = (r - icpt) / slope
            data[b] = r.clip(0, 1).where(keep & (dn != 0)).astype(np.float32)
        for b in bands:
            if b not in data:
                data[b] = xr.full_like(data[avail[0]], np.nan)
        ds = xr.Dataset(data)
        ds["clear"] = clear
        ds["snow"] = snow
        per_time.append(ds)
        t = dt.datetime.fromisoformat(im["startTime"].replace("Z", "+00:00")).astimezone(dt.timezone.utc)
        props = im.get("properties", {})
        meta.append((np.datetime64(t.replace(tzinfo=None), "ns"), col, im["id"], props, t))
    if not per_time:
        raise EarthEngineError("no Earth Engine images to load; widen the time window")
    ds = xr.concat(per_time, dim="time")
    lon = _grid_lon(grid)
    ds = ds.assign_coords(
        time=("time", [m[0] for m in meta]),
        x=("x", np.asarray(grid.x_coords())), y=("y", np.asarray(grid.y_coords())),
        platform=("time", np.array([m[1].platform if m[1].mission == "landsat" else
                                    str(m[3].get("SPACECRAFT_NAME", "sentinel-2")).lower() for m in meta], dtype=str)),
        item_id=("time", np.array([m[2] for m in meta], dtype=str)),
        collection=("time", np.array([f"earth-engine/{m[1].id}" for m in meta], dtype=str)),
        processing_baseline=("time", np.array([str(m[3].get("PROCESSING_BASELINE", "")) for m in meta], dtype=str)),
        cloud_cover=("time", np.array([float(m[3].get(m[1].cloud_property, np.nan)) for m in meta], np.float32)),
        offset=("time", np.array([m[1].offset for m in meta], np.float32)),
        solar_date=("time", np.array([(m[4] + dt.timedelta(hours=lon / 15)).date().isoformat()
                                      for m in meta], dtype=str)),
    ).sortby("time")
    ds = _mosaic_solar_days(ds)  # same-day tiles of one platform: one observation, as the STAC path does
    for b in bands:
        ds[b].attrs = {"long_name": f"{b} surface reflectance", "units": "1", "_FillValue": np.float32(np.nan)}
    ds = ds.rio.write_crs(grid.epsg)
    ds.attrs = {"title": "clear-sky surface reflectance (Earth Engine)", "grid_epsg": grid.epsg,
                "grid_resolution": grid.resolution, "grid_bounds": list(grid.bounds), "harmonized": int(harmonize),
                "Conventions": "CF-1.8"}
    return ds


def _grid_lon(grid: Grid) -> float:
    from pyproj import Transformer

    x = (grid.bounds[0] + grid.bounds[2]) / 2
    y = (grid.bounds[1] + grid.bounds[3]) / 2
    return Transformer.from_crs(grid.epsg, 4326, always_xy=True).transform(x, y)[0]
