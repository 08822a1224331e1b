"""Conservation landscapes: the ``Landscape`` model and a loader that validates a whole file at once.

A bad AOI file fails before any work starts, with *every* problem listed, each naming the value
and the fix (see :class:`aoi.errors.AoiValidationError`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pyproj import Geod
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from .errors import AoiProblem, AoiValidationError
from .grid import Grid, grid_for_geometry

__all__ = [
    "Ecosystem",
    "Landscape",
    "load_landscapes",
    "parse_landscapes",
    "default_landscapes_path",
    "DEFAULT_MAX_AREA_KM2",
]

#: Largest landscape accepted by default. The Greater Khingan landscape is about 1e5 km^2; a
#: polygon much larger than that is usually a mistake (a whole province, or swapped coordinates).
DEFAULT_MAX_AREA_KM2 = 250_000.0
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_GEOD = Geod(ellps="WGS84")


class Ecosystem(str, Enum):
    forest = "forest"
    grassland = "grassland"
    wetland = "wetland"


class Landscape(BaseModel):
    """One conservation landscape.

    Attributes
    ----------
    id : str
        Slug (lowercase letters, digits, hyphens). Safe to use as a file name.
    name : str
        Human-readable name.
    country : list of str
        ISO 3166-1 alpha-2 codes; a transboundary landscape lists several (``["CN", "RU"]``).
    ecosystems : list of Ecosystem
        Which indicators apply: forest, grassland, wetland.
    managers : list of str
        Email addresses of the landscape managers who receive the alert digests.
    boundary_source : str
        Where the outline comes from; ``"approximate"`` until official outlines replace it.
    geometry : dict
        GeoJSON Polygon or MultiPolygon in EPSG:4326.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str = Field(min_length=1)
    country: list[str] = Field(min_length=1)
    ecosystems: list[Ecosystem] = Field(min_length=1)
    managers: list[str] = Field(default_factory=list)
    boundary_source: str = "approximate"
    geometry: dict[str, Any]

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError(
                f"id {v!r} is not a slug; use lowercase letters, digits and single hyphens, "
                f"e.g. {_slugify(v)!r}"
            )
        return v

    @field_validator("country", mode="before")
    @classmethod
    def _country(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [c.strip() for c in re.split(r"[/,;]", v) if c.strip()]
        for c in v if isinstance(v, list) else []:
            if not isinstance(c, str) or not _COUNTRY.match(c):
                raise ValueError(f"country {c!r} is not an ISO 3166-1 alpha-2 code; use e.g. 'CN', 'MN', 'RU'")
        return v

    @field_validator("ecosystems")
    @classmethod
    def _unique_ecosystems(cls, v: list[Ecosystem]) -> list[Ecosystem]:
        return list(dict.fromkeys(v))

    @field_validator("managers")
    @classmethod
    def _emails(cls, v: list[str]) -> list[str]:
        out = []
        for addr in v:
            try:
                out.append(validate_email(addr, check_deliverability=False).normalized)
            except EmailNotValidError as exc:
                raise ValueError(f"manager email {addr!r} is invalid ({exc}); use a full address like ranger@example.org") from exc
        return out

    # ------------------------------------------------------------------ derived
    @property
    def shape(self) -> BaseGeometry:
        """The outline as a shapely geometry in EPSG:4326."""
        return shape(self.geometry)

    @property
    def area_km2(self) -> float:
        """Geodesic area on the WGS 84 ellipsoid, in km²."""
        return _geodesic_area_km2(self.shape)

    @property
    def utm_epsg(self) -> int:
        return self.grid(10.0).epsg

    def grid(self, resolution: float = 10.0) -> Grid:
        """The landscape's analysis grid at ``resolution`` metres (UTM zone of the centroid, snapped)."""
        return grid_for_geometry(self.shape, resolution)

    def to_feature(self) -> dict[str, Any]:
        props = self.model_dump(mode="json", exclude={"geometry", "id"})
        return {"type": "Feature", "id": self.id, "properties": {"id": self.id, **props}, "geometry": self.geometry}


def _slugify(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "landscape"


def _geodesic_area_km2(geom: BaseGeometry) -> float:
    return abs(_GEOD.geometry_area_perimeter(geom)[0]) / 1e6


def default_landscapes_path() -> Path:
    """Path of the bundled ``aoi/landscapes.geojson``."""
    return Path(str(resources.files("aoi") / "landscapes.geojson"))


def load_landscapes(path: str | Path | None = None, *, max_area_km2: float = DEFAULT_MAX_AREA_KM2) -> list[Landscape]:
    """Load and validate an AOI GeoJSON file.

    Parameters
    ----------
    path
        A GeoJSON FeatureCollection in EPSG:4326. Defaults to the bundled landscapes.
    max_area_km2
        Reject landscapes larger than this (km²).

    Raises
    ------
    AoiValidationError
        Listing every problem in the file at once.
    """
    p = Path(path) if path is not None else default_landscapes_path()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AoiValidationError(str(p), [AoiProblem("file", f"{str(p)!r} does not exist", "pass the path of a GeoJSON FeatureCollection, e.g. aoi/landscapes.geojson")]) from None
    except UnicodeDecodeError as exc:
        raise AoiValidationError(str(p), [AoiProblem("file", f"not UTF-8 text ({exc.reason} at byte {exc.start})", "save the file as UTF-8 GeoJSON; is it a shapefile or GeoPackage? convert with: ogr2ogr -f GeoJSON -t_srs EPSG:4326 out.geojson in.shp")]) from None
    return parse_landscapes(text, source=str(p), max_area_km2=max_area_km2)


def parse_landscapes(text: str, *, source: str = "<string>", max_area_km2: float = DEFAULT_MAX_AREA_KM2) -> list[Landscape]:
    """Validate GeoJSON text; see :func:`load_landscapes`."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AoiValidationError(source, [AoiProblem(
            "file", f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            "fix the JSON syntax (a trailing comma or an unclosed bracket is common); check with: python -m json.tool FILE",
        )]) from None

    problems: list[AoiProblem] = []
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        got = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise AoiValidationError(source, [AoiProblem(
            "file", f"expected a GeoJSON FeatureCollection, got type {got!r}",
            'wrap the features as {"type": "FeatureCollection", "features": [...]}',
        )])
    crs_name = ((doc.get("crs") or {}).get("properties") or {}).get("name")
    if crs_name and not re.search(r"(CRS84|EPSG:+4326)$", str(crs_name)):
        problems.append(AoiProblem("file", f"declares crs {crs_name!r}; GeoJSON must be lon/lat WGS 84",
                                   "reproject: ogr2ogr -f GeoJSON -t_srs EPSG:4326 out.geojson in.geojson"))
    features = doc.get("features")
    if not isinstance(features, list) or not features:
        raise AoiValidationError(source, problems + [AoiProblem(
            "file", "the FeatureCollection has no features", "add at least one landscape Feature")])

    landscapes: list[Landscape] = []
    raw_ids = [(f.get("properties") or {}).get("id", f.get("id")) for f in features if isinstance(f, dict)]
    for i, feat in enumerate(features, 1):
        landscape, fproblems = _parse_feature(i, feat, max_area_km2)
        problems += fproblems
        if landscape is not None:
            landscapes.append(landscape)

    for lid, n in Counter(x for x in raw_ids if isinstance(x, str)).items():
        if n > 1:
            problems.append(AoiProblem("file", f"id {lid!r} is used by {n} features",
                                       "give each landscape a unique id; ids name output files and alerts"))
    if problems:
        raise AoiValidationError(source, problems)
    return landscapes


def _where(i: int, feat: Any) -> str:
    fid = None
    if isinstance(feat, dict):
        fid = (feat.get("properties") or {}).get("id", feat.get("id"))
    return f"feature {i}" + (f" (id {fid!r})" if fid is not None else "")


def _parse_feature(i: int, feat: Any, max_area_km2: float) -> tuple[Landscape | None, list[AoiProblem]]:
    where = _where(i, feat)
    if not isinstance(feat, dict) or feat.get("type") != "Feature":
        return None, [AoiProblem(where, "is not a GeoJSON Feature", 'each entry of "features" must be {"type": "Feature", "properties": {...}, "geometry": {...}}')]
    problems: list[AoiProblem] = []
    props = dict(feat.get("properties") or {})
    if "id" not in props and feat.get("id") is not None:
        props["id"] = feat["id"]
    geom_problems, geometry = _check_geometry(where, feat.get("geometry"), max_area_km2)
    problems += geom_problems
    try:
        landscape = Landscape.model_validate({**props, "geometry": geometry or {"type": "Polygon", "coordinates": []}})
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(_pydantic_problem(where, err))
        return None, problems
    return (landscape if not problems else None), problems


_FIELD_FIXES = {
    "id": "add a unique slug id, e.g. 'zhalong-wetland'",
    "name": "add a human-readable name",
    "country": "give ISO 3166-1 alpha-2 codes, e.g. ['CN'] or ['CN', 'RU']",
    "ecosystems": "list one or more of: forest, grassland, wetland",
    "managers": "list manager email addresses, e.g. ['ranger@example.org']",
    "boundary_source": "say where the outline comes from, e.g. 'approximate'",
}


def _pydantic_problem(where: str, err: dict[str, Any]) -> AoiProblem:
    loc = [str(x) for x in err.get("loc", ())]
    field = loc[0] if loc else "properties"
    path = ".".join(loc)
    etype = err.get("type", "")
    msg = err.get("msg", "").removeprefix("Value error, ")
    if etype == "missing":
        return AoiProblem(where, f"property {field!r} is missing", _FIELD_FIXES.get(field, f"add {field!r}"))
    if etype == "extra_forbidden":
        return AoiProblem(where, f"unknown property {field!r} = {err.get('input')!r}",
                          f"remove it, or rename it to one of: {', '.join(sorted(_FIELD_FIXES))}")
    if field == "ecosystems" and etype == "enum":
        return AoiProblem(where, f"unknown ecosystem {err.get('input')!r} at {path}",
                          "use one or more of: forest, grassland, wetland")
    if "fix" not in msg and "; use" in msg:
        what, _, fix = msg.partition("; ")
        return AoiProblem(where, what, fix)
    return AoiProblem(where, f"{path}: {msg} (got {err.get('input')!r})", _FIELD_FIXES.get(field, "correct the value"))


def _iter_coords(coords: Any) -> Iterable[tuple[float, float]]:
    if isinstance(coords, (list, tuple)) and coords and isinstance(coords[0], (int, float)):
        yield coords[0], coords[1] if len(coords) > 1 else float("nan")
    elif isinstance(coords, (list, tuple)):
        for c in coords:
            yield from _iter_coords(c)


def _check_geometry(where: str, geom: Any, max_area_km2: float) -> tuple[list[AoiProblem], dict | None]:
    if geom is None:
        return [AoiProblem(where, "has no geometry (null)", "draw the landscape outline as a Polygon or MultiPolygon")], None
    if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
        gtype = geom.get("type") if isinstance(geom, dict) else type(geom).__name__
        return [AoiProblem(where, f"geometry type {gtype!r} is not an area",
                           "use a Polygon or MultiPolygon; buffer points or lines into areas first")], None
    coords = geom.get("coordinates")
    pts = list(_iter_coords(coords))
    if not pts:
        return [AoiProblem(where, "geometry is empty (no coordinates)", "draw the landscape outline, or remove the feature")], None
    bad = [(x, y) for x, y in pts if not (isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isfinite(x) and math.isfinite(y))]
    if bad:
        return [AoiProblem(where, f"non-numeric or non-finite coordinate {bad[0]!r}", "coordinates must be [lon, lat] numbers")], None
    out = [(x, y) for x, y in pts if not (-180 <= x <= 180 and -90 <= y <= 90)]
    if out:
        x, y = out[0]
        return [AoiProblem(
            where, f"coordinate ({x:g}, {y:g}) is outside the lon/lat range (lon -180..180, lat -90..90); "
                   f"{len(out)} of {len(pts)} coordinates are. This usually means a projected file (e.g. UTM metres) was passed",
            "GeoJSON must be EPSG:4326 lon/lat: ogr2ogr -f GeoJSON -t_srs EPSG:4326 out.geojson in.geojson",
        )], None
    try:
        g = shape(geom)
    except Exception as exc:  # malformed rings, too few points
        return [AoiProblem(where, f"geometry cannot be built: {exc}", "each ring needs at least 4 [lon, lat] positions, first == last")], None
    if g.is_empty:
        return [AoiProblem(where, "geometry is empty", "draw the landscape outline, or remove the feature")], None
    problems = []
    if not g.is_valid:
        problems.append(AoiProblem(where, f"geometry is invalid: {explain_validity(g)}",
                                   "repair it (QGIS 'Fix geometries', or shapely.make_valid) so rings do not self-intersect"))
        return problems, None
    area = _geodesic_area_km2(g)
    if area > max_area_km2:
        problems.append(AoiProblem(where, f"area {area:,.0f} km² exceeds the limit of {max_area_km2:,.0f} km²",
                                   "split the landscape into smaller ones, or raise the limit (max_area_km2) if this is intended"))
    if max(abs(y) for _, y in pts) > 84:
        problems.append(AoiProblem(where, "reaches beyond 84° latitude, outside the UTM domain", "check that lon/lat are not swapped"))
    return problems, (geom if not problems else None)
