"""Physical model of the demo windows: land cover, spectra, phenology, snow, water and events.

``World`` holds the static layers of one window (built once, deterministically), and
:func:`surface_reflectance` gives the noise-free, cloud-free surface reflectance of the window on a
date: the *truth* every later stage is measured against. :mod:`demo.sky` adds the atmosphere.

Reflectances are Sentinel-2 MSI equivalents in [0, 1] for the canonical bands
``blue, green, red, nir (B08), nir08 (B8A), swir16, swir22``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from aoi.grid import Grid

from .scenario import Scenario, WindowSpec, rng_for

__all__ = [
    "BANDS",
    "LC",
    "LC_NAMES",
    "SPECTRA",
    "World",
    "Clearing",
    "build_world",
    "surface_reflectance",
    "smooth_noise",
]

BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "nir08", "swir16", "swir22")


class LC:
    """Land-cover codes of ``truth/<window>/landcover.tif``."""

    LARCH = 1
    BIRCH = 2
    GRASS = 3
    CROP = 4
    MARSH = 5
    WATER = 6
    BARE = 7


LC_NAMES = {LC.LARCH: "larch forest", LC.BIRCH: "birch forest", LC.GRASS: "grassland / meadow",
            LC.CROP: "cropland", LC.MARSH: "reed marsh (wetland basin)", LC.WATER: "permanent water",
            LC.BARE: "bare, road or settlement"}

_S = lambda *v: np.array(v, dtype=np.float32)  # noqa: E731
#: (peak-season, dormant) spectra per cover, MSI band order of ``BANDS``. Values from typical
#: Sentinel-2 L2A surface reflectance of these covers (USGS splib07 and field-plot ranges).
SPECTRA: dict[str, np.ndarray] = {
    "larch_peak": _S(0.020, 0.045, 0.022, 0.330, 0.345, 0.160, 0.070),
    "larch_dormant": _S(0.035, 0.045, 0.045, 0.150, 0.160, 0.140, 0.085),
    "birch_peak": _S(0.025, 0.055, 0.028, 0.380, 0.395, 0.190, 0.085),
    "birch_dormant": _S(0.040, 0.050, 0.055, 0.170, 0.180, 0.170, 0.110),
    "grass_peak": _S(0.035, 0.070, 0.052, 0.300, 0.310, 0.255, 0.148),
    "grass_dormant": _S(0.065, 0.095, 0.120, 0.210, 0.220, 0.310, 0.230),
    "crop_peak": _S(0.030, 0.070, 0.030, 0.420, 0.430, 0.210, 0.090),
    "soil": _S(0.080, 0.110, 0.145, 0.205, 0.215, 0.290, 0.230),
    "stubble": _S(0.070, 0.100, 0.125, 0.225, 0.235, 0.320, 0.245),
    "reed_peak": _S(0.030, 0.060, 0.040, 0.290, 0.300, 0.150, 0.070),
    "reed_dormant": _S(0.060, 0.085, 0.100, 0.190, 0.200, 0.230, 0.160),
    "water": _S(0.050, 0.062, 0.042, 0.022, 0.019, 0.010, 0.006),
    "bare": _S(0.090, 0.110, 0.130, 0.180, 0.185, 0.250, 0.210),
    "snow": _S(0.850, 0.840, 0.820, 0.740, 0.720, 0.090, 0.070),
    "char": _S(0.030, 0.035, 0.040, 0.075, 0.080, 0.140, 0.130),
    "clearing": _S(0.065, 0.085, 0.100, 0.220, 0.230, 0.300, 0.210),
}

#: phenology per cover: (start of season doy, end of season doy, green-up width, senescence width)
_PHENO = {
    "larch": (142, 262, 6.0, 7.0),
    "birch": (137, 260, 6.0, 7.0),
    "grass": (146, 255, 8.0, 9.0),
    "crop": (170, 258, 7.0, 6.0),
    "reed": (150, 262, 7.0, 8.0),
}


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise, rescaled to zero mean and unit variance (float32)."""
    z = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    z -= z.mean()
    return z / (z.std() + 1e-12)


def _double_logistic(doy: float, sos: np.ndarray | float, eos: np.ndarray | float, ks: float, ke: float):
    up = 1.0 / (1.0 + np.exp(-(doy - sos) / ks))
    down = 1.0 / (1.0 + np.exp(-(doy - eos) / ke))
    return np.clip(up - down, 0.0, 1.0)


