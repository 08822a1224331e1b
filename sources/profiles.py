"""Provider conventions for Sentinel-2 L2A and Landsat Collection 2 Level-2 assets.

These constants are the single place where asset keys, band metadata, scaling and mask encodings
are written down. The demo archive generator writes items with them, and the loaders read with them.

References
----------
- Earth Search ``sentinel-2-c1-l2a`` and ``landsat-c2-l2`` items (recorded in ``shared/data/real``).
- ESA, Sentinel-2 Products Specification Document, BOA_ADD_OFFSET from processing baseline 04.00.
- USGS, Landsat 8-9 Collection 2 Level 2 Science Product Guide (LSDS-1619), QA_PIXEL bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "BandSpec",
    "CANONICAL_BANDS",
    "S2_C1_BANDS",
    "S2_SCL_ASSET",
    "LANDSAT_C2_BANDS",
    "LANDSAT_QA_ASSET",
    "S2_SCALE",
    "S2_OFFSET_C1",
    "S2_BOA_ADD_OFFSET_DN",
    "S2_OFFSET_BASELINE",
    "LANDSAT_SR_SCALE",
    "LANDSAT_SR_OFFSET",
    "NODATA_DN",
    "SCL",
    "QA",
    "SCL_NOT_CLEAR",
    "s2_offset_applies",
]

#: Canonical reflectance bands every profile maps to its own asset keys.
CANONICAL_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "nir08", "swir16", "swir22")

#: DN 0 is "no data" in every reflectance and mask asset of both missions.
NODATA_DN = 0


@dataclass(frozen=True)
class BandSpec:
    """One reflectance band as a provider publishes it."""

    key: str  #: asset key at the provider (Earth Search common-name keys)
    name: str  #: sensor band name (B04, OLI_B4)
    common_name: str
    center_wavelength: float  #: micrometres
    full_width_half_max: float  #: micrometres
    gsd: int  #: metres
    title: str
    file_stem: str  #: file name the provider uses (B04, SR_B4)


# --- Sentinel-2 L2A, Earth Search collection-1 (sentinel-2-c1-l2a) ---------------------------------
S2_SCALE = 0.0001
#: raster:bands offset written by Earth Search c1 on every reflectance asset (= BOA_ADD_OFFSET * scale)
S2_OFFSET_C1 = -0.1
#: ESA BOA_ADD_OFFSET in digital numbers, applied from processing baseline 04.00 on
S2_BOA_ADD_OFFSET_DN = -1000
#: first processing baseline whose DN carry the +1000 offset
S2_OFFSET_BASELINE = (4, 0)

S2_C1_BANDS: dict[str, BandSpec] = {
    b.common_name: b
    for b in (
        BandSpec("blue", "B02", "blue", 0.49, 0.098, 10, "Blue - 10m", "B02"),
        BandSpec("green", "B03", "green", 0.56, 0.045, 10, "Green - 10m", "B03"),
        BandSpec("red", "B04", "red", 0.665, 0.038, 10, "Red - 10m", "B04"),
        BandSpec("nir", "B08", "nir", 0.842, 0.145, 10, "NIR 1 - 10m", "B08"),
        BandSpec("nir08", "B8A", "nir08", 0.865, 0.033, 20, "NIR 2 - 20m", "B8A"),
        BandSpec("swir16", "B11", "swir16", 1.61, 0.143, 20, "SWIR 1.6\u03bcm - 20m", "B11"),
        BandSpec("swir22", "B12", "swir22", 2.19, 0.242, 20, "SWIR 2.2\u03bcm - 20m", "B12"),
    )
}
S2_SCL_ASSET = "scl"


def s2_offset_applies(processing_baseline: str) -> bool:
    """Whether DN of this Sentinel-2 L2A product carry the +1000 BOA offset (baseline >= 04.00).

    Decided from ``s2:processing_baseline``, never from the acquisition date: collection-1
    reprocessing gives old acquisitions a new baseline.
    """
    try:
        major, minor = (int(p) for p in processing_baseline.strip().split(".")[:2])
    except ValueError as exc:
        raise ValueError(
            f"s2:processing_baseline {processing_baseline!r} is not of the form 'NN.NN' (e.g. '05.11')"
        ) from exc
    return (major, minor) >= S2_OFFSET_BASELINE


class SCL:
    """Sentinel-2 L2A scene classification (Sen2Cor) values."""

    NO_DATA = 0
    SATURATED_DEFECTIVE = 1
    DARK_AREA = 2
    CLOUD_SHADOW = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM = 8
    CLOUD_HIGH = 9
    THIN_CIRRUS = 10
    SNOW = 11


#: SCL classes that are never clear sky. Snow (11) is kept apart as its own flag.
SCL_NOT_CLEAR: frozenset[int] = frozenset({SCL.NO_DATA, SCL.SATURATED_DEFECTIVE, SCL.CLOUD_SHADOW,
                                           SCL.CLOUD_MEDIUM, SCL.CLOUD_HIGH, SCL.THIN_CIRRUS})


# --- Landsat Collection 2 Level-2, Earth Search (landsat-c2-l2) -------------------------------------
LANDSAT_SR_SCALE = 2.75e-05
LANDSAT_SR_OFFSET = -0.2

LANDSAT_C2_BANDS: dict[str, BandSpec] = {
    b.common_name: b
    for b in (
        BandSpec("blue", "OLI_B2", "blue", 0.48, 0.06, 30, "Blue Band", "SR_B2"),
        BandSpec("green", "OLI_B3", "green", 0.56, 0.06, 30, "Green Band", "SR_B3"),
        BandSpec("red", "OLI_B4", "red", 0.65, 0.04, 30, "Red Band", "SR_B4"),
        BandSpec("nir08", "OLI_B5", "nir08", 0.87, 0.03, 30, "Near Infrared Band 0.8", "SR_B5"),
        BandSpec("swir16", "OLI_B6", "swir16", 1.61, 0.09, 30, "Short-wave Infrared Band 1.6", "SR_B6"),
        BandSpec("swir22", "OLI_B7", "swir22", 2.2, 0.19, 30, "Short-wave Infrared Band 2.2", "SR_B7"),
    )
}
LANDSAT_QA_ASSET = "qa_pixel"


class QA:
    """Landsat C2 QA_PIXEL bit offsets (LSDS-1619 table 6-3)."""

    FILL = 0
    DILATED_CLOUD = 1
    CIRRUS = 2
    CLOUD = 3
    CLOUD_SHADOW = 4
    SNOW = 5
    CLEAR = 6
    WATER = 7
    CLOUD_CONF = 8  #: 2 bits: 1 low, 2 medium, 3 high
    SHADOW_CONF = 10  #: 2 bits: 1 low, 3 high
    SNOW_CONF = 12  #: 2 bits: 1 low, 3 high
    CIRRUS_CONF = 14  #: 2 bits: 1 low, 3 high


# --- Sentinel-2 / Landsat harmonisation (HLS) -------------------------------------------------------
#: HLS bandpass adjustment, Claverie et al. (2018), Remote Sens. Environ. 219:145-161, table 5:
#: ``OLI = slope * MSI + offset`` for each canonical band (MSI B8A <-> OLI B5 for nir08).
#: Its inverse, ``MSI = (OLI - offset) / slope``, brings Landsat onto the Sentinel-2 scale.
HLS_MSI_TO_OLI: dict[str, tuple[float, float]] = {
    "blue": (0.9778, -0.004),
    "green": (1.0053, -0.0009),
    "red": (0.9765, 0.0009),
    "nir08": (0.9983, -0.0001),
    "swir16": (0.9987, -0.0011),
    "swir22": (1.003, -0.0012),
}
__all__ += ["HLS_MSI_TO_OLI"]


# =====================================================================================================
# Collection profiles
# =====================================================================================================
from typing import Any, Literal, Mapping  # noqa: E402

from aoi.errors import AmurwatchError  # noqa: E402

__all__ += ["CollectionProfile", "PROFILES", "detect_profile", "resolve_scaling", "Scaling",
            "UnknownCollectionError", "MissingMetadataError", "SourceError", "normalize_item", "item_platform",
            "item_grid_code"]

#: canonical reflectance bands loaded by default (nir08 exists only for Sentinel-2 and is opt-in)
DEFAULT_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16", "swir22")
__all__ += ["DEFAULT_BANDS"]


class SourceError(AmurwatchError):
    """Imagery could not be found or loaded."""


class UnknownCollectionError(SourceError, ValueError):
    """An item belongs to no known collection profile."""


class MissingMetadataError(SourceError, ValueError):
    """An item lacks metadata its collection profile needs."""


@dataclass(frozen=True)
class CollectionProfile:
    """How one provider publishes one collection.

    Attributes
    ----------
    name : str
        ``provider/collection``, e.g. ``earth-search/sentinel-2-c1-l2a``.
    mission : str
        ``sentinel-2`` or ``landsat``.
    bands : mapping
        Canonical band -> asset key. Landsat's canonical ``nir`` is OLI B5 (``nir08``).
    mask_asset, mask_kind
        The asset holding the clear-sky mask and how to decode it (``scl`` or ``qa_pixel``).
    scale, offset
        The provider's documented rule, used where ``raster:bands`` is absent.
    trust_raster_bands : bool
        Whether ``raster:bands`` scale/offset may be used at all.
    baseline_property : str or None
        Sentinel-2 processing-baseline property; decides the -1000 DN offset.
    offset_applied_flag : str or None
        Property by which the provider says it already removed the BOA offset from the DN.
    sign : str or None
        ``planetary-computer`` when hrefs need a SAS token.
    requester_pays : bool
        Hrefs are ``s3://`` requester-pays objects (set ``AWS_REQUEST_PAYER=requester``).
    native_gsd : mapping
        Canonical band (and ``mask``) -> native resolution in metres.
    """

    name: str
    provider: str
    collection: str
    mission: Literal["sentinel-2", "landsat"]
    bands: Mapping[str, str]
    mask_asset: str
    mask_kind: Literal["scl", "qa_pixel"]
    scale: float
    offset: float
    trust_raster_bands: bool = True
    baseline_property: str | None = None
    offset_applied_flag: str | None = None
    sign: str | None = None
    requester_pays: bool = False
    native_gsd: Mapping[str, int] = field(default_factory=dict)

    def asset_for(self, band: str) -> str:
        if band == "mask":
            return self.mask_asset
        try:
            return self.bands[band]
        except KeyError:
            raise MissingMetadataError(
                f"profile {self.name} has no band {band!r}; it offers {sorted(self.bands)}") from None


_S2_GSD = {"blue": 10, "green": 10, "red": 10, "nir": 10, "nir08": 20, "swir16": 20, "swir22": 20, "mask": 20}
_L_GSD = {b: 30 for b in ("blue", "green", "red", "nir", "nir08", "swir16", "swir22", "mask")}
_S2_COMMON = {b: b for b in ("blue", "green", "red", "nir", "nir08", "swir16", "swir22")}
_S2_BKEYS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "nir08": "B8A", "swir16": "B11", "swir22": "B12"}
# OLI has one NIR band, B5 (0.865 µm): it is both the canonical ``nir`` and ``nir08`` (MSI B8A's twin)
_L_COMMON = {"blue": "blue", "green": "green", "red": "red", "nir": "nir08", "nir08": "nir08", "swir16": "swir16",
             "swir22": "swir22"}
_L_USGS = {"blue": "SR_B2.TIF", "green": "SR_B3.TIF", "red": "SR_B4.TIF", "nir": "SR_B5.TIF", "nir08": "SR_B5.TIF",
           "swir16": "SR_B6.TIF", "swir22": "SR_B7.TIF"}

PROFILES: dict[str, CollectionProfile] = {p.name: p for p in (
    CollectionProfile("earth-search/sentinel-2-c1-l2a", "earth-search", "sentinel-2-c1-l2a", "sentinel-2",
                      _S2_COMMON, "scl", "scl", S2_SCALE, S2_OFFSET_C1,
                      baseline_property="s2:processing_baseline", native_gsd=_S2_GSD),
    # v1 sentinel-2-l2a: the same files as v0. For baseline >= 04.00 Earth Search removed the offset from
    # the DN (earthsearch:boa_offset_applied: true) yet still writes raster:bands offset -0.1: the flag wins.
    CollectionProfile("earth-search/sentinel-2-l2a", "earth-search", "sentinel-2-l2a", "sentinel-2",
                      _S2_COMMON, "scl", "scl", S2_SCALE, 0.0,
                      baseline_property="s2:processing_baseline", offset_applied_flag="earthsearch:boa_offset_applied",
                      native_gsd=_S2_GSD),
    CollectionProfile("earth-search/sentinel-s2-l2a-cogs", "earth-search", "sentinel-s2-l2a-cogs", "sentinel-2",
                      _S2_BKEYS, "SCL", "scl", S2_SCALE, 0.0, trust_raster_bands=False,
                      baseline_property="sentinel:processing_baseline", offset_applied_flag="sentinel:boa_offset_applied",
                      native_gsd=_S2_GSD),
    # Planetary Computer serves ESA's raw DN with no raster:bands: reflectance = (DN - 1000) / 10000 from 04.00
    CollectionProfile("planetary-computer/sentinel-2-l2a", "planetary-computer", "sentinel-2-l2a", "sentinel-2",
                      _S2_BKEYS, "SCL", "scl", S2_SCALE, 0.0, trust_raster_bands=False,
                      baseline_property="s2:processing_baseline", sign="planetary-computer", native_gsd=_S2_GSD),
    CollectionProfile("earth-search/landsat-c2-l2", "earth-search", "landsat-c2-l2", "landsat",
                      _L_COMMON, "qa_pixel", "qa_pixel", LANDSAT_SR_SCALE, LANDSAT_SR_OFFSET, requester_pays=True,
                      native_gsd=_L_GSD),
    CollectionProfile("planetary-computer/landsat-c2-l2", "planetary-computer", "landsat-c2-l2", "landsat",
                      _L_COMMON, "qa_pixel", "qa_pixel", LANDSAT_SR_SCALE, LANDSAT_SR_OFFSET,
                      sign="planetary-computer", native_gsd=_L_GSD),
    # USGS's own STAC (landsatlook, STAC 0.7): file-name asset keys, no proj or raster metadata
    CollectionProfile("usgs/landsat-c2l2-sr", "usgs", "landsat-c2l2-sr", "landsat",
                      _L_USGS, "QA_PIXEL.TIF", "qa_pixel", LANDSAT_SR_SCALE, LANDSAT_SR_OFFSET,
                      trust_raster_bands=False, native_gsd=_L_GSD),
    CollectionProfile("demo/sentinel-2-c1-l2a", "demo", "sentinel-2-c1-l2a", "sentinel-2",
                      _S2_COMMON, "scl", "scl", S2_SCALE, S2_OFFSET_C1,
                      baseline_property="s2:processing_baseline", native_gsd=_S2_GSD),
    CollectionProfile("demo/landsat-c2-l2", "demo", "landsat-c2-l2", "landsat",
                      _L_COMMON, "qa_pixel", "qa_pixel", LANDSAT_SR_SCALE, LANDSAT_SR_OFFSET, native_gsd=_L_GSD),
)}


def _collection_of(item: Mapping[str, Any]) -> str | None:
    if item.get("collection"):
        return str(item["collection"])
    for link in item.get("links", []):
        if link.get("rel") in ("collection", "parent") and "/collections/" in link.get("href", ""):
            return link["href"].rstrip("/").split("/collections/")[-1].split("/")[0]
    return None


def _hosts(item: Mapping[str, Any]) -> str:
    hrefs = [a.get("href", "") for a in item.get("assets", {}).values()]
    hrefs += [link.get("href", "") for link in item.get("links", [])]
    return " ".join(hrefs)


def detect_profile(item: Mapping[str, Any]) -> CollectionProfile:
    """The collection profile of an item, from its collection id, provider hints and asset keys.

    Raises
    ------
    UnknownCollectionError
        Naming the collection and the profiles that exist.
    """
    col = _collection_of(item)
    assets = item.get("assets", {})
    hosts = _hosts(item)
    props = item.get("properties", {})
    is_demo = "amurwatch-demo" in (props.get("processing:software") or {})
    name = None
    if col == "sentinel-2-c1-l2a":
        name = "demo/sentinel-2-c1-l2a" if is_demo else "earth-search/sentinel-2-c1-l2a"
    elif col == "sentinel-2-l2a":
        if "B04" in assets or "planetarycomputer" in hosts or "blob.core.windows.net" in hosts:
            name = "planetary-computer/sentinel-2-l2a"
        elif "red" in assets:
            name = "earth-search/sentinel-2-l2a"
    elif col == "sentinel-s2-l2a-cogs":
        name = "earth-search/sentinel-s2-l2a-cogs"
    elif col == "landsat-c2-l2":
        if is_demo:
            name = "demo/landsat-c2-l2"
        elif "planetarycomputer" in hosts or "blob.core.windows.net" in hosts:
            name = "planetary-computer/landsat-c2-l2"
        else:
            name = "earth-search/landsat-c2-l2"
    elif col in (None, "landsat-c2l2-sr") and "SR_B4.TIF" in assets:
        name = "usgs/landsat-c2l2-sr"
    if name is None:
        known = sorted({p.collection for p in PROFILES.values()})
        raise UnknownCollectionError(
            f"item {item.get('id')!r}: collection {col!r} (assets {sorted(assets)[:8]}...) matches no profile; "
            f"known collections: {known}. Fix: search one of these, or add a CollectionProfile to "
            "sources/profiles.py PROFILES")
    return PROFILES[name]


@dataclass(frozen=True)
class Scaling:
    """Reflectance = DN * scale + offset, and why."""

    scale: float
    offset: float
    nodata: float
    reason: str


def _raster_band(item: Mapping[str, Any], asset_key: str) -> dict:
    a = item.get("assets", {}).get(asset_key, {})
    rb = a.get("raster:bands") or [{}]
    return rb[0] if isinstance(rb, list) and rb else {}


def resolve_scaling(profile: CollectionProfile, item: Mapping[str, Any], band: str) -> Scaling:
    """The scale and offset of one reflectance band of one item, with the reason.

    Sentinel-2: the BOA offset is decided from the processing baseline (>= 04.00 carries -1000 DN),
    unless the provider says it already removed it (``*:boa_offset_applied: true``).
    ``raster:bands`` gives the scale where present and trusted; otherwise the documented rule.
    """
    key = profile.asset_for(band)
    props = item.get("properties", {})
    rb = _raster_band(item, key) if profile.trust_raster_bands else {}
    nodata = float(rb.get("nodata", NODATA_DN))
    scale = float(rb.get("scale", profile.scale))
    if profile.mission == "landsat":
        offset = float(rb.get("offset", profile.offset))
        src = "raster:bands" if "scale" in rb else f"documented rule of {profile.name}"
        return Scaling(scale, offset, nodata, f"{src}: scale {scale:g}, offset {offset:g}")
    flag = props.get(profile.offset_applied_flag) if profile.offset_applied_flag else None
    pb = props.get(profile.baseline_property) if profile.baseline_property else None
    rb_offset = rb.get("offset")
    if flag is True:
        reason = f"{profile.offset_applied_flag}=true: the provider already removed the BOA offset from the DN"
        if rb_offset not in (None, 0, 0.0):
            reason += f" (raster:bands offset {rb_offset:g} contradicts it and is ignored)"
        return Scaling(scale, 0.0, nodata, reason)
    if pb is None:
        if rb_offset is not None:
            return Scaling(scale, float(rb_offset), nodata, "raster:bands (no processing baseline in the item)")
        raise MissingMetadataError(
            f"item {item.get('id')!r} ({profile.name}) has neither {profile.baseline_property!r} nor raster:bands "
            "offset, so the Sentinel-2 BOA offset (-1000 DN from baseline 04.00) cannot be decided. Fix: use a "
            "catalog that publishes the processing baseline, or add it to the item properties")
    applies = s2_offset_applies(str(pb))
    offset = S2_BOA_ADD_OFFSET_DN * scale if applies else 0.0
    reason = f"processing baseline {pb}: offset {'applies' if applies else 'does not apply'}"
    if rb_offset is not None and abs(float(rb_offset) - offset) > 1e-9:
        reason += f" (raster:bands offset {rb_offset:g} disagrees and is ignored)"
    return Scaling(scale, offset, nodata, reason)


def normalize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an item dict that stackstac can read: ``proj:code`` -> ``proj:epsg`` (item and assets),
    6-element ``proj:transform``. pystac >= 1.13 writes ``proj:code``; stackstac 0.5 reads only ``proj:epsg``."""
    # a copy of the levels changed here and by the loader (properties, each asset's dict); the values
    # below them are shared, read only (a deep copy of every item cost more than the rest of a load's set-up)
    it = dict(item)
    it["properties"] = dict(it.get("properties") or {})
    it["assets"] = {k: dict(v) for k, v in (it.get("assets") or {}).items()}

    def fix(d: dict) -> None:
        code = d.get("proj:code")
        if d.get("proj:epsg") is None and isinstance(code, str) and code.upper().startswith("EPSG:"):
            d["proj:epsg"] = int(code.split(":")[1])
        t = d.get("proj:transform")
        if isinstance(t, list) and len(t) == 9:
            d["proj:transform"] = t[:6]

    fix(it["properties"])
    for a in it["assets"].values():
        fix(a)
    return it


