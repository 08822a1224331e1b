"""The bundled landscapes, their grids, and every bad-AOI case failing with its message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from shapely.geometry import shape

from aoi import (
    AoiValidationError,
    Ecosystem,
    Grid,
    default_landscapes_path,
    load_landscapes,
    parse_landscapes,
    utm_epsg_for,
)

REQUIRED = {
    # id: (countries, ecosystems, (lon, lat) that must lie inside, area range km2)
    "nctlnp": ({"CN"}, {"forest"}, (130.8, 43.4), (8_000, 20_000)),
    "wanda-mountains": ({"CN"}, {"forest"}, (132.7, 46.2), (5_000, 30_000)),
    "greater-khingan": ({"CN"}, {"forest"}, (123.0, 51.5), (40_000, 150_000)),
    "sanjiang-plain": ({"CN"}, {"wetland"}, (133.8, 47.6), (5_000, 40_000)),
    "zhalong": ({"CN"}, {"wetland"}, (124.2, 47.2), (1_500, 6_000)),
    "lake-khanka": ({"CN", "RU"}, {"wetland"}, (132.4, 45.0), (4_000, 20_000)),
    "hulun-hulunbuir": ({"CN"}, {"grassland", "wetland"}, (117.4, 48.95), (8_000, 60_000)),
    "dornod-steppe": ({"MN"}, {"grassland"}, (115.5, 47.5), (10_000, 120_000)),
    "onon-balj": ({"MN"}, {"forest", "grassland"}, (111.2, 49.2), (3_000, 20_000)),
    "dauria-torey": ({"RU", "MN"}, {"wetland", "grassland"}, (115.9, 50.1), (3_000, 30_000)),
}


def fc(*features) -> str:
    return json.dumps({"type": "FeatureCollection", "features": list(features)})


def feature(lid="zhalong-x", coords=None, **props) -> dict:
    coords = coords or [[[124.0, 47.0], [124.3, 47.0], [124.3, 47.3], [124.0, 47.3], [124.0, 47.0]]]
    p = {"id": lid, "name": "Test", "country": ["CN"], "ecosystems": ["wetland"],
         "managers": ["a@example.org"], "boundary_source": "approximate"}
    p.update(props)
    return {"type": "Feature", "properties": p, "geometry": {"type": "Polygon", "coordinates": coords}}


def problems_of(text: str, **kw) -> list[str]:
    with pytest.raises(AoiValidationError) as ei:
        parse_landscapes(text, source="test.geojson", **kw)
    return [str(p) for p in ei.value.problems]


# ---------------------------------------------------------------------------------- bundled file
def test_bundled_landscapes_are_all_there_with_right_place_and_size():
    landscapes = {ls.id: ls for ls in load_landscapes()}
    assert set(REQUIRED) <= set(landscapes)
    for lid, (countries, ecos, inside, (amin, amax)) in REQUIRED.items():
        ls = landscapes[lid]
        assert set(ls.country) == countries, lid
        assert {e.value for e in ls.ecosystems} == ecos, lid
        assert ls.shape.contains(shape({"type": "Point", "coordinates": inside})), lid
        assert amin <= ls.area_km2 <= amax, (lid, ls.area_km2)
        assert ls.boundary_source == "approximate"
        assert ls.managers and all(m.endswith("@example.org") for m in ls.managers)


def test_each_landscape_grid_is_utm_of_its_centroid_and_snapped():
    for ls in load_landscapes():
        c = ls.shape.centroid
        for res in (10.0, 20.0, 30.0):
            g = ls.grid(res)
            assert g.epsg == utm_epsg_for(c.x, c.y)
            assert all(abs(v / res - round(v / res)) < 1e-9 for v in g.bounds), (ls.id, res, g.bounds)
            assert g.width * res == pytest.approx(g.bounds[2] - g.bounds[0])
            assert ls.grid(res) == g  # reruns align pixel for pixel


def test_utm_zones_of_the_region():
    assert utm_epsg_for(122.3, 51.3) == 32651
    assert utm_epsg_for(117.0, 49.0) == 32650
    assert utm_epsg_for(131.0, 43.0) == 32652
    assert utm_epsg_for(-59.4, -60.4) == 32721


def test_grid_is_json_safe_and_round_trips():
    g = load_landscapes()[0].grid(10)
    again = Grid.model_validate_json(g.model_dump_json())
    assert again == g and again.transform == g.transform


def test_grid_rejects_geographic_crs():
    with pytest.raises(ValueError, match="not projected"):
        Grid(epsg=4326, resolution=10, bounds=(0, 0, 1, 1))


# ---------------------------------------------------------------------------------- bad input
def test_invalid_json():
    (p,) = problems_of('{"type": "FeatureCollection", "features": [}')
    assert "invalid JSON" in p and "line 1" in p and "python -m json.tool" in p


def test_not_a_feature_collection():
    (p,) = problems_of(json.dumps(feature()))
    assert "expected a GeoJSON FeatureCollection, got type 'Feature'" in p and '"FeatureCollection"' in p


def test_projected_coordinates_are_named_as_such():
    utm = [[[500000, 5200000], [510000, 5200000], [510000, 5210000], [500000, 5210000], [500000, 5200000]]]
    (p,) = problems_of(fc(feature(coords=utm)))
    assert "outside the lon/lat range" in p and "projected" in p and "ogr2ogr" in p and "EPSG:4326" in p


def test_self_intersecting_polygon_shows_explain_validity():
    bowtie = [[[124.0, 47.0], [124.3, 47.3], [124.3, 47.0], [124.0, 47.3], [124.0, 47.0]]]
    (p,) = problems_of(fc(feature(coords=bowtie)))
    assert "Self-intersection" in p and "Fix geometries" in p


@pytest.mark.parametrize("geometry", [None, {"type": "Polygon", "coordinates": []}])
def test_empty_geometry(geometry):
    f = feature()
    f["geometry"] = geometry
    (p,) = problems_of(fc(f))
    assert "no geometry" in p or "empty" in p


def test_duplicate_ids():
    (p,) = problems_of(fc(feature("same"), feature("same")))
    assert "id 'same' is used by 2 features" in p and "unique" in p


def test_unknown_ecosystem():
    (p,) = problems_of(fc(feature(ecosystems=["forest", "tundra"])))
    assert "unknown ecosystem 'tundra'" in p and "forest, grassland, wetland" in p


def test_invalid_email():
    (p,) = problems_of(fc(feature(managers=["ranger-at-example.org"])))
    assert "'ranger-at-example.org' is invalid" in p and "ranger@example.org" in p


def test_bad_slug_and_unknown_property_and_missing_name():
    f = feature("Zhalong Wetland", colour="blue")
    del f["properties"]["name"]
    ps = problems_of(fc(f))
    assert any("not a slug" in p and "'zhalong-wetland'" in p for p in ps)
    assert any("unknown property 'colour'" in p for p in ps)
    assert any("property 'name' is missing" in p for p in ps)


def test_too_large():
    big = [[[110.0, 42.0], [135.0, 42.0], [135.0, 53.0], [110.0, 53.0], [110.0, 42.0]]]
    (p,) = problems_of(fc(feature(coords=big)), max_area_km2=250_000)
    assert "exceeds the limit of 250,000 km²" in p and "split" in p


def test_every_problem_is_listed_at_once():
    bowtie = [[[124.0, 47.0], [124.3, 47.3], [124.3, 47.0], [124.0, 47.3], [124.0, 47.0]]]
    utm = [[[500000, 5200000], [510000, 5200000], [510000, 5210000], [500000, 5200000]]]
    text = fc(feature("a", coords=bowtie), feature("b", coords=utm), feature("c", ecosystems=["tundra"]),
              feature("d", managers=["nope"]), feature("e"), feature("e"))
    with pytest.raises(AoiValidationError) as ei:
        parse_landscapes(text, source="multi.geojson")
    msg = str(ei.value)
    assert len(ei.value.problems) == 5
    assert msg.startswith("multi.geojson: 5 problems found; nothing was processed.")
    for needle in ("feature 1 (id 'a')", "feature 2 (id 'b')", "feature 3 (id 'c')", "feature 4 (id 'd')", "id 'e' is used by 2"):
        assert needle in msg


def test_missing_file_and_binary_file(tmp_path):
    with pytest.raises(AoiValidationError, match="does not exist"):
        load_landscapes(tmp_path / "nope.geojson")
    b = tmp_path / "x.shp"
    b.write_bytes(b"\x00\x00\x27\x0a\xff\xfe\xfd")
    with pytest.raises(AoiValidationError, match="ogr2ogr"):
        load_landscapes(b)


def test_country_string_is_accepted_and_bad_code_rejected():
    (ls,) = parse_landscapes(fc(feature(country="CN/RU")))
    assert ls.country == ["CN", "RU"]
    (p,) = problems_of(fc(feature(country=["China"])))
    assert "'China' is not an ISO 3166-1 alpha-2 code" in p


def test_feature_round_trips():
    ls = load_landscapes()[0]
    (again,) = parse_landscapes(fc(ls.to_feature()))
    assert again == ls and Ecosystem.forest in again.ecosystems


# ---------------------------------------------------------------------------------- CLI
def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=120)


def test_cli_aoi_validate_ok_and_bad(tmp_path):
    r = _cli("aoi", "validate", str(default_landscapes_path()))
    assert r.returncode == 0, r.stderr
    assert "10 landscapes, valid" in r.stdout and "greater-khingan" in r.stdout and "EPSG:32651" in r.stdout
    bad = tmp_path / "bad.geojson"
    bad.write_text(fc(feature("a", ecosystems=["tundra"]), feature("a", managers=["x"])))
    r = _cli("aoi", "validate", str(bad))
    assert r.returncode == 2
    assert "3 problems found" in r.stderr and "tundra" in r.stderr and "used by 2 features" in r.stderr
