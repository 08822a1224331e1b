"""The season replayed night by night through the nightly state, for tests that check it gives the
season-long chain's layers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from processors.chain import ChainThresholds
from processors.incremental import ForestBurnState, advance, observation_layers, prime, state_layers


def nightly_layers(ds: xr.Dataset, forest: xr.DataArray, monitor_start: str,
                   thresholds: ChainThresholds = ChainThresholds()) -> xr.Dataset:
    """Prime the state with the looks before ``monitor_start``, feed it one look a night (each with
    the baseline years, the looks before the monitoring year), and return its layers."""
    ds = ds.compute()
    t = pd.DatetimeIndex(ds["time"].values)
    start = pd.Timestamp(monitor_start)
    season = np.asarray(t >= start)
    base = np.nonzero(np.asarray(t.year < start.year))[0]
    st = ForestBurnState.new(forest.shape)
    prime(st, ds.isel(time=np.nonzero(~season)[0]), reference=forest, thresholds=thresholds)
    for k in np.nonzero(season)[0]:
        obs = observation_layers(ds.isel(time=np.append(base, k)), monitor_start=monitor_start, reference=forest,
                                 thresholds=thresholds)
        advance(st, obs.compute(), thresholds)
    return state_layers(st, forest, thresholds)
