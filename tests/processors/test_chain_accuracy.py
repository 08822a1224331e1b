"""Forest-loss and burn-scar accuracy against the demo archive's truth (the small archive, seed 42).

Targets of the processing-core issue: every event of 0.5 ha or more detected, area within ±20%,
forest loss within 2 clear observations of the event, burn severity class agreement >= 75%, no
alert on a distractor, and false alarms at most 1 ha per 100 km² per season.
"""

from __future__ import annotations

import datetime as dt

import dask
import geopandas as gpd
import numpy as np
import pytest
import rasterio

from aoi import load_landscapes
from processors.chain import forest_burn_alerts, forest_burn_layers
from processors.seasons import season_windows
from sources.load import load_reflectance
from sources.search import search_items

WINDOW = "greater-khingan-demo"


@pytest.fixture(scope="module")
def khingan_ds(small_archive):
    land = {x.id: x for x in load_landscapes(small_archive / "aoi.geojson")}[WINDOW]
    items = search_items(small_archive / "catalog.json", intersects=land.geometry, start="2020-01-01",
                         end="2026-12-31", max_cloud=90)
    ds, _ = load_reflectance(items, land.grid(10), bands=["blue", "green", "red", "nir", "nir08", "swir16", "swir22"],
                             harmonize=True)
    return land, ds


@pytest.fixture(scope="module")
def khingan(khingan_ds, small_archive):
    land, ds = khingan_ds
    w = season_windows(land.shape.centroid.y)
    lay = forest_burn_layers(ds, monitor_start="2026-04-01", mask_years=[2023, 2024, 2025], start_doy=w.growing_start_doy,
                             end_doy=w.growing_end_doy)
    with dask.config.set(scheduler="threads"):
        lay = lay.compute()
        clear = ds["clear"].sel(time=slice("2026-04-01", None)).compute()
    alerts = forest_burn_alerts(lay, landscape_id=WINDOW)
    events = gpd.read_file(small_archive / "truth" / "events.geojson")
    return land, lay, alerts, events[events.window_id == WINDOW], clear


def _utm(g, land):
    return g.to_crs(land.grid(10).epsg)


def test_every_event_is_detected_with_its_area(khingan):
    land, _, alerts, events, _ = khingan
    a, e = _utm(alerts, land), _utm(events, land)
    for _, ev in e[e.kind.isin(["forest_loss", "burn_scar"])].iterrows():
        hit = a[(a.kind == ev.kind) & a.intersects(ev.geometry)]
        assert len(hit) == 1, (ev.id, len(hit))
        ratio = hit.geometry.area.sum() / ev.geometry.area
        assert 0.8 <= ratio <= 1.2, (ev.id, ratio)


def test_forest_loss_within_two_clear_observations(khingan, small_archive):
    land, _, alerts, events, clear = khingan
    a, e = _utm(alerts, land), _utm(events, land)
    doy = rasterio.open(small_archive / "truth" / WINDOW / "clearing_doy.tif").read(1)
    for _, ev in e[e.kind == "forest_loss"].iterrows():
        hit = a[(a.kind == "forest_loss") & a.intersects(ev.geometry)].iloc[0]
        event_day = np.datetime64(ev.date)
        det = np.datetime64(hit.first_detected)
        mask = doy == dt.date.fromisoformat(ev.date).timetuple().tm_yday
        times = clear["time"].values.astype("datetime64[D]")
        looks = [t for k, t in enumerate(times) if event_day <= t <= det and clear.values[k][mask].mean() > 0.5]
        assert det >= event_day and len(looks) <= 2, (ev.id, ev.date, hit.first_detected, looks)


def test_burn_severity_agreement(khingan, small_archive):
    _, lay, alerts, _, _ = khingan
    truth = rasterio.open(small_archive / "truth" / WINDOW / "burn_severity.tif").read(1)
    got = lay["severity"].values
    m = truth > 0
    assert (got[m] >= 0).mean() >= 0.9  # burned pixels found
    assert (got[m] == truth[m]).mean() >= 0.75
    burn = alerts[alerts.kind == "burn_scar"].iloc[0]
    assert burn.first_detected == dt.date.fromisoformat(
        gpd.read_file(small_archive / "truth" / "events.geojson").query("kind == 'burn_scar'").date.iloc[0])
    assert set(burn.severity_ha) >= {"low", "moderate_low", "moderate_high", "high"}


def test_no_alert_on_distractors_and_no_false_alarms(khingan):
    land, _, alerts, events, _ = khingan
    a, e = _utm(alerts, land), _utm(events, land)
    distractors = e[e.kind == "distractor"]
    for _, d in distractors.iterrows():
        assert not a.intersects(d.geometry).any(), d.id
    real = e[e.kind != "distractor"].geometry.union_all()
    false_ha = a[~a.intersects(real)].geometry.area.sum() / 1e4
    area_100km2 = land.area_km2 / 100
    assert false_ha / area_100km2 <= 1.0, false_ha
    assert not set(alerts.kind) - {"forest_loss", "burn_scar"}


def _load(small_archive, lid):
    land = {x.id: x for x in load_landscapes(small_archive / "aoi.geojson")}[lid]
    items = search_items(small_archive / "catalog.json", intersects=land.geometry, start="2020-01-01",
                         end="2026-12-31", max_cloud=90)
    ds, _ = load_reflectance(items, land.grid(10), harmonize=True)
    return land, ds


def test_wetland_loss_extent_and_no_alert_on_the_flood(small_archive):
    import json

    from processors.chain import wetland_alerts, wetland_layers

    land, ds = _load(small_archive, "zhalong-demo")
    lay = wetland_layers(ds, baseline_years=list(range(2020, 2026)), year=2026, months=(7, 8, 9),
                         pixel_area_ha=land.grid(10).pixel_area_ha)
    with dask.config.set(scheduler="threads"):
        lay = lay.compute()
    alerts, stats = wetland_alerts(lay, landscape_id=land.id)
    truth = json.loads((small_archive / "truth" / "truth.json").read_text())["windows"][land.id]["wetland"]
    for mine, theirs in ((stats["baseline_water_ha"], truth["baseline_water_ha"]),
                         (stats["current_water_ha"], truth["monitoring_water_ha"])):
        assert abs(mine - theirs) / theirs <= 0.10, (mine, theirs)
    assert stats["change_fraction"] <= -0.25
    ev = gpd.read_file(small_archive / "truth" / "events.geojson").query("window_id == @land.id").to_crs(land.grid().epsg)
    a = alerts.to_crs(land.grid().epsg)
    lost = ev[ev.kind == "wetland_loss"].geometry.iloc[0]
    assert len(a) >= 1 and 0.8 <= a.geometry.area.sum() / lost.area <= 1.2
    for _, d in ev[ev.kind == "distractor"].iterrows():
        assert not a.intersects(d.geometry).any(), d.id  # the July flood and the fields raise nothing
