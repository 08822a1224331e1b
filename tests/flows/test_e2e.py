"""End to end under prefect_test_harness: the demo's backfill and night-by-night replay over the
small archive through the real local STAC API, digests to a real SMTP server, then the contract
of every output, the processing-core targets scored on the outputs, a rerun, and a failing source."""

from __future__ import annotations

import email
import http.server
import json
import threading
import urllib.request
from contextlib import contextmanager
from email import policy
from pathlib import Path

import duckdb
import geopandas as gpd
import pandas as pd
import pystac
import pytest
import xarray as xr

from outputs.alerts import EXPORT_COLUMNS, AlertStore
from outputs.stats import STATS_COLUMNS

pytestmark = pytest.mark.slow


def test_replay_outputs_meet_the_contract(replay):
    out = replay["out"]
    assert all(not n["failed"] for n in replay["res"]["nights"])
    lands = json.loads((replay["archive"] / "aoi.geojson").read_text())["features"]
    for f in lands:
        ds = xr.open_zarr(out / "cubes" / f"{f['id']}.zarr", decode_coords="all")
        assert ds.rio.crs.is_projected and {"ndvi", "nbr", "clear", "water"} <= set(ds.data_vars)
        assert ds["ndvi"].dtype == "float32" and ds.indexes["time"].is_monotonic_increasing
        assert ds.indexes["time"].is_unique and ds.sizes["time"] > 100
    g = gpd.read_parquet(out / "alerts.parquet")
    assert list(g.columns) == EXPORT_COLUMNS and g.crs.to_epsg() == 4326 and len(g) > 0
    assert g["alert_id"].is_unique
    n = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{out / 'alerts.parquet'}')").fetchone()[0]
    assert n == len(g)
    st = pd.read_parquet(out / "stats.parquet")
    assert list(st.columns) == STATS_COLUMNS and not st.duplicated(["landscape_id", "time", "variable"]).any()
    cat = pystac.Catalog.from_file(str(out / "stac" / "catalog.json"))
    assert len(list(cat.get_child("amurwatch-cubes").get_items())) == len(lands)
    assert Path(replay["res"]["last"]["paths"]["report"]).exists()
    # the cube's burn severity is the burn-scar alerts' extent, not every fire-like pixel confirmed. The
    # alert table keeps a polygon until its area changes by 5% (the store's min_change: a smaller change
    # is not an update to mail), so the stored polygon may lag the last night's scar by less than that
    from rasterio.features import rasterize

    land = "greater-khingan-demo"
    fo = xr.open_zarr(out / "cubes" / f"{land}.zarr", group="annual/forest", decode_coords="all")
    burned = (fo["burn_severity"].values >= 0).any(axis=0)
    scars = g[(g.landscape_id == land) & (g.kind == "burn_scar") & (g.status != "expired")].to_crs(fo.rio.crs)
    inside = rasterize(scars.geometry, out_shape=burned.shape, transform=fo.rio.transform()).astype(bool)
    outside = int((burned & ~inside).sum())
    assert burned.sum() > 100 and outside < 0.05 * inside.sum(), (int(burned.sum()), outside, int(inside.sum()))
    # exactly: each night's area of every scar is in the observations table (not held back by min_change)
    import sqlite3

    con = sqlite3.connect(out / "state.db")
    try:
        latest = pd.read_sql("SELECT o.alert_id, o.area_ha FROM observations o JOIN alerts a USING (alert_id) "
                             "WHERE a.landscape_id = ? AND a.kind = 'burn_scar' AND a.status != 'expired' AND "
                             "o.run_date = (SELECT max(run_date) FROM observations WHERE alert_id = o.alert_id)",
                             con, params=(land,))
    finally:
        con.close()
    t = fo.rio.transform()
    assert len(latest) == len(scars)
    assert latest["area_ha"].sum() == pytest.approx(burned.sum() * abs(t.a * t.e) / 1e4, abs=1e-3 * len(latest))


def test_replay_scores_meet_the_processing_core_targets(replay):
    from flows.evaluate import evaluate_outputs

    res = evaluate_outputs(replay["archive"], replay["out"])
    missed = {k: v for k, v in res["targets"].items() if not v["met"]}
    assert not missed, json.dumps({k: res.get(k) for k in ("events_detected", "events", "distractor_alerts",
                                                           "false_alarm_ha_per_100km2", "area_within_20pct",
                                                           "forest_latency_max_clear_obs", "burn_severity_agreement",
                                                           "wetland_extent_error", "grassland_agreement",
                                                           "per_event")}, default=str)


def test_every_change_was_mailed_exactly_once(replay):
    store = AlertStore.at(replay["out"])
    try:
        assert len(store.pending()) == 0
    finally:
        store.close()
    msgs = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in replay["mails"]]
    assert msgs, "no digest arrived"
    ids = [m["Message-ID"] for m in msgs]
    assert len(ids) == len(set(ids))
    for m in msgs:
        assert m.get_body(("plain",)) is not None and m.get_body(("html",)) is not None
        assert "manager@example.org" in m["To"]


