"""Earth Engine source.

FAKE: Earth Engine cannot be reached from here, so these tests replace ``ee.data.listImages`` and
``ee.data.getPixels`` (and, for authentication, ``ee.ServiceAccountCredentials``/``ee.Initialize``)
with fakes. The fakes answer in the shapes the real service returns (image descriptors with
``id``/``startTime``/``properties`` and ``nextPageToken`` paging; NumPy structured arrays with one
field per band) and serve pixels of the demo archive, converted to Earth Engine's conventions
(S2_SR_HARMONIZED has the +1000 DN offset removed).
"""

from __future__ import annotations

import json

import ee
import numpy as np
import pytest

from aoi import load_landscapes
from sources import earthengine as eesrc
from sources.load import load_reflectance
from tests.fake_ee import FakeEE

from .conftest import demo_items


@pytest.fixture
def fake_ee(monkeypatch, small_archive):
    fake = FakeEE({
        "COPERNICUS/S2_SR_HARMONIZED": demo_items(small_archive, "sentinel-2-c1-l2a", "51UVR", "2026-07"),
        "LANDSAT/LC09/C02/T1_L2": [i for i in demo_items(small_archive, "landsat-c2-l2", "122024", "2026-07")
                                   if i["properties"]["platform"] == "landsat-9"],
    })
    monkeypatch.setattr(ee.data, "listImages", fake.listImages)
    monkeypatch.setattr(ee.data, "getPixels", fake.getPixels)
    return fake


def test_search_follows_pages_and_filters_cloud(fake_ee, small_archive):
    land = {x.id: x for x in load_landscapes(small_archive / "aoi.geojson")}["greater-khingan-demo"]
    imgs = eesrc.search_ee("COPERNICUS/S2_SR_HARMONIZED", intersects=land.geometry, start="2026-07-01",
                           end="2026-07-31", max_cloud=70)
    expected = sorted((i for i in demo_items(small_archive, "sentinel-2-c1-l2a", "51UVR", "2026-07")
                       if i["properties"]["eo:cloud_cover"] <= 70), key=lambda i: i["properties"]["datetime"])
    assert [im["id"].rsplit("/", 1)[1] for im in imgs] == [i["id"] for i in expected]
    assert len(fake_ee.requests) == (len(expected) + 1) // 2 and fake_ee.requests[0]["filter"] == "CLOUDY_PIXEL_PERCENTAGE <= 70"
    assert json.loads(fake_ee.requests[0]["region"])["type"] == "Polygon"


def test_load_matches_the_stac_path_on_the_same_scenes(fake_ee, small_archive):
    land = {x.id: x for x in load_landscapes(small_archive / "aoi.geojson")}["greater-khingan-demo"]
    grid = land.grid(10)
    imgs = eesrc.search_ee("COPERNICUS/S2_SR_HARMONIZED", intersects=land.geometry, start="2026-07-01", end="2026-07-31")
    imgs += eesrc.search_ee("LANDSAT/LC09/C02/T1_L2", intersects=land.geometry, start="2026-07-01", end="2026-07-31")
    ds = eesrc.load_ee(imgs, grid, block_px=64)  # several blocks per image
    stac_items = [i for i in demo_items(small_archive, "sentinel-2-c1-l2a", "51UVR", "2026-07")] + \
        [i for i in demo_items(small_archive, "landsat-c2-l2", "122024", "2026-07") if i["properties"]["platform"] == "landsat-9"]
    ref, _ = load_reflectance(stac_items, grid)
    assert ds.sizes == ref.sizes and list(ds.data_vars) == list(ref.data_vars)
    assert ds.red.chunks[1][0] == 64 and ds.rio.crs.to_epsg() == grid.epsg
    np.testing.assert_array_equal(ds.x.values, ref.x.values)
    np.testing.assert_array_equal(ds.y.values, ref.y.values)
    compared = 0
    for t in range(ds.sizes["time"]):
        a, b = ds.isel(time=t), ref.isel(time=t)
        agree = (a.clear.values == b.clear.values).mean()
        assert agree > 0.97, (t, agree)
        both = np.isfinite(a.red.values) & np.isfinite(b.red.values)
        if both.sum() < 100:  # a fully clouded scene: nothing to compare
            continue
        compared += 1
        assert np.median(np.abs(a.red.values[both] - b.red.values[both])) < 1e-3
    assert compared >= 3
    assert set(ds.collection.values) == {"earth-engine/COPERNICUS/S2_SR_HARMONIZED", "earth-engine/LANDSAT/LC09/C02/T1_L2"}


def test_unsupported_collection_is_named():
    with pytest.raises(eesrc.EarthEngineError, match="'MODIS/061/MOD09GA' is not supported"):
        eesrc.search_ee("MODIS/061/MOD09GA", intersects={"type": "Point", "coordinates": [0, 0]}, start="2026-01-01", end="2026-01-02")


def test_initialize_uses_the_service_account_key_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(eesrc.KEY_ENV, raising=False)
    with pytest.raises(eesrc.EarthEngineError, match=r"\$AMURWATCH_EE_KEY is not set"):
        eesrc.initialize()
    monkeypatch.setenv(eesrc.KEY_ENV, str(tmp_path / "missing.json"))
    with pytest.raises(eesrc.EarthEngineError, match="is not a file"):
        eesrc.initialize()
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"type": "service_account", "client_email": "amurwatch@proj.iam.gserviceaccount.com",
                               "project_id": "proj", "private_key": "FAKE"}))
    monkeypatch.setenv(eesrc.KEY_ENV, str(key))
    seen = {}
    # FAKE: credential construction and Initialize would contact Google
    monkeypatch.setattr(ee, "ServiceAccountCredentials", lambda email, key_file: ("creds", email, key_file))
    monkeypatch.setattr(ee, "Initialize", lambda creds, project=None: seen.update(creds=creds, project=project))
    eesrc.initialize()
    assert seen == {"creds": ("creds", "amurwatch@proj.iam.gserviceaccount.com", str(key)), "project": "proj"}
