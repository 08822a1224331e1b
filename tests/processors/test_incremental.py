"""The nightly forest/burn chain (``processors.incremental``) equals the season-long chain
(``processors.chain.forest_burn_layers``) exactly, however the season is cut into nights.

The demo forest landscape (small archive) has clearings, a fire with a severity gradient, clouds
and both missions, so every branch of the state machines is exercised: probable, confirmed,
withdrawn, the fire trigger, severity at detection, the weak-evidence count and the 10 m looks
since a loss detection.
"""

from __future__ import annotations

import io

import dask
import numpy as np
import pandas as pd
import pytest

from processors.chain import ChainThresholds, forest_burn_layers
from processors.forest import CONFIRMED, WITHDRAWN
from processors.incremental import ForestBurnState, advance, observation_layers, prime, state_layers
from processors.seasons import season_windows

from .test_chain_accuracy import khingan_ds  # noqa: F401  (module fixture)

SEASON0 = "2026-04-01"
BASE = [2023, 2024, 2025]
#: tiles of the season's phenology reference smaller than the window (162 x 161 px), so several meet
TH = ChainThresholds(reference_tile_px=64)


@pytest.fixture(scope="module")
def season(khingan_ds):  # noqa: F811
    land, ds = khingan_ds
    with dask.config.set(scheduler="threads"):
        ds = ds.compute()
    ds = ds.assign_coords(time=ds.indexes["time"].floor("s"))  # the cube's precision
    t = pd.DatetimeIndex(ds["time"].values)
    keep = (t >= pd.Timestamp(SEASON0) - pd.Timedelta(days=60)) | t.year.isin(BASE)
    ds = ds.isel(time=np.nonzero(np.asarray(keep))[0])
    w = season_windows(land.shape.centroid.y)
    batch = forest_burn_layers(ds, monitor_start=SEASON0, mask_years=BASE, start_doy=w.growing_start_doy,
                               end_doy=w.growing_end_doy, thresholds=TH)
    return ds, batch.compute()


def _roundtrip(st: ForestBurnState) -> ForestBurnState:
    buf = io.BytesIO()
    np.savez_compressed(buf, **st.arrays)
    with np.load(io.BytesIO(buf.getvalue())) as z:
        return ForestBurnState({k: z[k] for k in st.arrays}, through=st.through, n_obs=st.n_obs)


def _nightly(ds, cuts, forest):
    t = pd.DatetimeIndex(ds["time"].values)
    season = np.asarray(t >= pd.Timestamp(SEASON0))
    base = np.nonzero(np.asarray(t.year.isin(BASE)))[0]
    mon = np.nonzero(season)[0]
    st = ForestBurnState.new((ds.sizes["y"], ds.sizes["x"]))
    prime(st, ds.isel(time=np.nonzero(~season)[0]), reference=forest, thresholds=TH)
    for part in np.split(mon, cuts):
        st = _roundtrip(st)  # saved and loaded between nights
        obs = observation_layers(ds.isel(time=np.concatenate([base, part])), monitor_start=SEASON0, thresholds=TH,
                                 reference=forest)
        advance(st, obs.compute(), TH)
    return st


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nightly_state_equals_the_season_long_chain(season, seed):
    ds, batch = season
    n = int((pd.DatetimeIndex(ds["time"].values) >= pd.Timestamp(SEASON0)).sum())
    rng = np.random.default_rng(seed)
    # nights of one, a few, or many observations
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, [n - 1, 12, 3][seed]), replace=False))
    st = _nightly(ds, cuts, batch["forest"])
    got = state_layers(st, batch["forest"], TH)
    assert st.n_obs == n
    for v in batch.data_vars:
        a, b = batch[v].values, got[v].values
        assert a.dtype == b.dtype, v
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fM"), (v, int((a != b).sum()))
    # the comparison is not vacuous: the season has confirmed clearings and burns, and withdrawals
    assert (batch["forest_status"].values == CONFIRMED).sum() > 50
    assert (batch["burn_status"].values == CONFIRMED).sum() > 500
    assert (batch["burn_status"].values == WITHDRAWN).sum() + (batch["forest_status"].values == WITHDRAWN).sum() > 0
    assert np.isfinite(batch["dnbr"].values).sum() > 500
    assert batch["forest_fine_normal"].values.sum() > 10  # confirmed pixels the 10 m looks since saw normal


def test_a_state_refuses_an_observation_it_has_passed(season):
    ds, _ = season
    t = pd.DatetimeIndex(ds["time"].values)
    mon = np.nonzero(np.asarray(t >= pd.Timestamp(SEASON0)))[0]
    base = np.nonzero(np.asarray(t.year.isin(BASE)))[0]
    st = ForestBurnState.new((ds.sizes["y"], ds.sizes["x"]))
    advance(st, observation_layers(ds.isel(time=np.concatenate([base, mon[3:5]])), monitor_start=SEASON0).compute())
    late = observation_layers(ds.isel(time=np.concatenate([base, mon[2:3]])), monitor_start=SEASON0).compute()
    with pytest.raises(ValueError, match="rebuild the state"):
        advance(st, late)
    assert st.n_obs == 2


