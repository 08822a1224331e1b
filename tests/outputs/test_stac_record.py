"""The STAC record of the outputs: pystac finds the cubes and tables, and their hrefs open."""

import geopandas as gpd
import pystac
import xarray as xr
from pystac.extensions.datacube import DatacubeExtension

from aoi import load_landscapes
from outputs.alerts import AlertStore
from outputs.cube import CubeStore
from outputs.stac_record import write_output_catalog
from outputs.stats import append_stats

from .conftest import make_alerts, make_slices


def test_catalog_describes_cubes_and_tables(tmp_path):
    lands = [land for land in load_landscapes() if land.id in ("zhalong", "onon-balj")]
    CubeStore(tmp_path / "cubes" / "zhalong.zarr").write(make_slices(["2026-05-01", "2026-05-06"]))
    store = AlertStore.at(tmp_path)
    store.upsert(make_alerts([("fore-zhalong-a", "forest_loss", "confirmed", "2026-05-06", 1.0, None, 124.2, 47.2)]),
                 landscape_id="zhalong", run_date="2026-05-07")
    store.export(tmp_path)
    import pandas as pd

    append_stats(tmp_path / "stats.parquet", pd.DataFrame({"landscape_id": ["zhalong"], "time": ["2026-05-01"],
                                                           "variable": ["water_ha"], "value": [1.0], "unit": ["ha"]}))
    path = write_output_catalog(tmp_path, lands, run_date="2026-05-07")
    assert path == tmp_path / "stac" / "catalog.json"
    cat = pystac.Catalog.from_file(str(path))
    cubes = cat.get_child("amurwatch-cubes")
    items = list(cubes.get_items())
    assert [i.id for i in items] == ["zhalong"]  # onon-balj has no cube yet
    it = items[0]
    dc = DatacubeExtension.ext(it)
    assert set(dc.dimensions) == {"time", "x", "y"} and dc.dimensions["x"].reference_system == 32651
    assert set(dc.variables) == {"ndvi", "nbr", "clear", "water"} and dc.variables["ndvi"].unit == "1"
    assert it.properties["start_datetime"].startswith("2026-05-01")
    ds = xr.open_zarr(it.assets["data"].get_absolute_href(), decode_coords="all")
    assert ds.sizes["time"] == 2 and ds.rio.crs.to_epsg() == 32651
    tab = next(cat.get_child("amurwatch-tables").get_items())
    g = gpd.read_parquet(tab.assets["alerts"].get_absolute_href())
    assert list(g["alert_id"]) == ["fore-zhalong-a"]
    assert pd.read_parquet(tab.assets["stats"].get_absolute_href())["value"].item() == 1.0
    assert "geometry" in [c["name"] for c in tab.assets["alerts"].extra_fields["table:columns"]]