def _bump(doy: float, centre: float, width: float) -> float:
    return float(np.exp(-0.5 * ((doy - centre) / width) ** 2))


@dataclass
class Clearing:
    """A forest clearing (logging) event."""

    id: str
    date: dt.date
    mask: np.ndarray  #: bool (H, W) on the world grid
    area_ha: float


@dataclass
class World:
    """Static layers of one demo window, on a 10 m grid padded around the window's landscape grid."""

    spec: WindowSpec
    seed: int
    grid: Grid  #: world grid (10 m), what the Sentinel-2 assets cover
    aoi_grid: Grid  #: the demo landscape's own grid (10 m), inside ``grid``
    landcover: np.ndarray  #: uint8 LC codes
    texture: np.ndarray  #: float32 multiplicative, ~1
    pheno_shift: np.ndarray  #: float32 days, per pixel
    years: tuple[int, ...]
    year_shift: dict[int, float]  #: phenology shift per year (days)
    year_vigour: dict[int, float]  #: interannual productivity factor (trend-free by construction)
    snow_shift: dict[int, tuple[float, float]]  #: (melt, onset) shift per year (days)
    transient_snow: list[tuple[dt.date, int, float]] = field(default_factory=list)  #: (date, days, depth 0-1)
    crop_fields: list[tuple[np.ndarray, dict[int, int]]] = field(default_factory=list)  #: (mask, harvest doy per year)
    # forest window
    clearings: list[Clearing] = field(default_factory=list)
    old_clearing: Clearing | None = None
    fire_date: dt.date | None = None
    fire_severity: np.ndarray | None = None  #: float32 0..1 fraction of canopy consumed
    # steppe window
    grass_trend: np.ndarray | None = None  #: float32 relative vigour change per year
    grass_base: np.ndarray | None = None  #: float32 peak-season productivity (1 = lush meadow)
    trend_year0: int = 2020
    # wetland window
    elevation: np.ndarray | None = None  #: float32, the basin floor (lower floods first)
    water_fraction: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    drying: tuple[dt.date, dt.date, float] | None = None  #: (start, full, factor)
    flood_field: np.ndarray | None = None
    flood_window: tuple[dt.date, dt.date] | None = None
    wetland_zone: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape


