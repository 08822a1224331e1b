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

from dataclasses import dataclass

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
