"""Helpers to re-express demo items in other providers' conventions."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sources.profiles import S2_C1_BANDS

PC_KEYS = {b: spec.file_stem for b, spec in S2_C1_BANDS.items()} | {"scl": "SCL"}


def demo_items(root: Path, collection: str, window_mgrs_or_wrs: str | None = None, month: str | None = None):
    out = []
    for p in sorted((root / collection).glob("*/*.json")):
        it = json.loads(p.read_text())
        if window_mgrs_or_wrs and window_mgrs_or_wrs not in it["id"]:
            continue
        if month and not it["properties"]["datetime"].startswith(month):
            continue
        for a in it["assets"].values():
            a["href"] = str((p.parent / a["href"]).resolve())
        out.append(it)
    return out


def as_planetary_computer(item: dict) -> dict:
    """The same scene as Planetary Computer publishes it: B04-style keys, no raster:bands, raw DN."""
    it = copy.deepcopy(item)
    it["collection"] = "sentinel-2-l2a"
    it["id"] = "S2X_MSIL2A_" + item["id"]
    p = it["properties"]
    p["platform"] = p["platform"].replace("sentinel", "Sentinel").replace("-2b", "-2B").replace("-2c", "-2C").replace("-2a", "-2A")
    p["s2:mgrs_tile"] = p.pop("grid:code").replace("MGRS-", "")
    for k in ("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square", "processing:software"):
        p.pop(k, None)
    assets = {}
    for key, a in item["assets"].items():
        b = copy.deepcopy(a)
        b.pop("raster:bands", None)
        assets[PC_KEYS[key]] = b
    it["assets"] = assets
    it["links"] = [{"rel": "collection", "href": "https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-2-l2a"}]
    return it


def as_earth_search_c1(item: dict) -> dict:
    it = copy.deepcopy(item)
    it["properties"].pop("processing:software", None)
    return it


@pytest.fixture
def pc_form():
    return as_planetary_computer