# ------------------------------------------------------------------------------------- layouts
def _blob(shape, cy, cx, target_px, rng, rough=0.25, allowed=None) -> np.ndarray:
    """An irregular patch of about ``target_px`` pixels around (cy, cx), inside ``allowed``."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = np.arctan2(yy - cy, xx - cx)
    k = rng.normal(0, rough, 4)
    ph = rng.uniform(0, 2 * np.pi, 4)
    wobble = 1 + sum(k[i] * np.cos((i + 2) * ang + ph[i]) for i in range(4)) / 2
    d = np.hypot(yy - cy, xx - cx) / np.clip(wobble, 0.5, 1.6)
    r = np.sqrt(target_px / np.pi)
    for _ in range(6):
        m = d <= r
        if allowed is not None:
            m &= allowed
        n = int(m.sum())
        if n == 0:
            r *= 1.5
            continue
        if abs(n - target_px) / target_px < 0.03:
            break
        r *= np.sqrt(target_px / n)
    # never smaller than asked: an event sold as 0.5 ha must be at least 0.5 ha
    for _ in range(50):
        m = d <= r
        if allowed is not None:
            m &= allowed
        if m.sum() >= target_px:
            break
        r *= 1.01
    return m


def _rect(shape, y0, x0, hgt, wid) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[max(0, y0):y0 + hgt, max(0, x0):x0 + wid] = True
    return m


def _trend_free_factors(rng, years, sd) -> dict[int, float]:
    """Interannual factors with no monotonic trend (|Kendall tau| <= 0.2), as normal variability."""
    from scipy.stats import kendalltau

    for _ in range(1000):
        v = 1 + rng.normal(0, sd, len(years))
        tau = kendalltau(np.arange(len(years)), v).statistic
        if abs(tau) <= 0.2:
            return {y: float(x) for y, x in zip(years, v)}
    raise RuntimeError("could not draw trend-free interannual factors")  # pragma: no cover


def build_world(scenario: Scenario, spec: WindowSpec, aoi_grid: Grid) -> World:
    """Static layers of one window. Deterministic in ``(scenario.seed, spec.id, size)``."""
    seed = scenario.seed
    rng = rng_for(seed, "world", spec.id, scenario.size)
    margin = 120.0  # m around the landscape grid, like a tile that extends past the AOI
    b = aoi_grid.bounds
    wb = (np.floor((b[0] - margin) / 60) * 60, np.floor((b[1] - margin) / 60) * 60,
          np.ceil((b[2] + margin) / 60) * 60, np.ceil((b[3] + margin) / 60) * 60)
    grid = Grid(epsg=aoi_grid.epsg, resolution=10.0, bounds=tuple(float(v) for v in wb))
    shape = grid.shape
    h, w = shape
    years = tuple(scenario.spec.baseline_years) + (scenario.spec.monitoring_year,)
    my = scenario.spec.monitoring_year

    texture = (1 + 0.05 * smooth_noise(rng, shape, 1.5) + 0.02 * rng.standard_normal(shape)).astype(np.float32)
    pheno_shift = (4.0 * smooth_noise(rng, shape, 12)).astype(np.float32)
    vig_sd = {"forest": 0.03, "steppe": 0.05, "wetland": 0.04}[spec.kind]
    world = World(
        spec=spec, seed=seed, grid=grid, aoi_grid=aoi_grid,
        landcover=np.zeros(shape, np.uint8), texture=texture, pheno_shift=pheno_shift, years=years,
        year_shift={y: float(rng.normal(0, 5)) for y in years},
        year_vigour=_trend_free_factors(rng, years, vig_sd),
        snow_shift={y: (float(rng.normal(0, 6)), float(rng.normal(0, 6))) for y in years},
    )
    lc = world.landcover
    # lasting-snow season edges are seasonal; these are short snowfalls on green-up / autumn days
    world.transient_snow = [(dt.date(my, 5, 3 + int(rng.integers(0, 5))), 4, 0.5),
                            (dt.date(my, 10, 6 + int(rng.integers(0, 5))), 5, 0.7)]

    def harvest_days():
        return {y: int(rng.integers(252, 275)) for y in years}

    if spec.kind == "forest":
        lc[:] = LC.LARCH
        lc[smooth_noise(rng, shape, 15) > 0.85] = LC.BIRCH
        # a valley with a meadow, a stream, a road and two fields
        yy, xx = np.mgrid[0:h, 0:w]
        centre = h * 0.72 + 0.06 * h * np.sin(xx / w * 2 * np.pi * 1.3 + rng.uniform(0, 6))
        dist = np.abs(yy - centre)
        lc[dist < 0.09 * h] = LC.GRASS
        lc[dist < 1.2] = LC.WATER
        lc[np.abs(yy - (centre - 0.085 * h)) < 0.7] = LC.BARE
        for k, x0 in enumerate((int(0.12 * w), int(0.55 * w))):
            fy = int(np.interp(x0, np.arange(w), centre[0])) + 3
            f = _rect(shape, fy, x0, int(0.06 * h), int(0.16 * w)) & (lc == LC.GRASS)
            lc[f] = LC.CROP
            world.crop_fields.append((f, harvest_days()))
        forest = (lc == LC.LARCH) | (lc == LC.BIRCH)
        # events lie wholly inside the landscape's own grid (not in the tile margin around it)
        c0 = int(round((aoi_grid.bounds[0] - grid.bounds[0]) / 10))
        r0 = int(round((grid.bounds[3] - aoi_grid.bounds[3]) / 10))
        inside = np.zeros(shape, bool)
        inside[r0 + 8:r0 + aoi_grid.height - 8, c0 + 8:c0 + aoi_grid.width - 8] = True
        inner = ndimage.binary_erosion(forest & inside, iterations=3)
        taken = np.zeros(shape, bool)

        def place(target_px, rough=0.25):
            for _ in range(2000):
                cy, cx = rng.integers(10, h - 10), rng.integers(10, w - 10)
                if not inner[cy, cx]:
                    continue
                m = _blob(shape, cy, cx, target_px, rng, rough, allowed=inner)
                if m.sum() < 0.9 * target_px or (ndimage.binary_dilation(m, iterations=6) & taken).any():
                    continue
                taken[:] = taken | ndimage.binary_dilation(m, iterations=2)
                return m
            raise RuntimeError(f"could not place a {target_px}-px patch in {spec.id}")

        # the fire: severity falls from the core to the edge, with patchiness
        fire_ha = 45.0 if scenario.size == "default" else 12.0
        fm = place(int(fire_ha * 100), rough=0.35)
        cy, cx = np.argwhere(fm).mean(axis=0)
        r = np.sqrt(fm.sum() / np.pi)
        d = np.hypot(*(np.mgrid[0:h, 0:w] - np.array([cy, cx])[:, None, None])) / r
        sev = np.clip(1.15 - d ** 1.6 + 0.18 * smooth_noise(rng, shape, 3), 0, 1) * fm
        world.fire_severity = sev.astype(np.float32)
        world.fire_date = dt.date(my, 6, 18) + dt.timedelta(days=int(rng.integers(0, 8)))

        sizes = [0.5, 0.8, 1.2, 2.0, 3.5, 6.0] if scenario.size == "default" else [0.5, 1.0, 2.5]
        months = [(5, 22), (6, 10), (7, 6), (7, 28), (8, 18), (9, 8)]
        order = rng.permutation(len(sizes))
        for k, i in enumerate(order):
            m = place(int(round(sizes[i] * 100)))
            mo, da = months[k * len(months) // len(sizes)]
            date = dt.date(my, mo, da) + dt.timedelta(days=int(rng.integers(0, 6)))
            world.clearings.append(Clearing(f"{spec.id}-clearing-{k + 1}", date, m, float(m.sum()) / 100))
        m = place(200)
        world.old_clearing = Clearing(f"{spec.id}-old-clearing", dt.date(2023, 7, 15), m, float(m.sum()) / 100)

    elif spec.kind == "steppe":
        lc[:] = LC.GRASS
        # fields (some harvested every year: a distractor) and a winter camp with overgrazing around it
        for k in range(3):
            y0, x0 = int(rng.integers(5, h // 3)), int(rng.integers(5, w - w // 4))
            f = _rect(shape, y0 + k * h // 3, x0, int(0.08 * h), int(0.2 * w))
            lc[f] = LC.CROP
            world.crop_fields.append((f, harvest_days()))
        cy, cx = int(0.55 * h), int(0.4 * w)
        camp = _blob(shape, cy, cx, 40, rng, 0.2)
        lc[camp] = LC.BARE
        lc[(np.hypot(*(np.mgrid[0:h, 0:w] - np.array([int(0.15 * h), int(0.85 * w)])[:, None, None])) < 0.05 * h)] = LC.WATER
        yy, xx = np.mgrid[0:h, 0:w]
        d = np.hypot(yy - cy, xx - cx) / (0.22 * h)
        wob = 1 + 0.15 * smooth_noise(rng, shape, 10)
        degrade = -0.05 * np.clip(1.3 - (d * wob) ** 2, 0, 1)  # vigour loss per year near the camp
        ey, ex = int(0.25 * h), int(0.15 * w)
        fence = _rect(shape, ey, ex, int(0.18 * h), int(0.22 * w))
        improve = 0.035 * fence
        trend = np.where(lc == LC.GRASS, degrade + improve, 0.0).astype(np.float32)
        world.grass_trend = trend
        # typical steppe is below a lush meadow's peak; the fenced patch starts from a degraded state
        world.grass_base = (0.82 + 0.06 * smooth_noise(rng, shape, 25) - 0.17 * fence).astype(np.float32)
        world.trend_year0 = years[0]

    else:  # wetland
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cy, cx = 0.48 * h, 0.45 * w
        bowl = np.hypot((yy - cy) / (0.42 * h), (xx - cx) / (0.5 * w))
        elev = bowl + 0.12 * smooth_noise(rng, (h, w), 20) + 0.03 * smooth_noise(rng, (h, w), 4)
        world.elevation = elev.astype(np.float32)
        zone = elev < np.quantile(elev, 0.45)
        world.wetland_zone = zone
        lc[:] = LC.GRASS
        lc[zone] = LC.MARSH
        lc[np.abs(xx - 0.9 * w) < 0.6] = LC.BARE  # a dike road
        field_y = int(0.82 * h)
        for k, x0 in enumerate((int(0.05 * w), int(0.55 * w))):
            f = _rect(shape, field_y, x0, int(0.12 * h), int(0.25 * w)) & ~zone
            lc[f] = LC.CROP
            world.crop_fields.append((f, harvest_days()))
        world.flood_field = world.crop_fields[0][0]
        fs = dt.date(my, 7, 18) + dt.timedelta(days=int(rng.integers(0, 6)))
        world.flood_window = (fs, fs + dt.timedelta(days=12))
        # fraction of the window under open water: (spring, June low, August high, autumn)
        for y in years:
            f = 1 + rng.normal(0, 0.06)
            wet_year = 1.25 if y == years[1] else 1.0  # one flood year in the baseline
            world.water_fraction[y] = (0.22 * f, 0.17 * f, 0.26 * f * wet_year, 0.19 * f)
        world.drying = (dt.date(my, 6, 1), dt.date(my, 7, 10), 0.5)
    return world


# ------------------------------------------------------------------------------------- truth
def _mix(a: np.ndarray, b: np.ndarray, f) -> np.ndarray:
    """``(1 - f) * a + f * b`` broadcast over (band, y, x); ``a``/``b`` are (band,) or (band, y, x)."""
    a = a if a.ndim == 3 else a[:, None, None]
    b = b if b.ndim == 3 else b[:, None, None]
    return a + (b - a) * f


def greenness(world: World, kind: str, date: dt.date) -> np.ndarray:
    """Phenological greenness (0 dormant .. 1 peak) of a cover on a date, per pixel."""
    sos, eos, ks, ke = _PHENO[kind]
    doy = date.timetuple().tm_yday
    lat_shift = 2.5 * (world.spec.lat - 47.0)
    shift = world.year_shift.get(date.year, 0.0) + lat_shift + world.pheno_shift
    return _double_logistic(doy, sos + shift, eos + shift * 0.5, ks, ke).astype(np.float32)


def snow_fraction(world: World, date: dt.date) -> float:
    """Fraction of open ground under snow on a date (lasting snow season + transient snowfalls)."""
    doy = date.timetuple().tm_yday
    ms, os_ = world.snow_shift.get(date.year, (0.0, 0.0))
    melt, onset = world.spec.snow_melt_doy + ms, world.spec.snow_onset_doy + os_
    s = max(np.clip((melt - doy) / 10.0, 0, 1), np.clip((doy - onset) / 12.0, 0, 1))
    for d0, days, depth in world.transient_snow:
        age = (date - d0).days
        if 0 <= age < days:
            s = max(s, depth * (1 - age / days))
    return float(s)


def water_fraction_target(world: World, date: dt.date) -> float:
    """Fraction of the window under open water on a date (wetland window)."""
    sp, lo, hi, au = world.water_fraction.get(date.year, world.water_fraction[world.years[0]])
    doy = date.timetuple().tm_yday
    base = au + (sp - au) * _bump(doy, 130, 22) + (hi - au) * _bump(doy, 225, 24) - (au - lo) * _bump(doy, 170, 12)
    if world.drying and date.year == world.drying[0].year and date >= world.drying[0]:
        d0, d1, factor = world.drying
        ramp = min(1.0, (date - d0).days / max(1, (d1 - d0).days))
        base *= 1 - (1 - factor) * ramp
    return float(base)


def water_mask(world: World, date: dt.date) -> np.ndarray:
    """Open water on a date: the basin floods from its lowest point; plus permanent water and floods."""
    m = world.landcover == LC.WATER
    if world.elevation is not None:
        level = np.quantile(world.elevation, water_fraction_target(world, date))
        m = m | ((world.elevation < level) & world.wetland_zone)
        if world.flood_window and world.flood_window[0] <= date < world.flood_window[1]:
            m = m | world.flood_field
    return m


def surface_reflectance(world: World, date: dt.date) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Noise-free, cloud-free surface reflectance of the window on ``date``.

    Returns
    -------
    refl : ndarray, float32, (7, H, W)
        MSI-equivalent surface reflectance, band order :data:`BANDS`, in [0, 1].
    aux : dict
        ``water`` (bool), ``snow`` (float fraction), ``burned`` (float severity in effect),
        ``cleared`` (bool), on the world grid.
    """
    lc = world.landcover
    h, w = lc.shape
    y = date.year
    vig = world.year_vigour.get(y, 1.0)
    out = np.empty((len(BANDS), h, w), np.float32)

    def put(mask, spec):
        if mask.any():
            out[:, mask] = spec[:, mask] if spec.ndim == 3 else spec[:, None]

    g = {k: greenness(world, k, date) for k in _PHENO}
    for code, kind in ((LC.LARCH, "larch"), (LC.BIRCH, "birch")):
        put(lc == code, _mix(SPECTRA[f"{kind}_dormant"], SPECTRA[f"{kind}_peak"], g[kind] * min(vig, 1.05)))
    grass_amp = np.full((h, w), vig, np.float32)
    if world.grass_base is not None:
        grass_amp = grass_amp * world.grass_base
    if world.grass_trend is not None:
        grass_amp = grass_amp * np.clip(1 + world.grass_trend * (y - world.trend_year0), 0.2, 1.6)
    put(lc == LC.GRASS, _mix(SPECTRA["grass_dormant"], SPECTRA["grass_peak"], np.clip(g["grass"] * grass_amp, 0, 1)))
    put(lc == LC.MARSH, _mix(SPECTRA["reed_dormant"], SPECTRA["reed_peak"], g["reed"] * vig))
    put(lc == LC.WATER, SPECTRA["water"])
    put(lc == LC.BARE, SPECTRA["bare"])
    doy = date.timetuple().tm_yday
    for fmask, harvest in world.crop_fields:
        if doy >= harvest.get(y, 265):
            put(fmask, SPECTRA["stubble"])
        else:
            put(fmask, _mix(SPECTRA["soil"], SPECTRA["crop_peak"], g["crop"] * vig))

    cleared = np.zeros((h, w), bool)
    burned = np.zeros((h, w), np.float32)
    regrow = SPECTRA["grass_dormant"][:, None, None] + (SPECTRA["grass_peak"] - SPECTRA["grass_dormant"])[:, None, None] * g["grass"]
    oc = world.old_clearing
    if oc is not None and date >= oc.date:
        years_since = (date - oc.date).days / 365.25
        shrub = min(0.75, 0.25 * years_since)  # shrubs and birch saplings return
        out[:, oc.mask] = _mix(SPECTRA["clearing"], regrow, shrub)[:, oc.mask]
        cleared |= oc.mask
    for c in world.clearings:
        if date >= c.date:
            herbs = min(0.3, (date - c.date).days / 200.0)
            out[:, c.mask] = _mix(SPECTRA["clearing"], regrow, herbs)[:, c.mask]
            cleared |= c.mask
    if world.fire_severity is not None and world.fire_date is not None and date >= world.fire_date:
        days = (date - world.fire_date).days
        sev = world.fire_severity
        fm = sev > 0
        recovery = 0.45 * (1 - np.exp(-max(0, days - 10) / 45.0))  # herbs and resprouts after ~10 days
        post = _mix(SPECTRA["char"], regrow, recovery)
        out[:, fm] = _mix(out, post, sev)[:, fm]
        burned = sev

    water = water_mask(world, date)
    if water.any():
        emergent = np.zeros((h, w), np.float32)
        if world.elevation is not None:
            # reeds emerge from the shallow fringe only; open water further in is clean
            depth = np.quantile(world.elevation, water_fraction_target(world, date)) - world.elevation
            emergent = 0.25 * g["reed"] * np.clip(1 - depth / 0.04, 0, 1) * (lc == LC.MARSH)
        out[:, water] = _mix(SPECTRA["water"], SPECTRA["reed_peak"], emergent)[:, water]

    out *= world.texture
    s = snow_fraction(world, date)
    snow = np.zeros((h, w), np.float32)
    if s > 0:
        forest = (lc == LC.LARCH) | (lc == LC.BIRCH)
        snow = np.where(forest & ~cleared, 0.45 * s, s).astype(np.float32)
        out = _mix(out, SPECTRA["snow"], snow)
    np.clip(out, 0.0, 1.0, out=out)
    return out, {"water": water & (snow < 0.5), "snow": snow, "burned": burned, "cleared": cleared}
