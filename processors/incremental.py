"""The forest-loss and burn-scar chain, night by night: the same results as
:func:`processors.chain.forest_burn_layers`, from a per-pixel state and the new observations only.

DIST-ALERT works this way: a night's cost depends on the scenes that arrived, not on how long the
season has run. The season-long chain needs, per pixel, only

- the previous clear NBR (and when it was seen), its deviation from the expected NBR, and the
  visible brightness (the abrupt-drop trigger of a fire);
- the two state machines of :func:`processors.forest.status_step` (burn scar and forest loss);
- the last clear broad-NIR NBR of the season and the expected NBR at it, and both at the pre- and
  post-fire looks of the current burn detection (severity);
- the count of weak-evidence observations (the hysteresis of confirmed clearings);
- the clear 10-20 m looks since the current loss detection, and the anomalous ones among them;
- the clear 10-20 m looks within ``within_days`` of the current burn detection, and the fire-like
  ones among them;
- the clear looks from ``burn_recover_after_days`` to ``within_days`` after it, and those whose NBR
  is still below the expected NBR (a burn that recovered within weeks was a lagging green-up).

Each new observation needs its same-season anomaly, which reads the baseline years only. So
:func:`processors.chain.observation_layers` computes the stateless per-observation layers (lazy, xarray),
:func:`advance` feeds them to the state (NumPy, in time order), and :func:`state_layers` turns the
state into the chain's output layers. Pixels outside the forest mask are masked at the
end: the state machines are per pixel, so masking a whole series or its final status is the same.

Feeding observations out of order is an error; a caller that finds an observation older than the
state (a late scene) rebuilds the state from the start of the season.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from .burn import phenology_corrected, severity_classes
from .chain import FINE_NORMAL_ATTRS, ChainThresholds, burn_withdrawn, hazy, observation_layers
from .forest import CONFIRMED, WITHDRAWN, seconds_to_time, status_step, time_axes
from .indices import nbr

__all__ = ["ForestBurnState", "observation_layers", "prime", "advance", "state_layers", "STATE_DTYPES"]

#: per-pixel state arrays and their dtypes (the dtypes of the season-long chain's own intermediates)
STATE_DTYPES: dict[str, str] = {
    "prev_nbr": "float64", "prev_nbr_time": "float64", "prev_dev": "float64", "prev_visible": "float64", "prev_nbr_broad": "float32",
    "prev_expected": "float32", "burn_pre_expected": "float32", "burn_post_expected": "float32",
    "burn_status": "int8", "burn_first": "float64", "burn_cand": "float64", "burn_seen": "int16",
    "burn_hits": "int16", "burn_pre": "float32", "burn_post": "float32", "burn_post_fine": "int8",
    "forest_status": "int8", "forest_first": "float64", "forest_cand": "float64", "forest_seen": "int16",
    "forest_hits": "int16", "weak_count": "int16", "forest_fine_seen": "int16", "forest_fine_hits": "int16",
    "burn_fine_seen": "int16", "burn_fine_hits": "int16", "burn_late_seen": "int16", "burn_late_hits": "int16",
}


@dataclass
class ForestBurnState:
    """Per-pixel state of the chain after the observations up to ``through`` (seconds since 1970)."""

    arrays: dict[str, np.ndarray]
    through: float | None = None  #: time of the last observation fed (seconds since 1970)
    n_obs: int = 0  #: observations fed since the start of the season

    @classmethod
    def new(cls, shape: tuple[int, int]) -> "ForestBurnState":
        arrays = {}
        for name, dtype in STATE_DTYPES.items():
            fill = np.nan if dtype.startswith("float") else 0
            arrays[name] = np.full(shape, fill, dtype=dtype)
        return cls(arrays)

    def machine(self, prefix: str) -> dict[str, np.ndarray]:
        return {k: self.arrays[f"{prefix}_{k}"] for k in ("status", "first", "cand", "seen", "hits")}

    def store_machine(self, prefix: str, st: dict[str, np.ndarray]) -> None:
        for k, v in st.items():
            self.arrays[f"{prefix}_{k}"] = v.astype(STATE_DTYPES[f"{prefix}_{k}"])


def prime(state: ForestBurnState, before: xr.Dataset, *, reference: xr.DataArray | None = None,
          thresholds: ChainThresholds = ChainThresholds()) -> None:
    """Start a season: the previous clear NBR and visible brightness from the observations before it
    (``before``: the baseline years and the weeks before the season, with the reflectance bands),
    leaving out the hazy looks of the ``reference`` cover, as :func:`processors.chain.forest_burn_layers`
    does."""
    if before.sizes.get("time", 0) == 0:
        return
    nb = nbr(before["nir08"], before["swir22"])
    vis = (before["blue"] + before["green"] + before["red"]) / 3
    if reference is not None:
        clean = ~hazy(before, reference, thresholds)
        nb, vis = nb.where(clean), vis.where(clean)
    nb, vis = nb.values, vis.values
    _, secs = time_axes(before["time"].values)
    a = state.arrays
    for k in range(nb.shape[0]):
        seen = np.isfinite(nb[k])
        a["prev_nbr"] = np.where(seen, nb[k], a["prev_nbr"])
        a["prev_nbr_time"] = np.where(seen, secs[k], a["prev_nbr_time"])
        a["prev_visible"] = np.where(np.isfinite(vis[k]), vis[k], a["prev_visible"])
    for name in ("prev_nbr", "prev_nbr_time", "prev_visible"):
        a[name] = a[name].astype(STATE_DTYPES[name])


def advance(state: ForestBurnState, obs: xr.Dataset, thresholds: ChainThresholds = ChainThresholds()) -> None:
    """Feed computed :func:`observation_layers` (time-sorted, all after ``state.through``) to the state."""
    th = thresholds
    if obs.sizes.get("time", 0) == 0:
        return
    days, secs = time_axes(obs["time"].values)
    if state.through is not None and secs[0] <= state.through:
        raise ValueError(f"observation at {obs['time'].values[0]} is not after the state "
                         f"({np.datetime64(int(state.through), 's')}); rebuild the state from the season start")
    a = state.arrays
    fire, loss, weak = obs["fire"].values, obs["loss"].values, obs["weak"].values
    nb, vis, nbb = obs["nbr"].values, obs["visible"].values, obs["nbr_broad"].values
    # layers built without the season reference (by hand, or by an older version): the NBR itself
    none = np.full(nb.shape, np.nan, np.float32)
    dev = obs["nbr_dev"].values if "nbr_dev" in obs else none
    ex = obs["nbr_expected"].values if "nbr_expected" in obs else none
    fine = obs["fine"].values.astype(bool) if "fine" in obs else np.ones(len(days), bool)
    post_fine_s = th.burn_post_fine_days * 86400.0
    max_gap_s = th.burn_step_max_gap_days * 86400.0
    within_s = th.within_days * 86400.0
    recover_s, still = th.burn_recover_after_days * 86400.0, th.burn_recover_fraction * th.burn_nbr_drop
    burn, forest = state.machine("burn"), state.machine("forest")
    kw = {"confirm": th.confirm, "of_next": th.of_next, "within_days": th.within_days}
    for k in range(len(days)):
        # the fire trigger: an abrupt NBR drop since the previous clear look, less the season's course
        # (the NBR's own drop where the deviation is unknown at either look), the visible barely changed
        step = (a["prev_dev"] - dev[k]).astype(np.float32)
        recent = secs[k] - a["prev_nbr_time"] <= max_gap_s  # (NaN: no previous look, not recent)
        step = np.where(np.isfinite(step), step, np.where(recent, a["prev_nbr"] - nb[k], np.nan).astype(np.float32))
        a["prev_dev"] = np.where(np.isfinite(dev[k]), dev[k], a["prev_dev"])
        vstep = (a["prev_visible"] - vis[k]).astype(np.float32)
        a["prev_nbr_time"] = np.where(np.isfinite(nb[k]), secs[k], a["prev_nbr_time"])
        a["prev_nbr"] = np.where(np.isfinite(nb[k]), nb[k], a["prev_nbr"])
        a["prev_visible"] = np.where(np.isfinite(vis[k]), vis[k], a["prev_visible"])
        trigger = ((step >= th.burn_step_drop) & (abs(vstep) <= th.max_visible_step)).astype(np.float32)
        new = status_step(burn, fire[k], trigger, days[k], secs[k], **kw)
        # severity: the last clear NBR of the season before the detection, and the NBR at it, or at
        # the first clear 10-20 m look within burn_post_fine_days of a 30 m detection
        seen = np.isfinite(nbb[k])
        a["burn_pre"] = np.where(new, a["prev_nbr_broad"], a["burn_pre"]).astype(np.float32)
        a["burn_pre_expected"] = np.where(new, a["prev_expected"], a["burn_pre_expected"]).astype(np.float32)
        upgrade = (~new & fine[k] & seen & (a["burn_post_fine"] == 0) & np.isfinite(burn["first"])
                   & (secs[k] - burn["first"] <= post_fine_s))
        a["burn_post"] = np.where(new | upgrade, nbb[k], a["burn_post"]).astype(np.float32)
        a["burn_post_expected"] = np.where(new | upgrade, ex[k], a["burn_post_expected"]).astype(np.float32)
        a["burn_post_fine"] = np.where(new, fine[k] & seen, a["burn_post_fine"] | upgrade).astype(np.int8)
        # the 10-20 m looks within within_days of the current burn detection, and the fire-like ones
        after = secs[k] - burn["first"]
        b_seen = fine[k] & np.isfinite(fire[k]) & (after <= within_s)
        a["burn_fine_seen"] = (np.where(new, 0, a["burn_fine_seen"]) + b_seen).astype(np.int16)
        a["burn_fine_hits"] = (np.where(new, 0, a["burn_fine_hits"]) + (b_seen & (fire[k] > 0.5))).astype(np.int16)
        # the looks weeks after it, and those still below the expected NBR (a lagging green-up recovers)
        l_seen = (after >= recover_s) & (after <= within_s) & np.isfinite(dev[k])
        a["burn_late_seen"] = (np.where(new, 0, a["burn_late_seen"]) + l_seen).astype(np.int16)
        a["burn_late_hits"] = (np.where(new, 0, a["burn_late_hits"]) + (l_seen & (dev[k] <= -still))).astype(np.int16)
        a["prev_expected"] = np.where(seen, ex[k], a["prev_expected"]).astype(np.float32)
        a["prev_nbr_broad"] = np.where(seen, nbb[k], a["prev_nbr_broad"]).astype(np.float32)
        new_f = status_step(forest, loss[k], np.ones_like(loss[k]), days[k], secs[k], **kw)
        # the 10-20 m looks since the current loss detection, and the anomalous ones among them
        f_seen = fine[k] & np.isfinite(loss[k])
        a["forest_fine_seen"] = (np.where(new_f, 0, a["forest_fine_seen"]) + f_seen).astype(np.int16)
        a["forest_fine_hits"] = (np.where(new_f, 0, a["forest_fine_hits"]) + (f_seen & (loss[k] > 0.5))).astype(np.int16)
        a["weak_count"] = (a["weak_count"] + weak[k]).astype(np.int16)
    state.store_machine("burn", burn)
    state.store_machine("forest", forest)
    state.through = float(secs[-1])
    state.n_obs += len(days)


def state_layers(state: ForestBurnState, forest: xr.DataArray, thresholds: ChainThresholds = ChainThresholds()
                 ) -> xr.Dataset:
    """The chain's output layers (as :func:`processors.chain.forest_burn_layers`) from the state.

    ``forest``: the forest mask (y, x), which also gives the grid."""
    th = thresholds
    a = state.arrays
    fm = np.asarray(forest.values, dtype=bool)
    # burns that were a 30 m pixel over a clearing's edge, or a lagging green-up: withdrawn
    not_fire = burn_withdrawn(a["burn_status"], a["burn_fine_seen"], a["burn_fine_hits"], a["burn_late_seen"],
                              a["burn_late_hits"], th)
    burned = (a["burn_status"] == CONFIRMED) & ~not_fire
    like = forest.astype(bool)

    def lay(x: np.ndarray, **attrs) -> xr.DataArray:
        return like.copy(data=x).assign_attrs(attrs)

    # the loss status over the whole forest, burned or not (see processors.chain.forest_burn_layers)
    f_status = np.where(fm, a["forest_status"], 0).astype(np.int8)
    f_first = np.where(fm, seconds_to_time(a["forest_first"]), np.datetime64("NaT", "ns"))
    d = phenology_corrected((a["burn_pre"] - a["burn_post"]).astype(np.float32),
                            (a["burn_pre_expected"] - a["burn_post_expected"]).astype(np.float32))
    d = np.where(np.isfinite(a["burn_first"]), d, np.nan).astype(np.float32)
    sev = severity_classes(like.copy(data=d)).values
    w = th.weak_fraction
    fine_normal = fm & (a["forest_status"] == CONFIRMED) & (a["forest_fine_seen"] >= 1) & (a["forest_fine_hits"] == 0)
    return xr.Dataset({
        "forest": like,
        "forest_status": lay(f_status, long_name="forest disturbance status",
                             flag_values=[0, 1, 2, 3], flag_meanings="none probable confirmed withdrawn", units="1"),
        "forest_first": lay(f_first, long_name="first anomalous clear observation of the current event"),
        "forest_weak": lay((np.where(fm, a["weak_count"], 0) >= th.confirm),
                           long_name=f"at least {th.confirm} observations past {w:.0%} of the loss thresholds",
                           units="1"),
        "forest_fine_normal": lay(fine_normal, **FINE_NORMAL_ATTRS),
        "burn_status": lay(np.where(not_fire, WITHDRAWN, a["burn_status"]).astype(np.int8),
                           long_name="forest disturbance status", units="1"),
        "burn_first": lay(seconds_to_time(a["burn_first"]),
                          long_name="first anomalous clear observation of the current event"),
        "dnbr": lay(np.where(burned, d, np.nan).astype(np.float32), long_name="differenced normalized burn ratio "
                    "(pre - post), less the season's change between the two looks", units="1"),
        "severity": lay(np.where(burned, sev, -1).astype(np.int8)),
    })
