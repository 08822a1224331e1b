"""The demo world: windows, acquisition calendar, and the events and distractors to inject.

Everything here is a pure function of ``(seed, size)``: the same arguments always give the same
scenario, so the archive and its truth are reproducible bit for bit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "Size",
    "SIZES",
    "WindowSpec",
    "WINDOWS",
    "Acquisition",
    "Scenario",
    "build_scenario",
    "rng_for",
]

Size = Literal["small", "default"]


@dataclass(frozen=True)
class SizeSpec:
    """How big an archive to make. ``small`` keeps tests to seconds."""

    window_px: int  #: window side in 10 m pixels
    baseline_years: tuple[int, ...]
    monitoring_year: int
    monitoring_start: str  #: MM-DD
    monitoring_end: str  #: MM-DD
    baseline_s2_step_days: int
    baseline_l_step_days: int
    s2_step_days: int
    l_step_days: int


SIZES: dict[str, SizeSpec] = {
    "default": SizeSpec(
        window_px=400, baseline_years=(2020, 2021, 2022, 2023, 2024, 2025), monitoring_year=2026,
        monitoring_start="04-01", monitoring_end="10-31",
        baseline_s2_step_days=20, baseline_l_step_days=32, s2_step_days=5, l_step_days=8,
    ),
    "small": SizeSpec(
        window_px=160, baseline_years=(2020, 2021, 2022, 2023, 2024, 2025), monitoring_year=2026,
        monitoring_start="04-01", monitoring_end="10-31",
        baseline_s2_step_days=20, baseline_l_step_days=32, s2_step_days=5, l_step_days=8,
    ),
}


@dataclass(frozen=True)
class WindowSpec:
    """A demo window: a few km inside one of the landscapes of ``aoi/landscapes.geojson``."""

    id: str
    landscape_id: str
    name: str
    kind: Literal["forest", "steppe", "wetland"]
    ecosystems: tuple[str, ...]
    lon: float
    lat: float
    mgrs: str  #: MGRS tile the window lies in (zone, band, square)
    wrs: str  #: Landsat WRS-2 path/row, PPPRRR
    snow_melt_doy: int  #: mean day of year the snow cover is gone
    snow_onset_doy: int  #: mean day of year a lasting snow cover returns


WINDOWS: tuple[WindowSpec, ...] = (
    WindowSpec("greater-khingan-demo", "greater-khingan", "Greater Khingan forests (demo window)", "forest",
               ("forest",), 122.32, 51.28, "51UVR", "122024", 112, 288),
    WindowSpec("hulunbuir-steppe-demo", "hulun-hulunbuir", "Hulunbuir steppe (demo window)", "steppe",
               ("grassland",), 118.86, 49.12, "50UQV", "125026", 100, 298),
    WindowSpec("zhalong-demo", "zhalong", "Zhalong wetland (demo window)", "wetland",
               ("wetland",), 124.24, 47.18, "51TXM", "120027", 92, 306),
)


@dataclass(frozen=True)
class Acquisition:
    """One overpass of one sensor over one window."""

    window_id: str
    sensor: Literal["S2", "L"]
    platform: str  #: sentinel-2b, landsat-9, ...
    datetime: dt.datetime  #: UTC
    index: int  #: position in the window's calendar (for seeding)

    @property
    def date(self) -> dt.date:
        return self.datetime.date()

    @property
    def doy(self) -> int:
        return self.datetime.timetuple().tm_yday


@dataclass
class Scenario:
    seed: int
    size: str
    spec: SizeSpec
    windows: tuple[WindowSpec, ...]
    acquisitions: dict[str, list[Acquisition]] = field(default_factory=dict)


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator seeded from ``seed`` and stable keys (never Python's salted ``hash``)."""
    h = hashlib.sha256(repr((seed,) + tuple(str(k) for k in keys)).encode()).digest()
    return np.random.default_rng(np.frombuffer(h[:16], dtype=np.uint32))


def _dates(start: dt.date, end: dt.date, step: int, phase: int) -> list[dt.date]:
    out, d = [], start + dt.timedelta(days=phase % step)
    while d <= end:
        out.append(d)
        d += dt.timedelta(days=step)
    return out


def _s2_platform(d: dt.date, k: int) -> str:
    # Sentinel-2C took over from 2A in January 2025; 2B keeps flying.
    if d < dt.date(2025, 1, 21):
        return "sentinel-2a" if k % 2 == 0 else "sentinel-2b"
    return "sentinel-2c" if k % 2 == 0 else "sentinel-2b"


def _landsat_platform(d: dt.date, k: int) -> str:
    if d < dt.date(2022, 1, 1):
        return "landsat-8"
    return "landsat-8" if k % 2 == 0 else "landsat-9"


def build_scenario(seed: int = 42, size: str = "default") -> Scenario:
    """The acquisition calendar of every window: sparse baseline seasons, then a dense season."""
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {sorted(SIZES)}")
    spec = SIZES[size]
    sc = Scenario(seed=seed, size=size, spec=spec, windows=WINDOWS)
    for w in WINDOWS:
        rng = rng_for(seed, "calendar", w.id)
        s2_phase, l_phase = int(rng.integers(0, 5)), int(rng.integers(0, 8))
        acqs: list[tuple[dt.date, str]] = []
        for y in spec.baseline_years:
            for d in _dates(dt.date(y, 4, 20), dt.date(y, 10, 20), spec.baseline_s2_step_days, s2_phase + y):
                acqs.append((d, "S2"))
            for d in _dates(dt.date(y, 4, 25), dt.date(y, 10, 20), spec.baseline_l_step_days, l_phase + 3 * y):
                acqs.append((d, "L"))
        y = spec.monitoring_year
        m0 = dt.date.fromisoformat(f"{y}-{spec.monitoring_start}")
        m1 = dt.date.fromisoformat(f"{y}-{spec.monitoring_end}")
        acqs += [(d, "S2") for d in _dates(m0, m1, spec.s2_step_days, s2_phase)]
        acqs += [(d, "L") for d in _dates(m0, m1, spec.l_step_days, l_phase)]
        acqs.sort()
        out = []
        # overpass times: Sentinel-2 ~10:30 local solar time, Landsat ~10:45; local noon ~ 12:00 - lon/15 h UTC
        utc_noon_h = 12.0 - w.lon / 15.0
        for i, (d, sensor) in enumerate(acqs):
            hours = utc_noon_h - (1.5 if sensor == "S2" else 1.25)
            t = dt.datetime.combine(d, dt.time(0), tzinfo=dt.timezone.utc) + dt.timedelta(
                hours=hours, seconds=int(rng.integers(0, 90)))
            plat = _s2_platform(d, d.toordinal() // spec.s2_step_days) if sensor == "S2" \
                else _landsat_platform(d, d.toordinal() // spec.l_step_days)
            out.append(Acquisition(w.id, sensor, plat, t, i))
        sc.acquisitions[w.id] = out
    return sc