def test_a_rerun_of_the_same_night_adds_nothing(replay, prefect_harness):
    from flows.demo import demo_settings
    from flows.nightly import nightly

    out = replay["out"]
    before = {"alerts": gpd.read_parquet(out / "alerts.parquet"), "stats": pd.read_parquet(out / "stats.parquet"),
              "cube": xr.open_zarr(out / "cubes" / "zhalong-demo.zarr")["time"].values,
              "mails": len(list((out / "mail").glob("*.eml")))}
    s = demo_settings(replay["archive"], out, replay["api"], None)
    over = json.loads(s.model_dump_json())
    over["mail_dry_run"] = True
    last = replay["res"]["nights"][-1]["night"]
    nightly(last, overrides=over, final=True)
    after = gpd.read_parquet(out / "alerts.parquet")
    pd.testing.assert_frame_equal(after.drop(columns="geometry"), before["alerts"].drop(columns="geometry"))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "stats.parquet"), before["stats"])
    assert (xr.open_zarr(out / "cubes" / "zhalong-demo.zarr")["time"].values == before["cube"]).all()
    assert not (out / "outbox").exists() or not list((out / "outbox").glob("*.eml"))
    # the run published its summary as Prefect artifacts (markdown and table)
    md, table = _latest_artifact("amurwatch-nightly"), _latest_artifact("amurwatch-nightly-table")
    assert md.type == "markdown" and f"amurwatch nightly: {last}" in md.data
    assert "**3 of 3 landscapes succeeded**" in md.data
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert table.type == "table" and {r["landscape"] for r in rows} == {f["id"] for f in json.loads(
        (replay["archive"] / "aoi.geojson").read_text())["features"]}
    assert all(r["status"] == "ok" and r["new"] == 0 for r in rows)


def _latest_artifact(key: str):
    """The newest artifact with ``key``, read from Prefect's REST API.

    Prefect 3.8.8's clients send ``"flow_runs": null, "task_runs": null`` unless given filters,
    which its own API refuses (422); and an empty task-run filter joins on task runs, hiding the
    flow-level artifacts. So the request leaves those keys out."""
    import asyncio
    from types import SimpleNamespace

    from prefect.client.orchestration import get_client

    async def go():
        async with get_client() as c:
            r = await c._client.post("/artifacts/filter", json={
                "artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1, "offset": 0})
            r.raise_for_status()
            return r.json()

    got = asyncio.run(go())
    assert got, f"no artifact {key!r}"
    return SimpleNamespace(**got[0])


@contextmanager
def _failing_for(upstream: str, needle: str):
    """A loopback proxy in front of the STAC API that rejects every search mentioning ``needle``."""

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _go(self, body):
            if body and needle.encode() in body:
                self.send_response(400)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            req = urllib.request.Request(upstream + self.path, data=body, method=self.command,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                data = r.read().replace(upstream.encode(), f"http://127.0.0.1:{self.server.server_port}".encode())
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._go(None)

        def do_POST(self):
            self._go(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()


def test_a_landscape_whose_source_fails_leaves_the_others_complete(prefect_harness, small_archive, stac_api,
                                                                   tmp_path):
    from flows.demo import demo_settings
    from flows.nightly import nightly

    lands = json.loads((small_archive / "aoi.geojson").read_text())["features"]
    bad = lands[0]
    needle = json.dumps(bad["geometry"]["coordinates"][0][0][0])  # a longitude only its searches carry
    with _failing_for(stac_api.url, needle) as url:
        s = demo_settings(small_archive, tmp_path, url, None)
        over = json.loads(s.model_dump_json())
        # a real LocalCluster with worker processes this time
        over.update(io_retries=0, mail_dry_run=True, dask={"n_workers": 2, "threads_per_worker": 1, "processes": True})
        with pytest.raises(Exception, match=rf"1 landscape\(s\) failed: {bad['id']}: search"):
            nightly("2026-06-30", overrides=over)
    store = AlertStore.at(tmp_path)
    try:
        feed = store.feed().set_index("landscape_id")
        for f in lands[1:]:
            assert feed.loc[f["id"], "watermark"] is not None  # the others completed and moved on
            assert xr.open_zarr(tmp_path / "cubes" / f"{f['id']}.zarr").sizes["time"] > 0
        assert bad["id"] not in feed.index or pd.isna(feed.loc[bad["id"], "watermark"])
        assert not (tmp_path / "cubes" / f"{bad['id']}.zarr").exists()
    finally:
        store.close()
    assert (tmp_path / "alerts.parquet").exists()  # outputs were still published
    md = _latest_artifact("amurwatch-nightly")
    assert f"**{len(lands) - 1} of {len(lands)} landscapes succeeded**; failed: {bad['id']}" in md.data
