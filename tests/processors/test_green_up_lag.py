"""A late green-up judged against the season's course: weak evidence, forest loss and fire alike.

In a spring ten days late every forest pixel sits below its same-season baseline for a few looks,
by as much as half the loss thresholds (weak evidence) or a low-severity burn. A cold hollow, where
the snow lay longer this year, lags the forest around it by another week. The forest's own course,
read from the undisturbed forest of the tile, is taken off before any threshold: the clearing keeps
its own pixels, and the hollow, whose NBR is back at the forest's within a month, is not a
burn. A real low-severity fire beside it, with herbs regrowing after it, stays a burn scar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from processors.chain import ChainThresholds, forest_burn_alerts, forest_burn_layers
from processors.forest import CONFIRMED

from .nightly import nightly_layers
from .test_burn_phenology import BANDS, CHAR, DORMANT, PEAK
from .test_clearing_edges import HERBS, _dataset

CLEARED = np.array([0.060, 0.080, 0.095, 0.200, 0.210, 0.260, 0.190], np.float32)  # soil and slash
LATE = 14  # days
HOLLOW_LAG = 10  # days
CLOUD = (pd.Timestamp("2026-05-28"), pd.Timestamp("2026-06-08"))  # over the hollow
CLEARING_DAY = pd.Timestamp("2026-08-20")
FIRE_DAY = pd.Timestamp("2026-06-24")


def _veg(t: pd.Timestamp, lag: np.ndarray) -> np.ndarray:
    """Larch on day ``t`` (bands, y, x): green-up centred on day 150 in the baseline years, 10 days
    late in 2026, and ``lag`` days later still where given (2026 only)."""
    centre = 150 + (LATE + lag if t.year == 2026 else 0 * lag)
    g = 1 / (1 + np.exp(-(t.dayofyear - centre) / 6))
    return DORMANT[:, None, None] + (PEAK - DORMANT)[:, None, None] * g[None]


def _scene(shape=(64, 64)):
    """Larch forest, a Sentinel-2 look every 5 days from April to September of three baseline years
    and 2026; a 12 x 16 px cold hollow greening up 8 days after the rest in 2026, a 10 x 10 px
    clearing on 20 August 2026 and a 12 x 12 px fire on 24 June 2026, low-severity but for its core, its herbs
    regrowing (up to 45% of the way back, a month and a half's time constant)."""
    rng = np.random.default_rng(11)
    times = pd.DatetimeIndex([d for y in (2023, 2024, 2025, 2026)
                              for d in pd.date_range(f"{y}-04-01", f"{y}-09-30", freq="5D")])
    hollow = np.zeros(shape, bool)
    hollow[28:40, 36:52] = True  # above the fire, touching it
    cut = np.zeros(shape, bool)
    cut[24:34, 30:40] = True  # over a corner of the hollow
    sev = np.zeros(shape, np.float32)
    sev[40:52, 40:52] = 0.35  # a low-severity fringe (dNBR about 0.2) ...
    sev[43:49, 43:49] = 0.9  # ... round a crown fire's core
    fire = sev > 0
    lag = np.where(hollow, HOLLOW_LAG, 0.0)
    data = np.empty((len(BANDS), len(times)) + shape, np.float32)
    for k, t in enumerate(times):
        r = _veg(t, lag)
        if t >= FIRE_DAY:
            days = (t - FIRE_DAY).days
            back = 0.45 * (1 - np.exp(-max(0, days - 10) / 45.0))
            post = CHAR * (1 - back) + HERBS * back
            r = r * (1 - sev) + post[:, None, None] * sev
        if t >= CLEARING_DAY:
            r = np.where(cut, CLEARED[:, None, None], r)
        data[:, k] = r + rng.normal(0, 0.003, (len(BANDS),) + shape)
        if CLOUD[0] <= t <= CLOUD[1]:
            data[:, k][:, hollow] = np.nan
    return _dataset(data, times, np.full(len(times), "sentinel-2a")), hollow, cut, fire


def _layers(ds, thresholds=ChainThresholds()):
    return forest_burn_layers(ds, monitor_start="2026-04-01", mask_years=[2023, 2024, 2025], start_doy=152,
                              end_doy=243, thresholds=thresholds)


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_a_late_green_up_neither_grows_a_clearing_nor_burns(backend):
    ds, hollow, cut, fire = _scene()
    if backend == "dask":
        ds = ds.chunk({"time": 20, "y": 32, "x": 32}).assign_coords(platform=("time", ds["platform"].values))
    lay = _layers(ds).compute()
    burned = lay["burn_status"].values == CONFIRMED
    assert not (burned & hollow).any()
    assert burned[fire].all() and not (burned & ~fire).any()
    a = forest_burn_alerts(lay, landscape_id="x")
    loss, scar = a.query("kind == 'forest_loss'"), a.query("kind == 'burn_scar'")
    # the clearing, and a pixel or two of the noise's weak evidence at its edge
    assert len(loss) == 1 and cut.sum() <= loss["n_pixels"].iloc[0] <= 1.05 * cut.sum()
    assert len(scar) == 1 and scar["n_pixels"].iloc[0] == fire.sum()


def test_against_the_baseline_alone_the_green_up_grows_the_clearing():
    """The same scene with the season's course unread (no tile has enough reference pixels): the
    forest's weak evidence of the green-up joins the clearing, which then covers the forest."""
    ds, _, cut, _ = _scene()
    lay = _layers(ds, ChainThresholds(reference_min_px=10**6)).compute()
    a = forest_burn_alerts(lay, landscape_id="x").query("kind == 'forest_loss'")
    assert a["n_pixels"].sum() > 10 * cut.sum()


def test_without_the_recovery_rule_the_hollow_burns():
    """Clouded over while its lag grew, the hollow shows a sharp drop against the forest's course
    (0.12 NBR) and stays 0.1 below it for three looks: a fire's trigger and confirmation, two weeks
    before the fire beside it. Its NBR is back at the forest's within a month, which char never
    is. With the rule off (a window that never opens), half the hollow is a burn, and joins the
    fire's scar."""
    ds, hollow, _, fire = _scene()
    lay = _layers(ds, ChainThresholds(burn_recover_after_days=1000.0)).compute()
    assert ((lay["burn_status"].values == CONFIRMED) & hollow).sum() >= 0.3 * hollow.sum()
    scar = forest_burn_alerts(lay, landscape_id="x").query("kind == 'burn_scar'")
    assert scar["n_pixels"].sum() > fire.sum() + 0.3 * hollow.sum()


def test_the_nightly_state_agrees():
    ds, *_ = _scene()
    lay = _layers(ds).compute()
    got = nightly_layers(ds, lay["forest"], "2026-04-01")
    for v in ("burn_status", "forest_status", "forest_weak", "dnbr"):
        np.testing.assert_array_equal(got[v].values, lay[v].values)
