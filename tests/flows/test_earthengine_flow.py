"""Earth Engine as a source of the flows (``earthengine = true``), beside or instead of a STAC API.

FAKE: Earth Engine cannot be reached from here. ``ee.data.listImages``/``ee.data.getPixels`` are
replaced by :class:`tests.fake_ee.FakeEE` (real response shapes, pixels of the demo archive in
Earth Engine's conventions), and ``ee.ServiceAccountCredentials``/``ee.Initialize`` by recorders.
Everything else is real: the flows' search, the merging of providers, the loader and the cube.
"""

from __future__ import annotations

import json

import ee
import numpy as np
import pytest

from aoi.errors import AmurwatchError
from flows import pipeline
from flows.settings import SettingsError, load_settings
from outputs.cube import CubeStore
from sources import earthengine as eesrc
from tests.fake_ee import FakeEE
from tests.sources.conftest import demo_items

LAND = "greater-khingan-demo"
MONTH = ("2026-07-01", "2026-07-31")


def STAC(api):
    return [{"url": api.url, "collections": ["sentinel-2-c1-l2a", "landsat-c2-l2"]}]


@pytest.fixture
def ee_service(monkeypatch, small_archive, tmp_path):
    s2 = demo_items(small_archive, "sentinel-2-c1-l2a", month="2026-07")
    ls = demo_items(small_archive, "landsat-c2-l2", month="2026-07")
    fake = FakeEE({"COPERNICUS/S2_SR_HARMONIZED": s2,
                   "LANDSAT/LC08/C02/T1_L2": [i for i in ls if i["properties"]["platform"] == "landsat-8"],
                   "LANDSAT/LC09/C02/T1_L2": [i for i in ls if i["properties"]["platform"] == "landsat-9"]})
    monkeypatch.setattr(ee.data, "listImages", fake.listImages)
    monkeypatch.setattr(ee.data, "getPixels", fake.getPixels)
    key = tmp_path / "ee-key.json"
    key.write_text(json.dumps({"type": "service_account", "client_email": "amurwatch@proj.iam.gserviceaccount.com",
                               "project_id": "proj", "private_key": "FAKE"}))
    monkeypatch.setenv(eesrc.KEY_ENV, str(key))
    fake.inits = []
    monkeypatch.setattr(ee, "ServiceAccountCredentials", lambda email, key_file: ("creds", email))
    monkeypatch.setattr(ee, "Initialize", lambda creds, project=None: fake.inits.append(project))
    monkeypatch.setattr(eesrc, "_initialized", {})
    return fake


def _settings(small_archive, out, **kw):
    return load_settings(None, aoi=str(small_archive / "aoi.geojson"), landscapes=[LAND], out=str(out), **kw)


def _ingest(settings):
    land = pipeline.select_landscapes(settings)[0]
    items = pipeline.find_items(settings, land, *MONTH)
    rep = pipeline.ingest(settings, land, items)
    return items, rep, CubeStore(pipeline.cube_url(settings, land.id)).open().load()


def test_earth_engine_alone_fills_the_cube_as_the_stac_api_does(ee_service, small_archive, stac_api, tmp_path):
    ref_items, ref_rep, ref = _ingest(_settings(small_archive, tmp_path / "stac", sources=STAC(stac_api)))
    items, rep, cube = _ingest(_settings(small_archive, tmp_path / "ee", sources=[], earthengine=True))
    assert ee_service.inits == ["proj"]  # initialised once, with the key's project
    assert all(eesrc.is_ee_item(it) for it in items) and len(items) == len(ref_items)
    assert rep.slices_written == ref_rep.slices_written > 3 and not rep.skipped
    np.testing.assert_array_equal(cube["time"].values, ref["time"].values)
    assert list(cube["platform"].values) == list(ref["platform"].values)
    assert all(str(i).startswith(("COPERNICUS/", "LANDSAT/")) for i in cube["item_id"].values)
    compared = 0
    for k in range(cube.sizes["time"]):
        a, b = cube.isel(time=k), ref.isel(time=k)
        assert (a["clear"].values == b["clear"].values).mean() > 0.97
        both = np.isfinite(a["ndvi"].values) & np.isfinite(b["ndvi"].values)
        if both.sum() < 100:
            continue
        compared += 1
        # Earth Engine resamples with nearest neighbour, the STAC path its own way: edges differ
        assert np.median(np.abs(a["ndvi"].values[both] - b["ndvi"].values[both])) < 1e-3
    assert compared >= 3
    # a second night finds the same images and adds nothing (the cube's item ids are Earth Engine's)
    assert pipeline.ingest(_settings(small_archive, tmp_path / "ee", sources=[], earthengine=True),
                           pipeline.select_landscapes(_settings(small_archive, tmp_path / "ee", sources=[],
                                                                earthengine=True))[0], items).new_items == 0


def test_one_acquisition_on_both_sources_is_one_scene(ee_service, small_archive, stac_api, tmp_path):
    _, _, ref = _ingest(_settings(small_archive, tmp_path / "stac", sources=STAC(stac_api)))
    items, rep, cube = _ingest(_settings(small_archive, tmp_path / "both", sources=STAC(stac_api),
                                         earthengine=True))
    assert not any(eesrc.is_ee_item(it) for it in items)  # the STAC copy is preferred
    assert all(any(a.startswith("earth-engine/") for a in it["properties"]["amurwatch:alternates"]) for it in items)
    np.testing.assert_array_equal(cube["time"].values, ref["time"].values)
    np.testing.assert_array_equal(cube["red"].values, ref["red"].values)


def test_without_a_key_the_search_names_the_variable(monkeypatch, small_archive, tmp_path):
    monkeypatch.delenv(eesrc.KEY_ENV, raising=False)
    monkeypatch.setattr(eesrc, "_initialized", {})
    s = _settings(small_archive, tmp_path, sources=[], earthengine=True)
    with pytest.raises(AmurwatchError, match=r"\$AMURWATCH_EE_KEY is not set"):
        pipeline.find_items(s, pipeline.select_landscapes(s)[0], *MONTH)


def test_earth_engine_settings(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('earthengine = true\n')
    assert load_settings(f).earthengine.enabled
    f.write_text('[earthengine]\nenabled = true\ncollections = ["LANDSAT/LC09/C02/T1_L2"]\nmax_cloud = 40\n')
    s = load_settings(f)
    assert s.earthengine.collections == ["LANDSAT/LC09/C02/T1_L2"] and s.earthengine.max_cloud == 40
    f.write_text('[earthengine]\nenabled = true\ncollections = ["MODIS/061/MOD09GA"]\n')
    with pytest.raises(SettingsError, match="MODIS/061/MOD09GA"):
        load_settings(f)
    with pytest.raises(SettingsError, match="no imagery source"):
        load_settings(None, sources=[])