def test_the_state_in_strips_equals_the_season_long_chain(season, tmp_path):
    """The nightly flow's storage of the state (``flows.pipeline.forest_burn_nightly``): a landscape
    too big for one state is advanced in strips of rows, each a file of its own, and assembled in
    memory-mapped layers. Two nights, and a run killed after its first strip, give the chain's layers."""
    from flows.pipeline import _STATE_PX_BYTES, forest_burn_nightly, state_strips
    from outputs.cube import CubeStore

    ds, batch = season
    h, w = ds.sizes["y"], ds.sizes["x"]
    strip = 64 * w * _STATE_PX_BYTES  # 64 rows a strip
    assert len(state_strips((h, w), strip, 64)) == 3
    store = CubeStore(tmp_path / "forest.zarr")
    t = pd.DatetimeIndex(ds["time"].values)
    mid = int(np.nonzero(np.asarray(t >= pd.Timestamp(SEASON0)))[0][5])
    kw = {"season0": pd.Timestamp(SEASON0).date(), "year": 2026, "base_years": BASE,
          "thresholds": TH, "forest": batch["forest"], "strip_bytes": strip,
          "strip_align": 64}
    forest_burn_nightly(store, ds.isel(time=slice(0, mid)), **kw)
    files = sorted((tmp_path / "forest.state").glob("forest-burn-2026-rows*.npz.zst"))
    assert len(files) == 3
    saved = files[0].read_bytes()
    forest_burn_nightly(store, ds, **kw)
    files[0].write_bytes(saved)  # as if the run was killed after its first strip: that strip is behind
    got, how = forest_burn_nightly(store, ds, **kw)
    assert "updated in 1 strip(s)" in how, how
    for v in batch.data_vars:
        a, b = batch[v].values, np.asarray(got[v].values)
        assert a.dtype == b.dtype, v
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fM"), (v, int((a != b).sum()))


def test_priming_leaves_out_hazy_forest_looks_as_the_season_chain_does():
    """The state's previous look before the season is the last clear one that is not haze over the
    forest (bright, not snow-like): as in ``forest_burn_layers``, a fire behind haze must still show
    its drop. Outside the reference cover, and without one, the hazy look counts as before."""
    import xarray as xr

    bands = ("blue", "green", "red", "nir", "nir08", "swir16", "swir22")
    forest_look = np.array([0.02, 0.045, 0.022, 0.33, 0.345, 0.16, 0.07], np.float32)
    thin_cloud = 0.6 * forest_look + 0.4 * np.array([0.5, 0.5, 0.5, 0.52, 0.52, 0.38, 0.26], np.float32)
    snowy = 0.6 * forest_look + 0.4 * np.array([0.85, 0.84, 0.82, 0.74, 0.72, 0.09, 0.07], np.float32)
    looks = np.stack([forest_look, thin_cloud, forest_look, snowy])  # (time, band)
    t = pd.to_datetime(["2026-03-01", "2026-03-06", "2026-03-11", "2026-03-16"])
    ds = xr.Dataset({b: (("time", "y", "x"), np.broadcast_to(looks[:, i, None, None], (4, 2, 2)).copy())
                     for i, b in enumerate(bands)}, coords={"time": t})
    ref = xr.DataArray(np.array([[True, True], [False, False]]), dims=("y", "x"))
    nbr = lambda r: (r[4] - r[6]) / (r[4] + r[6])  # noqa: E731
    # (looks primed, the last clear look's NBR over the forest, and outside it)
    for upto, in_forest, outside in ((2, forest_look, thin_cloud), (4, snowy, snowy)):
        st = ForestBurnState.new((2, 2))
        prime(st, ds.isel(time=slice(0, upto)), reference=ref)
        # the thin cloud is left out over the forest (the look before it stands); snow is not haze
        np.testing.assert_allclose(st.arrays["prev_nbr"][0], nbr(in_forest), rtol=1e-6)
        np.testing.assert_allclose(st.arrays["prev_nbr"][1], nbr(outside), rtol=1e-6)
        assert nbr(thin_cloud) < nbr(forest_look) - 0.1  # (the haze reads as a fire-sized drop of its own)
    st = ForestBurnState.new((2, 2))
    prime(st, ds.isel(time=slice(0, 2)))  # no reference: every look counts
    np.testing.assert_allclose(st.arrays["prev_nbr"], nbr(thin_cloud), rtol=1e-6)
