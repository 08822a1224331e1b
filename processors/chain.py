"""The forest-loss and burn-scar chain: from a reflectance cube to alert layers, then to alerts.

:func:`forest_burn_layers` is lazy (xarray in, xarray out). :func:`forest_burn_alerts` takes the
*computed* layers and returns polygons. Fire pixels go to burn scars only: the same pixels never
raise both alerts.

NBR uses the narrow NIR (Sentinel-2 B8A, Landsat OLI B5, canonical ``nir08``), so the two missions
measure the same thing; NDVI uses the 10 m red and NIR, which keeps the edges of clearings sharp.
Load with ``harmonize=True`` for the HLS bandpass adjustment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from .burn import SEVERITY_NAMES, burn_severity_at_detection, drop_from_previous, fire_like, water_at_10m
from .forest import CONFIRMED, PROBABLE, WITHDRAWN, forest_baseline, loss_status, seasonal_anomaly, tile_median
from .indices import mndwi, nbr, ndvi, normalized_difference
from .vectorize import Patches, _numpy, vectorize_alerts
from .water import EDGE_M

__all__ = ["ChainThresholds", "observation_layers", "hazy", "burn_withdrawn", "forest_burn_layers", "forest_burn_alerts", "forest_burn_masks", "burn_scar_pixels", "one_fire_per_patch", "wetland_layers", "wetland_alerts",
           "grassland_layers", "grassland_alerts"]


@dataclass(frozen=True)
class ChainThresholds:
    """Knobs of the forest-loss and burn-scar chain (units: index units, days, hectares)."""

    forest_nbr_drop: float = 0.30  #: NBR below its same-season baseline for a loss observation
    forest_ndvi_drop: float = 0.15
    weak_fraction: float = 0.5  #: hysteresis: neighbours of a confirmed patch join at this share of the thresholds
    #: ... or, on a 10 m look, at the full NDVI threshold (10 m bands) and this share of the NBR one (20 m bands)
    edge_nbr_fraction: float = 0.25
    edge_max_blue_red: float = 0.8  #: ... on a look whose blue is at most this share of its red (soil, not haze)
    burn_nbr_drop: float = 0.10  #: the Key & Benson low-severity floor
    burn_step_drop: float = 0.10  #: abrupt NBR drop since the previous clear look that starts a fire
    #: ... where the drop is the NBR's own (the deviation from the expected NBR unknown at either look,
    #: as at the season's first looks), from a look at most this many days before: over a winter the
    #: season moves the NBR (last summer's canopy against this spring's bare larch crowns)
    burn_step_max_gap_days: float = 60.0
    max_visible_step: float = 0.05  #: ... while the visible barely changes (snowmelt changes it a lot)
    #: over the reference cover (forest), a look brighter than this in the visible (mean of blue, green,
    #: red) is haze or thin cloud the mask let through: not a look to measure the next one's drop from,
    #: nor a pre-fire look (forest and char sit at 0.02-0.05)
    haze_visible: float = 0.10
    haze_max_ndsi: float = 0.1  #: ... and not snow-like (NDSI under this: partial snow is bright too)
    window_days: int = 15
    confirm: int = 2
    of_next: int = 4
    within_days: int = 60
    forest_mmu_ha: float = 0.5
    burn_mmu_ha: float = 1.0
    #: a fire has a core of at least moderate severity (dNBR >= 0.27): 10 px at 10 m. A surface fire
    #: under larch is mostly of low severity (held-out seed 83: 1.13 ha, 0.22 ha of it moderate)
    burn_core_ha: float = 0.1
    burn_post_fine_days: float = 3.0  #: a 10-20 m look this soon after a 30 m detection gives the post-fire NBR
    #: ... and one this soon, the 10 m detail around the 30 m value (processors.coarse)
    burn_post_coarse_days: float = 30.0
    #: ... with a clear 10-20 m look at most this many days before the detection, the 10 m dNBR between
    #: the two Sentinel-2 looks, scaled to the 30 m detection's (processors.coarse) ...
    burn_pre_fine_days: float = 30.0
    #: ... the later look at most this many days after the detection (the scaling takes off the regrowth
    #: in between, so it may come later than the bracket's)
    burn_pair_post_days: float = 45.0
    #: this season's phenology against the baseline years' is read from the undisturbed reference (forest)
    #: pixels of square tiles this many pixels a side (a multiple of it must divide the nightly state's strips) ...
    reference_tile_px: int = 256
    reference_min_px: int = 100  #: ... that have at least this many clear undisturbed pixels at a look
    #: ... and at least this share of their clear reference pixels within burn_nbr_drop of the tile's
    #: value (a fire over half the tile leaves no reference to read: the NBR itself is used then)
    reference_min_share: float = 0.5
    #: a burn patch keeps the pixels first detected from this many days before its core's median date ...
    fire_days_before: int = 30
    fire_days_after: int = 60  #: ... to this many days after it (a fire burns for days, not seasons)
    #: a burn whose clear looks from this many days after its detection to within_days after it ...
    burn_recover_after_days: float = 30.0
    #: ... all have the NBR back within this share of burn_nbr_drop of the expected NBR (and there are
    #: at least ``confirm`` of them) recovered: a green-up that lagged its tile's, not char
    burn_recover_fraction: float = 0.5


#: attributes of the ``forest_fine_normal`` layer
FINE_NORMAL_ATTRS = {"long_name": "confirmed loss whose every clear 10-20 m look since its detection is normal",
                     "units": "1"}


def observation_layers(ds: xr.Dataset, *, monitor_start: str, thresholds: ChainThresholds = ChainThresholds(),
                       reference: xr.DataArray | None = None) -> xr.Dataset:
    """The stateless layers of each observation from ``monitor_start`` on, lazily.

    ``ds`` holds the baseline years (for the same-season anomaly) and the observations to process.
    :func:`forest_burn_layers` runs them over a season at once; :mod:`processors.incremental` feeds
    them to a per-pixel state night by night.
    Returns a Dataset (time, y, x): ``fire`` and ``loss`` (1/0/NaN), ``weak`` (bool, 10 m platforms
    only), ``nbr``, ``visible``, ``nbr_broad``, ``nbr_dev`` and ``nbr_expected`` (the inputs of the
    stateful steps).

    ``nbr_expected`` is the NBR a pixel would have at the look if nothing happened to it: its
    same-season baseline, moved by how far this season's phenology runs from the baseline years'
    (a late green-up, an early autumn) - the median anomaly of the clear, undisturbed ``reference``
    pixels (the forest mask; every pixel when not given) of its tile
    (``thresholds.reference_tile_px``) at that look. ``nbr_dev`` is ``nbr - nbr_expected``. NaN where
    the look, the baseline or the reference is missing, and outside ``reference``.

    ``fire``, ``loss`` and ``weak`` judge the anomalies of the ``reference`` pixels less their tile's
    median anomaly at the look (NBR's and NDVI's alike): a late green-up moves the whole tile, a
    fire or a clearing its own pixels. Outside the reference, or where a tile has none to read, the
    anomalies themselves.
    """
    th = thresholds
    nd = ndvi(ds["red"], ds["nir"])
    nb = nbr(ds["nir08"], ds["swir22"])
    d_nb = seasonal_anomaly(nb, start=monitor_start, window_days=th.window_days)
    d_nd = seasonal_anomaly(nd, start=monitor_start, window_days=th.window_days)
    d_sw = seasonal_anomaly(ds["swir16"], start=monitor_start, window_days=th.window_days)
    mon = ds.sel(time=d_nb["time"])
    visible = (mon["blue"] + mon["green"] + mon["red"]) / 3
    observed = d_nb.notnull() & d_nd.notnull()
    water_index = mndwi(mon["green"], mon["swir16"])
    water_10m = water_at_10m(mon["green"], mon["nir"])

    def fire_and_loss(drop_nb: xr.DataArray, drop_nd: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
        fire = fire_like(drop_nb, d_sw, visible, mndwi=water_index, water=water_10m, min_nbr_drop=th.burn_nbr_drop)
        loss = ((drop_nb >= th.forest_nbr_drop) & (drop_nd >= th.forest_ndvi_drop)).astype(np.float32)
        return fire, loss.where(observed)

    fire, loss = fire_and_loss(d_nb, d_nd)  # the raw anomalies: to choose the reference pixels
    # this season's phenology: in a green-up ten days late, every pixel sits below its baseline, by
    # as much as a low-severity burn; the undisturbed reference pixels around it show by how much
    ref = d_nb.notnull() if reference is None else d_nb.notnull() & reference.astype(bool)
    tile, n_min = th.reference_tile_px, th.reference_min_px
    season = tile_median(d_nb.where(ref & (fire != 1) & (loss != 1)), tile, min_count=n_min)
    # ... and a green-up late enough to read fire-like over the whole tile leaves none of those: then
    # all the reference pixels (a fire over less than half of them leaves their median among the rest)
    season = season.fillna(tile_median(d_nb.where(ref & (loss != 1)), tile, min_count=n_min))
    # a late green-up reads fire-like over much of the forest, and the median of the rest is of a
    # truncated distribution (too low); the undisturbed pixels stay together, so twice more: those
    # within the fire threshold of the tile's value
    for last in (False, True):
        near = ref & (loss != 1) & (d_nb - season < th.burn_nbr_drop)
        season = tile_median(d_nb.where(near), tile, min_count=n_min, of=ref if last else None,
                             min_share=th.reference_min_share if last else 0.0)
    # every threshold is judged against the season's course: in a late green-up much of the forest
    # passes half the loss thresholds (weak evidence, which the hysteresis would join to a clearing
    # beside it) and the fire floor for a look or two. The raw anomalies chose the reference pixels
    # above; the anomalies of the reference cover less its tile's median (the NBR's and the NDVI's,
    # of the same pixels) decide. Where a tile has no reference to read, the raw anomaly.
    season_nd = tile_median(d_nd.where(near), tile, min_count=n_min, of=ref, min_share=th.reference_min_share)
    in_ref = reference.astype(bool) if reference is not None else True
    a_nb = d_nb - season.where(in_ref).fillna(0)
    a_nd = d_nd - season_nd.where(in_ref).fillna(0)
    fire, loss = fire_and_loss(a_nb, a_nd)
    w = th.weak_fraction
    weak = ((a_nb >= w * th.forest_nbr_drop) & (a_nd >= w * th.forest_ndvi_drop))
    # at a clearing's edge, Sentinel-2's NBR (B8A, B12: 20 m) averages in the forest beside a cleared
    # 10 m pixel and shows a quarter to a half of the drop; its NDVI (B4, B8: 10 m) shows all of it.
    # Haze that the cloud mask let through drops NDVI too, but brightens blue as much as red, while
    # exposed soil and slash are redder than blue (the idea of Zhang et al.'s 2002 haze transform)
    soil_like = mon["blue"] <= th.edge_max_blue_red * mon["red"]
    edge = (a_nd >= th.forest_ndvi_drop) & (a_nb >= th.edge_nbr_fraction * th.forest_nbr_drop) & soil_like
    weak = (weak | edge).where(observed, False)
    dev = (season - d_nb).astype(np.float32)  # the NBR minus (its baseline minus the season's anomaly)
    if reference is not None:
        # the forest's season says nothing of a crop's harvest or a marsh's flood: elsewhere the NBR itself
        dev = dev.where(reference.astype(bool))
    nb_mon = nb.sel(time=d_nb["time"])
    # haze over the forest: its NBR reads low (a "drop" to it, then none from it to a fire behind it)
    clean = ~hazy(mon, reference, th) if reference is not None else xr.ones_like(visible, dtype=bool)
    # the 10-20 m looks (Sentinel-2); without platforms, every look counts as one
    fine = np.ones(d_nb.sizes["time"], bool)
    if "platform" in ds.coords and ds["platform"].ndim == 1:
        fine = np.char.startswith(ds["platform"].sel(time=d_nb["time"]).values.astype(str), "sentinel-2")
    fine = xr.DataArray(fine, dims="time", coords={"time": d_nb["time"]})
    # edges are judged at 10 m: Landsat's 30 m pixels would smear a clearing by up to 20 m
    weak = weak & fine
    return xr.Dataset({"fire": fire, "loss": loss, "weak": weak, "fine": fine, "nbr": nb_mon.where(clean),
                       "nbr_dev": dev.where(clean), "nbr_expected": (nb_mon - dev).astype(np.float32).where(clean),
                       # severity on Key & Benson's own scale: NBR with the broad NIR (TM band 4 ~ MSI B08)
                       "visible": visible.where(clean), "nbr_broad": nbr(mon["nir"], mon["swir22"]).where(clean)})


def hazy(bands: xr.Dataset, reference: xr.DataArray, thresholds: ChainThresholds = ChainThresholds()
         ) -> xr.DataArray:
    """Looks of the ``reference`` cover (forest) that are thin cloud or haze the cloud mask let
    through: brighter in the visible (mean of blue, green, red) than ``haze_visible``, and not
    snow-like (NDSI, ``(green - swir16) / (green + swir16)``, under ``haze_max_ndsi``; snow in a
    forest sits above 0.1, Klein, Hall & Riggs 1998, *Hydrol. Process.* 12, 1723-1744, and the
    fire trigger's visible step already keeps snowmelt out). Their NBR reads low, so a fire behind
    such a look would show no drop from it; they are left out of the fire trigger's previous look
    and of the pre-fire look (a fire-like look itself must be dark)."""
    visible = (bands["blue"] + bands["green"] + bands["red"]) / 3
    ndsi = normalized_difference(bands["green"], bands["swir16"], name="ndsi", long_name="NDSI")
    return (visible > thresholds.haze_visible) & (ndsi < thresholds.haze_max_ndsi) & reference.astype(bool)


def burn_withdrawn(status, fine_seen, fine_hits, late_seen, late_hits, thresholds: ChainThresholds = ChainThresholds()):
    """Confirmed burns that were not fire (the season chain's and the nightly state's rule; xarray or
    NumPy counts alike): those the 10-20 m looks within ``within_days`` of the detection saw, never as
    fire-like (a 30 m pixel over a clearing's edge), and those whose clear looks from
    ``burn_recover_after_days`` to ``within_days`` after it - at least ``confirm`` of them - were all
    back within ``burn_recover_fraction`` of the fire floor of the expected NBR (a green-up that lagged
    its tile's; char stays dark for the season)."""
    confirmed = status == CONFIRMED
    return (confirmed & (fine_seen >= 1) & (fine_hits == 0)) | (confirmed & (late_seen >= thresholds.confirm) & (late_hits == 0))


def forest_burn_layers(ds: xr.Dataset, *, monitor_start: str, mask_years: list[int], start_doy: int, end_doy: int,
                       thresholds: ChainThresholds = ChainThresholds(), forest_mask: xr.DataArray | None = None
                       ) -> xr.Dataset:
    """Lazy layers of the forest-loss and burn-scar chain.

    Parameters
    ----------
    ds : Dataset (time, y, x)
        Clear-sky reflectance with ``blue, green, red, nir, nir08, swir16, swir22`` covering the
        baseline years and the monitoring period.
    monitor_start : str
        First day of the monitoring period (``YYYY-MM-DD``).
    mask_years : list of int
        Baseline seasons for the forest mask (the latest ones: older clearings drop out).
    start_doy, end_doy : int
        Growing-season window for the forest mask.
    forest_mask : DataArray (y, x) bool, optional
        An external forest layer, replacing the derived one.

    Returns
    -------
    Dataset over (y, x): ``forest``, ``forest_status``, ``forest_first``, ``forest_weak``,
    ``forest_fine_normal`` (confirmed, but every clear 10-20 m look since the detection was normal),
    ``burn_status``, ``burn_first``, ``dnbr``, ``severity``.
    """
    th = thresholds
    # NDVI from the 10 m bands keeps clearing edges sharp; NBR from B8A/B12 (20 m) matches Landsat's OLI B5/B7
    nd = ndvi(ds["red"], ds["nir"])
    nb = nbr(ds["nir08"], ds["swir22"])
    forest = forest_mask if forest_mask is not None else forest_baseline(
        nd, nb, years=mask_years, start_doy=start_doy, end_doy=end_doy, ndsi=mndwi(ds["green"], ds["swir16"]))
    # the per-observation layers; the forest is the reference of the season's phenology
    obs = observation_layers(ds, monitor_start=monitor_start, thresholds=th, reference=forest)
    fire = obs["fire"]
    all_vis = (ds["blue"] + ds["green"] + ds["red"]) / 3
    clean = ~hazy(ds, forest, th)  # (the observation layers leave the hazy looks out already)
    # the abrupt drop since the previous clear look, less the season's course between the two looks
    # (the NBR's own drop where the deviation from the expected NBR is unknown at either)
    dev_step = drop_from_previous(obs["nbr_dev"])
    raw_step = drop_from_previous(nb.where(clean), max_gap_days=th.burn_step_max_gap_days).sel(time=fire["time"])
    step = dev_step.where(dev_step.notnull(), raw_step)
    vstep = drop_from_previous(all_vis.where(clean)).sel(time=fire["time"])
    trigger = ((step >= th.burn_step_drop) & (abs(vstep) <= th.max_visible_step)).astype(np.float32)
    burn = loss_status(fire, trigger=trigger, confirm=th.confirm, of_next=th.of_next, within_days=th.within_days)
    first_obs = (fire["time"] == burn["first_detected"]).astype(np.float32)
    sev = burn_severity_at_detection(obs["nbr_broad"], first_obs, fine=obs["fine"], post_fine_days=th.burn_post_fine_days,
                                     expected=obs["nbr_expected"])
    # a 30 m pixel over a clearing's edge mixes the dark forest with the bright soil: dark enough, and
    # its NBR dropped, so fire-like. A burn the 10-20 m looks of the weeks after its detection saw,
    # and never as fire-like, was not one (char stays dark and low in NBR for months)
    after = fire["time"] - burn["first_detected"]
    since = (after >= np.timedelta64(0, "s")) & (after <= np.timedelta64(th.within_days, "D")) & obs["fine"]
    fine_fire_seen = (since & fire.notnull()).sum("time")
    fine_fire_hits = (since & (fire == 1)).sum("time")
    # a pixel whose green-up lags its tile's reads fire-like for a look or two, and again normal within
    # weeks; char stays dark for the season (herbs take back at most half the NBR): the clear looks
    # from burn_recover_after_days to within_days after its detection, and those still below
    late = (after >= np.timedelta64(int(th.burn_recover_after_days * 86400), "s")) & (after <= np.timedelta64(th.within_days, "D"))
    late_seen = (late & obs["nbr_dev"].notnull()).sum("time")
    late_hits = (late & (obs["nbr_dev"] <= -th.burn_recover_fraction * th.burn_nbr_drop)).sum("time")
    not_fire = burn_withdrawn(burn["status"], fine_fire_seen, fine_fire_hits, late_seen, late_hits, th)
    burned = (burn["status"] == CONFIRMED) & ~not_fire

    # over the whole forest, burned or not: the burn-scar alerts take their pixels out of forest loss
    # (forest_burn_alerts), and a "burn" too small to be one (Sentinel-2's 20 m NBR blurs a clearing
    # over the 10 m forest pixels around it, dark and fire-like) gives its pixels back to the clearing
    status = loss_status(obs["loss"].where(forest), confirm=th.confirm, of_next=th.of_next,
                         within_days=th.within_days)
    w = th.weak_fraction
    weak_count = obs["weak"].where(forest, False).sum("time")
    # the 10-20 m looks since the detection: a confirmed pixel whose every one is normal was flagged by
    # the 30 m Landsat looks smearing a clearing's edge over it (see forest_burn_masks)
    since = (obs["loss"]["time"] >= status["first_detected"]) & obs["fine"]
    fine_seen = (since & obs["loss"].notnull()).sum("time")
    fine_hits = (since & (obs["loss"] == 1)).sum("time")
    # (the status already holds forest pixels only: its input was masked to them)
    fine_normal = (status["status"] == CONFIRMED) & (fine_seen >= 1) & (fine_hits == 0)

    out = xr.Dataset({
        "forest": forest.astype(bool),
        "forest_status": status["status"], "forest_first": status["first_detected"],
        "forest_weak": (weak_count >= th.confirm),
        "forest_fine_normal": fine_normal,
        "burn_status": burn["status"].where(~not_fire, WITHDRAWN).astype(np.int8), "burn_first": burn["first_detected"],
        "dnbr": sev["dnbr"].where(burned), "severity": sev["severity"].where(burned, -1).astype(np.int8),
    })
    out["forest_weak"].attrs = {"long_name": f"at least {th.confirm} observations past {w:.0%} of the loss thresholds",
                                "units": "1"}
    out["forest_fine_normal"].attrs = FINE_NORMAL_ATTRS
    return out


def _grow(seed: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Hysteresis: pixels of ``allowed`` connected (8-neighbourhood) to ``seed``."""
    pat = Patches(seed | allowed, count={"seed": seed})
    return pat.select(pat.counts["seed"] > 0)


def forest_burn_masks(layers: xr.Dataset) -> dict[str, np.ndarray]:
    """The per-pixel masks the forest-loss and burn-scar alerts start from, from *computed* layers.

    Pixel by pixel, so any band of rows of the layers gives the same band of the masks (a big
    landscape's are built a band at a time): ``confirmed_loss``, ``weak_loss`` (where a confirmed
    patch may grow), ``probable_loss``, ``burned`` and ``burn_core`` (burned, moderate or worse).

    A confirmed pixel whose clear 10-20 m looks since its detection exist and were all normal
    (``forest_fine_normal``) is not ``confirmed_loss``: a 30 m Landsat pixel mostly cleared reads as
    clearing over the 10 m pixels of forest it also covers. Layers without that variable (built by
    hand, or by an older version) skip the check.
    """
    fs, bs = _numpy(layers["forest_status"], "forest_status"), _numpy(layers["burn_status"], "burn_status")
    forest = np.asarray(_numpy(layers["forest"], "forest"), dtype=bool)
    burned = bs == CONFIRMED
    confirmed = fs == CONFIRMED
    if "forest_fine_normal" in layers:  # a confirmed pixel that the 10 m looks since saw normal: Landsat's smear
        confirmed &= ~np.asarray(_numpy(layers["forest_fine_normal"], "forest_fine_normal"), dtype=bool)
    return {"confirmed_loss": confirmed,
            "weak_loss": _numpy(layers["forest_weak"], "forest_weak") & forest,
            "probable_loss": (fs == PROBABLE) & forest & (bs == 0),
            "burned": burned,
            "burn_core": (_numpy(layers["severity"], "severity") >= 2) & burned}


def one_fire_per_patch(burned: np.ndarray, core: np.ndarray, first: np.ndarray, *, days_before: float = 30,
                       days_after: float = 60) -> np.ndarray:
    """``burned`` without the pixels whose first detection does not date from their patch's fire.

    A fire burns for days; its pixels are first detected at their first clear look after it, so
    within weeks of each other. An anomaly months away (the larch turning early in autumn, a late
    green-up) that is fire-like and touches the scar would otherwise join its polygon, enlarge it and
    move its date. Per connected patch of ``burned`` with a ``core`` (moderate severity or worse),
    the fire's date is the median first detection of the core; pixels first detected more than
    ``days_before`` before it or ``days_after`` after it are dropped. Patches without a core are
    left as they are (the core rule drops them).

    Parameters
    ----------
    burned, core : 2-D bool arrays (NumPy or memory maps)
    first : 2-D datetime64 array, the first detection of each pixel (NaT where none).
    """
    pat = Patches(burned, count={"core": core})
    out = np.array(burned, dtype=bool, copy=True)
    lo, hi = np.timedelta64(int(days_before * 86400), "s"), np.timedelta64(int(days_after * 86400), "s")
    for i in np.flatnonzero(pat.counts["core"] > 0):
        px, win = pat.pixels(i)
        f = np.asarray(first[win]).astype("datetime64[s]")
        dated = px & ~np.isnat(f)
        c = dated & np.asarray(core[win], dtype=bool)
        if not c.any():
            continue
        d0 = np.datetime64(int(np.median(f[c].astype(np.int64))), "s")
        out[win] &= ~(dated & ((f < d0 - lo) | (f > d0 + hi)))
    return out


def burn_scar_pixels(layers: xr.Dataset, masks: Mapping[str, np.ndarray],
                     thresholds: ChainThresholds = ChainThresholds()) -> np.ndarray:
    """The pixels of the burn-scar alerts, as a 2-D bool array over the layers' grid.

    ``burned`` (:func:`forest_burn_masks`) after the one-fire rule (:func:`one_fire_per_patch`),
    the core rule (a patch needs ``burn_core_ha`` of moderate or worse severity) and the minimum
    mapping unit (``burn_mmu_ha``), with the connectivity the polygons use: exactly what
    :func:`forest_burn_alerts` vectorises. The nightly flow writes the cube's burn severity and
    dNBR inside this mask only, so the cube and the ``burn_scar`` alerts show the same burned area.
    """
    th = thresholds
    burned = one_fire_per_patch(masks["burned"], masks["burn_core"], _numpy(layers["burn_first"], "burn_first"),
                                days_before=th.fire_days_before, days_after=th.fire_days_after)
    # keep burn patches with a core of at least moderate severity: scattered low-severity noise has none
    pat = Patches(burned, count={"core": masks["burn_core"] & burned})
    if pat.n:
        tr = layers["burn_status"].rio.transform()
        px_ha = abs(tr.a * tr.e) / 1e4
        burned = pat.select((pat.counts["core"] * px_ha >= th.burn_core_ha) & (pat.sizes * px_ha >= th.burn_mmu_ha))
    return burned


def forest_burn_alerts(layers: xr.Dataset, *, landscape_id: str,
                       thresholds: ChainThresholds = ChainThresholds(),
                       masks: dict[str, np.ndarray] | None = None,
                       scars: np.ndarray | None = None) -> gpd.GeoDataFrame:
    """Forest-loss and burn-scar alerts from *computed* layers (:func:`forest_burn_layers`).

    Confirmed patches are completed with adjacent weaker evidence (hysteresis) before the minimum
    mapping unit applies; a patch's ``status`` is ``confirmed``. ``masks``: the layers'
    :func:`forest_burn_masks`, when the caller built them already (a band at a time); ``scars``:
    their :func:`burn_scar_pixels`, likewise.
    """
    th = thresholds
    m = masks if masks is not None else forest_burn_masks(layers)
    burned = scars if scars is not None else burn_scar_pixels(layers, m, th)
    # the burn scars' pixels are fire, not forest loss; the rest of the confirmed burns (under the
    # burn unit, without a core) may be a clearing's
    f_mask = _grow(m["confirmed_loss"] & ~burned, m["weak_loss"] & ~burned)
    fm = layers["forest_status"].copy(data=f_mask)
    fa = vectorize_alerts(fm, kind="forest_loss", landscape_id=landscape_id, min_area_ha=th.forest_mmu_ha,
                          first_detected=layers["forest_first"], status="confirmed")
    del f_mask, fm
    bm = layers["burn_status"].copy(data=burned)
    ba = vectorize_alerts(bm, kind="burn_scar", landscape_id=landscape_id, min_area_ha=th.burn_mmu_ha,
                          first_detected=layers["burn_first"], severity=layers["severity"],
                          severity_names=dict(enumerate(SEVERITY_NAMES)), status="confirmed")
    parts = [f for f in (fa, ba) if len(f)]  # concatenating empty frames is deprecated in pandas
    out = pd.concat(parts, ignore_index=True) if parts else fa
    return gpd.GeoDataFrame(out, geometry="geometry", crs=4326)


# ------------------------------------------------------------------------------------------ wetlands
def wetland_layers(ds: xr.Dataset, *, baseline_years: list[int], year: int, months: tuple[int, ...],
                   pixel_area_ha: float, min_clear: int = 2, edge_m: float | None = EDGE_M) -> xr.Dataset:
    """Water of the same months in the baseline years and in ``year``, lazily.

    Returns a Dataset with ``water`` (per observation: 1 water, 0 land, NaN unobserved) and over
    (y, x): ``baseline_frequency``, ``current_frequency`` and ``current_clear`` (observations).
    A pixel is water in a period when it is wet in at least half of its clear observations.
    Water is MNDWI over each scene's Otsu threshold, with the shore's mixed pixels assigned by their
    water fraction within ``edge_m`` of it (:func:`processors.water.refine_water_edges`; needs
    ``nir``; ``edge_m=None``: MNDWI alone).
    """
    from .indices import mndwi
    from .water import refine_water_edges, water_frequency, water_mask

    water = water_mask(mndwi(ds["green"], ds["swir16"]))
    if edge_m is not None:
        if "nir" not in ds:
            raise ValueError("wetland_layers: the shore refinement needs the 'nir' band, which the dataset lacks; "
                             "load it, or pass edge_m=None for MNDWI alone")
        water = refine_water_edges(water, ds["nir"], ds["swir16"], edge_m=edge_m,
                                   pixel_size_m=(pixel_area_ha * 1e4) ** 0.5)
    t = water["time"]
    in_months = t.dt.month.isin(list(months))
    base = water.sel(time=in_months & t.dt.year.isin(baseline_years))
    cur = water.sel(time=in_months & (t.dt.year == year))
    fb, fc = water_frequency(base), water_frequency(cur)
    return xr.Dataset({
        "water": water,
        "baseline_frequency": fb["frequency"].where(fb["clear"] >= min_clear),
        "current_frequency": fc["frequency"].where(fc["clear"] >= min_clear),
        "current_clear": fc["clear"],
    }, attrs={"pixel_area_ha": pixel_area_ha, "months": list(months), "year": year})


def wetland_alerts(layers: xr.Dataset, *, landscape_id: str, loss_fraction: float = 0.25, min_area_ha: float = 0.5,
                   first_detected: str | None = None) -> tuple[gpd.GeoDataFrame, dict]:
    """A ``wetland_loss`` alert when the water extent of the period falls ``loss_fraction`` or more
    below the baseline's; its polygon is the water that is gone. Needs *computed* layers.

    Returns the alerts and the period statistics (baseline and current hectares, change).
    """
    px = float(layers.attrs["pixel_area_ha"])
    base = layers["baseline_frequency"].data >= 0.5
    cur_f = layers["current_frequency"].data
    cur = cur_f >= 0.5
    base_ha, cur_ha = float(base.sum()) * px, float(cur.sum()) * px
    change = (cur_ha - base_ha) / base_ha if base_ha > 0 else float("nan")
    stats = {"baseline_water_ha": round(base_ha, 2), "current_water_ha": round(cur_ha, 2),
             "change_fraction": round(change, 4) if np.isfinite(change) else None}
    if not (base_ha > 0 and change <= -loss_fraction):
        return vectorize_alerts(layers["baseline_frequency"].copy(data=np.zeros(base.shape, bool)), kind="wetland_loss",
                                landscape_id=landscape_id, min_area_ha=min_area_ha), stats
    lost = base & np.isfinite(cur_f) & ~cur
    day = np.datetime64(first_detected or f"{layers.attrs['year']}-{min(layers.attrs['months']):02d}-01", "ns")
    first = layers["baseline_frequency"].copy(data=np.where(lost, day, np.datetime64("NaT", "ns")))
    g = vectorize_alerts(layers["baseline_frequency"].copy(data=lost), kind="wetland_loss", landscape_id=landscape_id,
                         min_area_ha=min_area_ha, first_detected=first, status="confirmed")
    return g, stats


# ------------------------------------------------------------------------------------------ grasslands
def grassland_layers(ds: xr.Dataset, *, start_doy: int, end_doy: int, year: int, p_max: float = 0.05,
                     slope_per_year: float = 0.005, min_obs: int = 1, drop_below: float | None = 0.07,
                     season_doy: tuple[int, int] | None = None, fit_doy: tuple[int, int] = (60, 330),
                     sigma: float = 1.5, misfit: float = 3.0) -> xr.Dataset:
    """Growing-season NDVI per year, its trend class, slope, p-value and this year's anomaly (lazy).

    The yearly values are the mean of the peak window's clear looks (``start_doy``-``end_doy``;
    years with fewer than ``min_obs`` of them are gaps; looks more than ``drop_below`` under the
    pixel's median of about three years are cloud-mask leaks and left out).

    With ``season_doy`` (the whole growing season), each year's values are moved to the landscape's
    growing-season level of that year, from its own seasonal curve fitted to the looks inside
    ``fit_doy`` (:func:`processors.grassland.season_levels`, :func:`~processors.grassland.to_season_levels`),
    and the trend is tested on each pixel's modelled series (:func:`processors.grassland.modelled_trend`,
    with ``sigma`` and ``misfit``); the layers then include ``modelled``. Without it, the trend is
    tested on the observed yearly values (:func:`processors.grassland.grassland_trend`).
    """
    from .grassland import (grassland_trend, growing_season_ndvi, modelled_trend, ndvi_anomaly_z, season_levels,
                            to_season_levels)

    nd = ndvi(ds["red"], ds["nir"])
    gs = growing_season_ndvi(nd, start_doy=start_doy, end_doy=end_doy, min_obs=min_obs, drop_below=drop_below)
    extra = {}
    if season_doy is not None:
        lev = season_levels(nd, start_doy=season_doy[0], end_doy=season_doy[1], fit_doy=fit_doy)
        gs = to_season_levels(gs, lev["level"])
        tr = modelled_trend(gs, lev["dormant"], p_max=p_max, slope_per_year=slope_per_year, sigma=sigma, misfit=misfit)
        extra = {"modelled": tr["modelled"], "season_level": lev["level"]}
    else:
        tr = grassland_trend(gs, p_max=p_max, slope_per_year=slope_per_year)
    return xr.Dataset({"gs_ndvi": gs, "slope": tr["slope"], "p_value": tr["p_value"],
                       "trend_class": tr["trend_class"], "anomaly_z": ndvi_anomaly_z(gs, year=year), **extra})


def grassland_alerts(layers: xr.Dataset, *, landscape_id: str, first_detected: str, min_area_ha: float = 5.0,
                     weak_p_max: float | None = None, weak_slope_per_year: float = 0.01) -> gpd.GeoDataFrame:
    """``grassland_degradation`` alerts from *computed* layers (:func:`grassland_layers`).

    The patches are the degrading pixels (``trend_class`` -1: p <= 0.05 and slope <= -0.005 by
    default), of ``min_area_ha`` or more. With ``weak_p_max``, they are completed with the adjacent
    pixels of weaker evidence (p <= ``weak_p_max`` and slope <= -``weak_slope_per_year``), as the
    forest-loss alerts are: a test on each pixel's *observed* 5-7 yearly values misses much of a
    patch's edge, where the decline is real but slower. The modelled test (the default of the
    flows) has no such noisy edge, and the default is None. The class layer itself is not changed.

    With a ``modelled`` layer (the modelled test's), only the pixels that follow the grassland
    model raise alerts: the others keep their observed test in the class layer, but they are the
    pixels that do not behave as the steppe does (a field harvested on other days each year, water
    that comes and goes), and one of them beside a degrading pasture joined its alert (a crop
    field's edge pixel on demo seed 7: a grassland alert on a field).
    """
    k = layers["trend_class"]
    core = _numpy(k, "trend_class") == -1
    if "modelled" in layers:
        core &= _numpy(layers["modelled"], "modelled").astype(bool)
    mask = core
    if weak_p_max is not None and core.any():
        weak = (_numpy(layers["slope"], "slope") <= -weak_slope_per_year) & (_numpy(layers["p_value"], "p_value") <= weak_p_max)
        mask = _grow(core, weak)
    day = np.datetime64(first_detected, "ns")
    first = k.copy(data=np.where(mask, day, np.datetime64("NaT", "ns")))
    return vectorize_alerts(k.copy(data=mask), kind="grassland_degradation", landscape_id=landscape_id,
                            min_area_ha=min_area_ha, status="confirmed", first_detected=first)
