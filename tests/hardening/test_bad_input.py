"""Bad STAC items through the nightly ingest: a clear error (or a reported skip) naming the value and
the fix, and the cube left as it was. (AOI files, settings and dates: tests/aoi, tests/flows.)"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

from aoi.landscapes import load_landscapes
from flows import pipeline
from flows.demo import demo_settings
from sources.load import MissingMetadataError
from sources.profiles import SourceError

from ..sources.conftest import demo_items


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def seeded(small_archive, tmp_path):
    land = {x.id: x for x in load_landscapes(small_archive / "aoi.geojson")}["greater-khingan-demo"]
    items = demo_items(small_archive, "sentinel-2-c1-l2a", "51UVR", "2026-07")
    s = demo_settings(small_archive, tmp_path / "out", "unused", None)
    rep = pipeline.ingest(s, land, items[:2])  # an existing cube
    assert rep.slices_written == 2
    return s, land, items, tmp_path / "out" / "cubes"


def test_an_item_without_proj_metadata_is_refused_and_the_cube_untouched(seeded):
    s, land, items, cubes = seeded
    before = _digest(cubes)
    it = copy.deepcopy(items[2])
    it["properties"] = {k: v for k, v in it["properties"].items() if not k.startswith("proj:")}
    for a in it["assets"].values():
        for k in [k for k in a if k.startswith("proj:")]:
            del a[k]
    with pytest.raises(MissingMetadataError, match=rf"{it['id']}.*lacks proj:epsg.*Fix: correct the catalog"):
        pipeline.ingest(s, land, [it])
    assert _digest(cubes) == before


def test_an_unknown_collection_is_refused_and_the_cube_untouched(seeded):
    s, land, items, cubes = seeded
    before = _digest(cubes)
    it = copy.deepcopy(items[2])
    it["collection"] = "sentinel-3-olci"
    with pytest.raises(SourceError, match="sentinel-3-olci"):
        pipeline.ingest(s, land, [it])
    assert _digest(cubes) == before


def test_a_file_with_the_wrong_pixel_type_is_skipped_and_reported(seeded, tmp_path):
    s, land, items, cubes = seeded
    it = copy.deepcopy(items[2])
    with rasterio.open(it["assets"]["red"]["href"]) as r:
        prof, arr = r.profile, r.read(1)
    prof.update(dtype="float32", nodata=None)
    bad = tmp_path / "red-float.tif"
    with rasterio.open(bad, "w", **prof) as w:
        w.write(arr.astype("float32") * 1.5, 1)
    it["assets"]["red"]["href"] = str(bad)
    rep = pipeline.ingest(s, land, [it, items[3]])
    assert any(it["id"] in x and "float32 pixels but raster:bands says uint16" in x and "Fix:" in x
               for x in rep.skipped), rep.skipped
    assert rep.slices_written == 1  # the good scene went in, the bad one did not
    ids = [str(v) for v in xr.open_zarr(cubes / f"{land.id}.zarr")["item_id"].values]
    assert it["id"] not in ids and items[3]["id"] in ids


def test_a_scene_with_no_data_over_the_landscape_is_an_observation_without_clear_pixels(seeded, tmp_path):
    """All nodata (outside the swath) is recorded as a look with no clear pixel, never as data."""
    s, land, items, cubes = seeded
    it = copy.deepcopy(items[2])
    for k, a in it["assets"].items():
        with rasterio.open(a["href"]) as r:
            prof, arr = r.profile, r.read(1)
        p = tmp_path / f"{k}.tif"
        with rasterio.open(p, "w", **prof) as w:
            w.write(np.full_like(arr, prof.get("nodata") or 0), 1)
        a["href"] = str(p)
    rep = pipeline.ingest(s, land, [it])
    assert rep.slices_written == 1 and rep.last_clear is None
    ds = xr.open_zarr(cubes / f"{land.id}.zarr")
    one = ds.sel(time=ds["item_id"] == it["id"])
    assert int(one["clear"].sum()) == 0 and int(one["ndvi"].count()) == 0 and int(one["red"].count()) == 0
