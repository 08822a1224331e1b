"""``DIR/stac/catalog.json``: a STAC catalog of the outputs, so analysts find them with pystac.

- collection ``amurwatch-cubes``: one item per landscape, its Zarr cube as the ``data`` asset and
  the annual layers as ``annual``, described with the datacube extension (``cube:dimensions``,
  ``cube:variables``);
- collection ``amurwatch-tables``: one item with ``alerts.parquet`` (GeoParquet),
  ``alerts.geojson`` and ``stats.parquet``, their columns in the table extension.

Hrefs are relative, so the output folder can be moved or synced to a bucket as a whole.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pystac
from pystac.extensions.datacube import DatacubeExtension, Dimension, Variable
from shapely.geometry import mapping

from aoi.landscapes import Landscape

from .alerts import EXPORT_COLUMNS
from .cube import ANNUAL_GROUPS, ANNUAL_VARIABLES, CUBE_VARIABLES, CubeStore
from .stats import STATS_COLUMNS

__all__ = ["write_output_catalog", "ZARR_MEDIA_TYPE", "PARQUET_MEDIA_TYPE"]

ZARR_MEDIA_TYPE = "application/vnd+zarr"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
TABLE_EXT = "https://stac-extensions.github.io/table/v1.2.0/schema.json"


def _utc(t) -> dt.datetime:
    return dt.datetime.fromisoformat(str(np.datetime_as_string(np.datetime64(t, "s")))).replace(tzinfo=dt.timezone.utc)


def write_output_catalog(out_dir: str | Path, landscapes: Sequence[Landscape], *, run_date: str | None = None,
                         cube_store: Callable[[str], CubeStore] | None = None) -> Path:
    """(Re)write ``out_dir/stac/catalog.json`` for the cubes and tables present in ``out_dir``.

    ``cube_store`` maps a landscape id to its store when the cubes live elsewhere (an object store):
    their assets then carry absolute URLs instead of paths relative to the catalog."""
    out = Path(out_dir).resolve()
    root = out / "stac"
    cat = pystac.Catalog("amurwatch-outputs", "amurwatch outputs: Zarr cubes per landscape, alert and stats tables"
                         + (f" (last run {run_date})" if run_date else ""))
    cubes = pystac.Collection("amurwatch-cubes", "Clear-sky NDVI, NBR and water per observation, per landscape",
                              extent=pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]),
                                                   pystac.TemporalExtent([[None, None]])), license="CC-BY-4.0")
    DatacubeExtension.add_to(cubes)
    boxes, t0s, t1s = [], [], []
    for land in landscapes:
        store = cube_store(land.id) if cube_store else CubeStore(out / "cubes" / f"{land.id}.zarr")
        href = f"../../../cubes/{land.id}.zarr" if cube_store is None else store.url
        fs, root_path = store._fs(store.url)
        if not store.exists():
            continue
        ds = store.open()
        times = ds["time"].values
        if not len(times):
            continue
        start, end = _utc(times.min()), _utc(times.max())
        bbox = [float(v) for v in land.shape.bounds]
        item = pystac.Item(land.id, mapping(land.shape), bbox, None,
                           {"title": land.name, "start_datetime": start.isoformat(), "end_datetime": end.isoformat(),
                            "amurwatch:ecosystems": [e.value for e in land.ecosystems],
                            "proj:code": f"EPSG:{ds.rio.crs.to_epsg()}"}, start_datetime=start, end_datetime=end)
        item.add_asset("data", pystac.Asset(href, media_type=ZARR_MEDIA_TYPE,
                                            roles=["data"], title=f"{land.name}: observations (time, y, x)"))
        for grp in ANNUAL_GROUPS:
            if fs.exists(f"{root_path}/{grp}/.zgroup"):
                key = grp.replace("/", "_")
                item.add_asset(key, pystac.Asset(f"{href}/{grp}", media_type=ZARR_MEDIA_TYPE,
                                                 roles=["data"], title=f"{grp} layers (year, y, x)"))
        dc = DatacubeExtension.ext(item, add_if_missing=True)
        epsg = ds.rio.crs.to_epsg()
        res = float(abs(ds["x"][1] - ds["x"][0])) if ds.sizes["x"] > 1 else None
        dc.dimensions = {
            "time": Dimension({"type": "temporal", "extent": [start.isoformat(), end.isoformat()],
                               "values": [_utc(t).isoformat() for t in times]}),
            "x": Dimension({"type": "spatial", "axis": "x", "reference_system": epsg, "step": res,
                            "extent": [float(ds["x"].min()), float(ds["x"].max())]}),
            "y": Dimension({"type": "spatial", "axis": "y", "reference_system": epsg, "step": -res if res else None,
                            "extent": [float(ds["y"].min()), float(ds["y"].max())]}),
        }
        dc.variables = {name: Variable({"dimensions": ["time", "y", "x"], "type": "data", "unit": attrs["units"],
                                        "description": attrs["long_name"], "data_type": dtype})
                        for name, (dtype, _, attrs) in CUBE_VARIABLES.items()}
        cubes.add_item(item)
        boxes.append(bbox)
        t0s.append(start)
        t1s.append(end)
    if boxes:
        b = np.array(boxes)
        bb = [float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())]
        cubes.extent = pystac.Extent(pystac.SpatialExtent([bb]),
                                     pystac.TemporalExtent([[min(t0s), max(t1s)]]))
    cubes.extra_fields["amurwatch:annual_variables"] = {k: v[2]["long_name"] for k, v in ANNUAL_VARIABLES.items()}
    cat.add_child(cubes)

    tables = pystac.Collection("amurwatch-tables", "Alerts (GeoParquet, GeoJSON) and statistics (Parquet)",
                               extent=cubes.extent.clone(), license="CC-BY-4.0")
    tables.stac_extensions.append(TABLE_EXT)
    present = {n: (out / n).exists() for n in ("alerts.parquet", "alerts.geojson", "stats.parquet")}
    if any(present.values()):
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        item = pystac.Item("tables", mapping(_union(landscapes)), [float(v) for v in _union(landscapes).bounds], now, {})
        item.stac_extensions.append(TABLE_EXT)
        if present["alerts.parquet"]:
            item.add_asset("alerts", pystac.Asset("../../../alerts.parquet", media_type=PARQUET_MEDIA_TYPE,
                                                  roles=["data"], title="alerts (GeoParquet, EPSG:4326)",
                                                  extra_fields={"table:columns": [{"name": c} for c in EXPORT_COLUMNS],
                                                                "table:primary_geometry": "geometry"}))
        if present["alerts.geojson"]:
            item.add_asset("alerts_geojson", pystac.Asset("../../../alerts.geojson", media_type="application/geo+json",
                                                          roles=["data"], title="alerts (GeoJSON)"))
        if present["stats.parquet"]:
            item.add_asset("stats", pystac.Asset("../../../stats.parquet", media_type=PARQUET_MEDIA_TYPE,
                                                 roles=["data"], title="statistics per landscape",
                                                 extra_fields={"table:columns": [{"name": c} for c in STATS_COLUMNS]}))
        tables.add_item(item)
    cat.add_child(tables)
    cat.normalize_hrefs(str(root))
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def _union(landscapes: Sequence[Landscape]):
    from shapely import union_all

    return union_all([land.shape for land in landscapes])
