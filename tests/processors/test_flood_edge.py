"""A flood's edge is not a fire. Sentinel-2's B8A and SWIR bands are 20 m: a 20 m pixel straddling
the edge of a flood averages open water with the meadow beside it, so the 10 m pixels on either side
read NBR 0.1-0.15 lower than their baseline while MNDWI stays under -0.3, as a light burn's would
(a held-out default archive, seed 61, raised a 1 ha "burn scar" one pixel wide along a flooded field
this way). At 10 m the water shows: its reflectance falls from green to NIR (NDWI above 0), a
char's rises. The water and the pixels beside it are not fire-like."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr

from demo.physics import BANDS, SPECTRA
from processors.burn import water_at_10m
from processors.chain import forest_burn_layers
from processors.forest import CONFIRMED

FINE_20M = ("nir08", "swir16", "swir22")  # Sentinel-2's 20 m bands among BANDS
FLOOD = (pd.Timestamp("2026-07-19"), pd.Timestamp("2026-08-01"))
EDGE = 21  # the flood covers rows < 21: the 20 m pixel of rows 20-21 is half water, half meadow


def _green(t: pd.Timestamp) -> float:
    return 1 / (1 + np.exp(-(t.dayofyear - 160) / 8)) - 1 / (1 + np.exp(-(t.dayofyear - 260) / 10))


def _cover(t: pd.Timestamp, h: int, w: int) -> np.ndarray:
    """A crop field (rows < EDGE) beside a meadow, (band, y, x)."""
    g = _green(t)
    crop = SPECTRA["soil"] + (SPECTRA["crop_peak"] - SPECTRA["soil"]) * g
    meadow = SPECTRA["grass_dormant"] + (SPECTRA["grass_peak"] - SPECTRA["grass_dormant"]) * g
    rows = np.arange(h)[None, :, None] < EDGE
    return np.broadcast_to(np.where(rows, crop[:, None, None], meadow[:, None, None]), (len(BANDS), h, w)).copy()


def _scene(shape=(40, 40)):
    """A crop field beside a meadow seen by Sentinel-2 every 5 days, May to September of three
    baseline years and 2026; in 2026 a flood covers the field (rows < 21) from 19 July to 31 July. The
    20 m bands are the mean of each 2 x 2 block of 10 m pixels, as the sensor sees them, put back on
    the 10 m grid: rows 20 and 21 share theirs, the field's before the flood (NBR ~0.5) and the
    water's with the meadow's during it (~0.36, the meadow's own)."""
    rng = np.random.default_rng(3)
    times = pd.DatetimeIndex([d for y in (2023, 2024, 2025, 2026)
                              for d in pd.date_range(f"{y}-05-01", f"{y}-09-30", freq="5D")])
    h, w = shape
    data = np.empty((len(BANDS), len(times)) + shape, np.float32)
    for k, t in enumerate(times):
        r = _cover(t, h, w)
        if FLOOD[0] <= t < FLOOD[1]:
            r[:, :EDGE] = SPECTRA["water"][:, None, None]
        r = r + rng.normal(0, 0.003, r.shape)
        for b in FINE_20M:
            i = BANDS.index(b)
            blocks = r[i].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            r[i] = np.repeat(np.repeat(blocks, 2, axis=0), 2, axis=1)
        data[:, k] = r
    return xr.Dataset({b: (("time", "y", "x"), data[i]) for i, b in enumerate(BANDS)},
                      coords={"time": times, "y": 5280000 - (np.arange(h) + 0.5) * 10,
                              "x": 350000 + (np.arange(w) + 0.5) * 10,
                              "platform": ("time", np.full(len(times), "sentinel-2b"))}).rio.write_crs(32651)


def _burned(ds):
    lay = forest_burn_layers(ds, monitor_start="2026-04-01", mask_years=[2023, 2024, 2025], start_doy=152,
                             end_doy=243).compute()
    return lay["burn_status"].values == CONFIRMED


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_the_edge_of_a_flood_is_not_a_burn(backend):
    ds = _scene()
    if backend == "dask":
        ds = ds.chunk({"time": -1, "y": 20, "x": -1}).assign_coords(platform=("time", ds["platform"].values))
    assert not _burned(ds).any()


def test_without_the_10m_water_the_edge_reads_as_a_burn(monkeypatch):
    """The mutant: with the 10 m water rule off, the edge burns: the water's row of the straddling
    20 m pixel all along, the meadow's where noise takes its MNDWI under -0.3; nothing else."""
    import processors.chain as chain

    monkeypatch.setattr(chain, "water_at_10m", lambda green, nir: xr.zeros_like(green, dtype=bool))
    burned = _burned(_scene())
    assert burned[EDGE - 1].all() and burned[EDGE].any()
    assert not burned[:EDGE - 1].any() and not burned[EDGE + 1:].any()


def test_water_at_10m_marks_the_water_and_its_neighbours(backend):
    green = np.full((1, 6, 8), 0.07, np.float32)
    nir = np.full((1, 6, 8), 0.30, np.float32)
    nir[0, 2, 3] = 0.02  # one water pixel
    nir[0, 5, 7] = np.nan  # unobserved: not water
    mk = lambda a: xr.DataArray(a, dims=("time", "y", "x"))  # noqa: E731
    g, n = mk(green), mk(nir)
    if backend == "dask":
        g, n = g.chunk({"y": 3, "x": 4}), n.chunk({"y": 3, "x": 4})  # the water sits at a chunk corner
    got = water_at_10m(g, n).values[0]
    want = np.zeros((6, 8), bool)
    want[1:4, 2:5] = True
    np.testing.assert_array_equal(got, want)
