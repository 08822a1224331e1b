"""The atmosphere over a demo scene and what the sensors and their masks make of it.

Clouds come from thresholded multi-scale noise with soft edges; their shadows are the same field
displaced away from the sun by ``cloud height / tan(sun elevation)``. Thin haze adds path
radiance. The providers' masks (Sentinel-2 SCL, Landsat QA_PIXEL) are derived from these fields
the way real ones behave: right for the cores, often wrong at thin edges and shadow rims.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sources.profiles import HLS_MSI_TO_OLI, QA, SCL

from .physics import BANDS, World, smooth_noise
from .scenario import Acquisition, rng_for

__all__ = ["Sky", "draw_sky", "apply_sky", "scl_from", "qa_pixel_from", "block_mean", "to_landsat_grid",
           "solar_position", "SKY_CLEAR", "SKY_THIN", "SKY_CLOUD", "SKY_SHADOW", "SKY_HAZE", "SKY_NODATA"]

SKY_CLEAR, SKY_THIN, SKY_CLOUD, SKY_SHADOW, SKY_HAZE, SKY_NODATA = 0, 1, 2, 3, 4, 255

_HAZE = np.array([0.035, 0.025, 0.015, 0.006, 0.005, 0.001, 0.0], np.float32)
_CLOUD = np.array([0.50, 0.50, 0.50, 0.52, 0.52, 0.38, 0.26], np.float32)
_SHADOW_K = np.array([0.55, 0.62, 0.68, 0.75, 0.75, 0.78, 0.78], np.float32)


@dataclass
class Sky:
    """Atmospheric fields of one scene on the world grid (10 m)."""

    cloud_cover: float  #: target fraction
    opacity: np.ndarray  #: cloud opacity 0..1
    shadow: np.ndarray  #: shadow strength 0..1 (0 under the cloud itself)
    haze: np.ndarray  #: haze optical depth 0..1
    valid: np.ndarray  #: bool, inside the swath
    detect: np.ndarray  #: coherent random field driving mask omissions
    sun_elevation: float
    sun_azimuth: float

    def truth_classes(self) -> np.ndarray:
        """Per-pixel sky truth: 0 clear, 1 thin cloud, 2 cloud, 3 shadow, 4 haze, 255 no data."""
        t = np.zeros(self.opacity.shape, np.uint8)
        t[self.haze > 0.3] = SKY_HAZE
        t[self.shadow > 0.1] = SKY_SHADOW
        t[self.opacity > 0.02] = SKY_THIN
        t[self.opacity > 0.3] = SKY_CLOUD
        t[~self.valid] = SKY_NODATA
        return t


def solar_position(lat: float, lon: float, when: dt.datetime) -> tuple[float, float]:
    """Approximate solar (elevation, azimuth) in degrees for a UTC time (NOAA low-accuracy formulae)."""
    doy = when.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (284 + doy) / 365.0)
    solar_h = when.hour + when.minute / 60 + lon / 15.0
    ha = math.radians(15.0 * (solar_h - 12.0))
    phi = math.radians(lat)
    sin_el = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    el = math.asin(sin_el)
    cos_az = (math.sin(decl) - math.sin(el) * math.sin(phi)) / (math.cos(el) * math.cos(phi))
    az = math.degrees(math.acos(max(-1.0, min(1.0, cos_az))))
    if ha > 0:
        az = 360.0 - az
    return math.degrees(el), az


def _cloud_cover_draw(rng: np.random.Generator, date: dt.date) -> float:
    # East Asian summer monsoon: July-August are the cloudiest months here
    monsoon = 0.15 * math.exp(-0.5 * ((date.timetuple().tm_yday - 205) / 25.0) ** 2)
    u = rng.uniform()
    if u < 0.36 - monsoon:
        return float(rng.uniform(0.0, 0.03))
    if u < 0.72 - monsoon:
        return float(rng.uniform(0.03, 0.35))
    if u < 0.92:
        return float(rng.uniform(0.35, 0.85))
    return float(rng.uniform(0.9, 1.0))


def draw_sky(world: World, acq: Acquisition) -> Sky:
    """The clouds, shadows, haze and swath of one acquisition. Deterministic per acquisition."""
    rng = rng_for(world.seed, "sky", world.spec.id, acq.sensor, acq.datetime.isoformat())
    h, w = world.shape
    cc = _cloud_cover_draw(rng, acq.date)
    field = (0.6 * smooth_noise(rng, (h, w), 28) + 0.3 * smooth_noise(rng, (h, w), 9)
             + 0.1 * smooth_noise(rng, (h, w), 3))
    if cc <= 0.001:
        opacity = np.zeros((h, w), np.float32)
    else:
        thr = np.quantile(field, 1 - cc)
        opacity = np.clip((field - thr) / 0.35, 0, 1) ** 0.8
    el, az = solar_position(world.spec.lat, world.spec.lon, acq.datetime)
    height_m = float(rng.uniform(800, 2500))
    d_px = height_m / math.tan(math.radians(max(el, 5.0))) / world.grid.resolution
    away = math.radians(az + 180.0)
    dx, dy_north = d_px * math.sin(away), d_px * math.cos(away)
    shifted = ndimage.shift(opacity, (-dy_north, dx), order=1, mode="constant", cval=0.0)
    shadow = np.clip(shifted * 1.3, 0, 1) * (opacity < 0.05)
    haze = np.zeros((h, w), np.float32)
    if rng.uniform() < 0.08:
        haze = np.clip(rng.uniform(0.3, 1.0) * (0.7 + 0.3 * smooth_noise(rng, (h, w), 40)), 0, 1)
    valid = np.ones((h, w), bool)
    if rng.uniform() < (0.08 if acq.sensor == "S2" else 0.05):  # swath edge crosses the window
        yy, xx = np.mgrid[0:h, 0:w]
        ang = rng.uniform(0, 2 * np.pi)
        proj = xx * math.cos(ang) + yy * math.sin(ang)
        valid = proj < np.quantile(proj, rng.uniform(0.4, 0.85))
    detect = smooth_noise(rng, (h, w), 2.5)
    return Sky(cc, opacity.astype(np.float32), shadow.astype(np.float32), haze.astype(np.float32),
               valid, detect, el, az)


def apply_sky(refl: np.ndarray, sky: Sky) -> np.ndarray:
    """Top-of-canopy reflectance as the sensor sees it through haze, shadow and cloud (7, H, W)."""
    r = refl + sky.haze[None] * _HAZE[:, None, None]
    r = r * (1 - _SHADOW_K[:, None, None] * sky.shadow[None])
    a = sky.opacity[None]
    return r * (1 - a) + _CLOUD[:, None, None] * a


def block_mean(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k blocks of the last two axes (shape must divide)."""
    *lead, h, w = a.shape
    return a.reshape(*lead, h // k, k, w // k, k).mean(axis=(-3, -1))


def to_landsat_grid(a: np.ndarray, world: World) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Area-average a 10 m world-grid array onto the Landsat 30 m grid (pixel edges at 15 m mod 30).

    Returns the array and the Landsat grid bounds.
    """
    minx, miny, maxx, maxy = world.grid.bounds
    lminx = math.ceil((minx - 15) / 30) * 30 + 15
    lmaxy = math.floor((maxy - 15) / 30) * 30 + 15
    lmaxx = math.floor((maxx - 15) / 30) * 30 + 15
    lminy = math.ceil((miny - 15) / 30) * 30 + 15
    up = np.repeat(np.repeat(a, 2, axis=-1), 2, axis=-2)  # 5 m
    c0, r0 = int(round((lminx - minx) / 5)), int(round((maxy - lmaxy) / 5))
    nw, nh = int(round((lmaxx - lminx) / 30)), int(round((lmaxy - lminy) / 30))
    sub = up[..., r0:r0 + nh * 6, c0:c0 + nw * 6]
    return block_mean(sub.astype(np.float32), 6), (float(lminx), float(lminy), float(lmaxx), float(lmaxy))


def _ndvi(r: np.ndarray) -> np.ndarray:
    return (r[3] - r[2]) / np.maximum(r[3] + r[2], 1e-6)


def scl_from(obs20: np.ndarray, surface20: dict, sky20: dict, rng: np.random.Generator) -> np.ndarray:
    """Sen2Cor-like scene classification at 20 m from the observed scene and the true sky.

    ``obs20``: observed reflectance (7, h, w); ``surface20``: ``water``, ``snow`` fractions;
    ``sky20``: ``opacity``, ``shadow``, ``haze``, ``valid``, ``detect``, all at 20 m.
    """
    op, sh, hz, det = sky20["opacity"], sky20["shadow"], sky20["haze"], sky20["detect"]
    scl = np.full(op.shape, SCL.NOT_VEGETATED, np.uint8)
    nd = _ndvi(obs20)
    scl[nd > 0.35] = SCL.VEGETATION
    scl[(obs20[3] < 0.05) & (surface20["water"] < 0.5)] = SCL.DARK_AREA
    scl[surface20["water"] >= 0.5] = SCL.WATER
    scl[(rng.uniform(size=op.shape) < 0.01)] = SCL.UNCLASSIFIED
    snow = surface20["snow"]
    scl[(snow > 0.45) | ((snow > 0.2) & (det > 0))] = SCL.SNOW
    scl[(hz > 0.6) & (det > 0.5)] = SCL.THIN_CIRRUS
    # shadows: strong cores mostly found, rims mostly missed
    scl[((sh > 0.35) & (det > -0.85)) | ((sh > 0.15) & (det > 0.25))] = SCL.CLOUD_SHADOW
    # clouds: thin edges are found only some of the time
    scl[(op > 0.12) & (det > -0.25)] = SCL.CLOUD_MEDIUM
    scl[op > 0.35] = SCL.CLOUD_MEDIUM
    scl[op > 0.65] = SCL.CLOUD_HIGH
    # commission: a few bright bare pixels taken for cloud
    bright = (obs20[2] > 0.12) & (op < 0.05) & (snow < 0.1)
    scl[bright & (rng.uniform(size=op.shape) < 0.004)] = SCL.CLOUD_MEDIUM
    scl[~sky20["valid"]] = SCL.NO_DATA
    return scl


def qa_pixel_from(obs30: np.ndarray, surface30: dict, sky30: dict) -> np.ndarray:
    """Landsat C2 QA_PIXEL (CFMask-like) at 30 m, with the confidence bit pairs set."""
    op, sh, hz, det = sky30["opacity"], sky30["shadow"], sky30["haze"], sky30["detect"]
    snow, water = surface30["snow"], surface30["water"]
    cloud = (op > 0.4) | ((op > 0.15) & (det > -0.2))
    dilated = ndimage.binary_dilation(cloud, iterations=3) & ~cloud
    shadow = ((sh > 0.3) & (det > -0.9)) | ((sh > 0.12) & (det > 0.3))
    snowm = (snow > 0.45) & ~cloud
    cirrus = (hz > 0.7) & (det > 0.6)
    conf = np.where(op > 0.6, 3, np.where(op > 0.2, 2, 1)).astype(np.uint16)
    q = np.zeros(op.shape, np.uint16)
    q |= (dilated.astype(np.uint16) << QA.DILATED_CLOUD)
    q |= (cirrus.astype(np.uint16) << QA.CIRRUS)
    q |= (cloud.astype(np.uint16) << QA.CLOUD)
    q |= ((shadow & ~cloud).astype(np.uint16) << QA.CLOUD_SHADOW)
    q |= (snowm.astype(np.uint16) << QA.SNOW)
    q |= ((~cloud & ~dilated).astype(np.uint16) << QA.CLEAR)
    q |= (((water >= 0.5) & ~cloud & ~snowm).astype(np.uint16) << QA.WATER)
    q |= conf << QA.CLOUD_CONF
    q |= np.where(shadow & ~cloud, 3, 1).astype(np.uint16) << QA.SHADOW_CONF
    q |= np.where(snowm, 3, 1).astype(np.uint16) << QA.SNOW_CONF
    q |= np.where(cirrus, 3, 1).astype(np.uint16) << QA.CIRRUS_CONF
    q[~sky30["valid"]] = 1 << QA.FILL
    return q


def msi_to_oli(refl: np.ndarray) -> np.ndarray:
    """Apply the HLS bandpass difference so Landsat sees OLI, not MSI, reflectance (6 bands)."""
    idx = {b: i for i, b in enumerate(BANDS)}
    return np.stack([refl[idx[b]] * s + o for b, (s, o) in HLS_MSI_TO_OLI.items()])