def item_platform(item: Mapping[str, Any]) -> str:
    """Normalised platform name: ``sentinel-2a``, ``landsat-8``..."""
    p = item.get("properties", {})
    raw = str(p.get("platform") or p.get("eo:platform") or "").lower().replace("_", "-")
    return raw


def item_grid_code(item: Mapping[str, Any]) -> str | None:
    """The acquisition tile: ``MGRS-51UVR`` or ``WRS2-122024``, whatever the provider's property names."""
    p = item.get("properties", {})
    if p.get("grid:code"):
        return str(p["grid:code"])
    if p.get("s2:mgrs_tile"):
        return f"MGRS-{p['s2:mgrs_tile']}"
    if p.get("mgrs:utm_zone") is not None:
        return f"MGRS-{int(p['mgrs:utm_zone']):02d}{p.get('mgrs:latitude_band', '')}{p.get('mgrs:grid_square', '')}"
    if p.get("sentinel:utm_zone") is not None:
        return f"MGRS-{int(p['sentinel:utm_zone']):02d}{p.get('sentinel:latitude_band', '')}{p.get('sentinel:grid_square', '')}"
    if p.get("landsat:wrs_path") is not None:
        return f"WRS2-{int(p['landsat:wrs_path']):03d}{int(p['landsat:wrs_row']):03d}"
    return None
