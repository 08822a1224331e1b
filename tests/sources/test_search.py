"""Search: the local STAC API end to end, static catalogs and ItemCollections, retries, merging, signing."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import urllib.parse
import urllib.request
from contextlib import contextmanager

import numpy as np
import pytest
import rasterio

from aoi import load_landscapes
from demo.generate import load_world
from demo.physics import surface_reflectance
from sources.load import load_reflectance
from sources.profiles import detect_profile
from sources.search import RetryPolicy, SearchError, merge_duplicates, search_items, sign_items, solar_date

from .conftest import as_planetary_computer, demo_items

COLS = ["sentinel-2-c1-l2a", "landsat-c2-l2"]


def _land(root, lid):
    return {x.id: x for x in load_landscapes(root / "aoi.geojson")}[lid]


def test_search_and_load_through_the_local_stac_api_match_truth(stac_api, small_archive):
    land = _land(small_archive, "greater-khingan-demo")
    items = search_items(stac_api.url, intersects=land.geometry, start="2026-06-01", end="2026-08-31",
                         collections=COLS, max_cloud=60, limit=5)  # small pages: paging is exercised
    static = demo_items(small_archive, "sentinel-2-c1-l2a", "51UVR") + demo_items(small_archive, "landsat-c2-l2", "122024")
    expected = {i["id"] for i in static if "2026-06-01" <= i["properties"]["datetime"][:10] <= "2026-08-31"
                and i["properties"]["eo:cloud_cover"] <= 60}
    assert {i["id"] for i in items} == expected and len(items) > 10
    assert all(i["properties"]["eo:cloud_cover"] <= 60 for i in items)
    ds, rep = load_reflectance(items, land.grid(10))
    assert not rep.skipped and ds.sizes["time"] == len(items)
    world = load_world(42, "small", "greater-khingan-demo")
    g = world.aoi_grid
    c0 = int(round((g.bounds[0] - world.grid.bounds[0]) / 10))
    r0 = int(round((world.grid.bounds[3] - g.bounds[3]) / 10))
    s2 = [t for t in range(ds.sizes["time"]) if ds.platform.values[t].startswith("sentinel")]
    errs = []
    for t in s2:
        truth, _ = surface_reflectance(world, dt.date.fromisoformat(str(ds.solar_date.values[t])))
        nd_truth = (truth[3] - truth[2]) / (truth[3] + truth[2])
        nd_truth = nd_truth[r0:r0 + g.height, c0:c0 + g.width]
        sky = rasterio.open(small_archive / "truth" / "greater-khingan-demo" / "sky" / f"{ds.item_id.values[t]}.tif").read(1)
        nd = ((ds.nir - ds.red) / (ds.nir + ds.red)).isel(time=t).values
        m = np.isfinite(nd) & (sky == 0)
        errs.append(nd[m] - nd_truth[m])
    e = np.concatenate(errs)
    assert np.sqrt(np.mean(e ** 2)) < 0.02  # NDVI RMSE on truly clear pixels


def test_static_catalog_and_item_collection(small_archive, tmp_path):
    land = _land(small_archive, "zhalong-demo")
    a = search_items(small_archive / "catalog.json", intersects=land.geometry, start="2026-05-01", end="2026-05-31")
    assert a and {detect_profile(i).name for i in a} == {"demo/sentinel-2-c1-l2a", "demo/landsat-c2-l2"}
    assert all(i["assets"]["blue"]["href"].startswith("/") for i in a)  # relative hrefs resolved
    ic = tmp_path / "items.json"
    ic.write_text(json.dumps({"type": "FeatureCollection", "features": a}))
    b = search_items(ic, intersects=land.geometry, start="2026-05-10", end="2026-05-20", collections=["landsat-c2-l2"])
    assert b and {i["id"] for i in b} == {i["id"] for i in a if i["collection"] == "landsat-c2-l2"
                                          and "2026-05-10" <= i["properties"]["datetime"][:10] <= "2026-05-20"}
    far = {"type": "Point", "coordinates": [100.0, 30.0]}
    assert search_items(ic, intersects=far, start="2026-01-01", end="2026-12-31") == []


def test_reversed_dates_and_missing_source(small_archive, tmp_path):
    land = _land(small_archive, "zhalong-demo")
    with pytest.raises(SearchError, match="end 2026-01-01 is before start 2026-06-01; swap them"):
        search_items(small_archive / "catalog.json", intersects=land.geometry, start="2026-06-01", end="2026-01-01")
    with pytest.raises(SearchError, match="does not exist"):
        search_items(tmp_path / "nope.json", intersects=land.geometry, start="2026-06-01", end="2026-07-01")


@contextmanager
def flaky_proxy(upstream: str, failures: int = 0, status: int = 503, delay_first_s: float = 0.0):
    """A loopback HTTP proxy that answers the first ``failures`` requests with ``status``, and holds
    the very first request ``delay_first_s`` seconds before answering it."""
    import time as _time

    state = {"seen": 0, "failed": 0}
    lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _forward(self, body: bytes | None):
            with lock:
                state["seen"] += 1
                first = state["seen"] == 1
                fail = state["failed"] < failures
                if fail:
                    state["failed"] += 1
            if first and delay_first_s:
                _time.sleep(delay_first_s)
            if fail:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            req = urllib.request.Request(upstream + self.path, data=body, method=self.command,
                                         headers={"Content-Type": self.headers.get("Content-Type", "application/json")})
            with urllib.request.urlopen(req, timeout=30) as r:
                data = r.read().replace(upstream.encode(), f"http://127.0.0.1:{self.server.server_port}".encode())
                try:
                    self.send_response(r.status)
                    self.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on a slow answer, as it should

        def do_GET(self):
            self._forward(None)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            self._forward(self.rfile.read(n))

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}", state
    finally:
        srv.shutdown()
        srv.server_close()


def test_503_twice_then_200_still_gives_the_full_search(stac_api, small_archive):
    land = _land(small_archive, "hulunbuir-steppe-demo")
    kw = dict(intersects=land.geometry, start="2026-04-01", end="2026-10-31", collections=COLS, limit=20)
    direct = search_items(stac_api.url, **kw)
    with flaky_proxy(stac_api.url, failures=2) as (url, state):
        got = search_items(url, retry=RetryPolicy(retries=3, backoff_s=0.05), **kw)
    assert state["failed"] == 2 and state["seen"] > 2
    assert [i["id"] for i in got] == [i["id"] for i in direct] and len(got) > 40


def test_persistent_5xx_fails_clearly(stac_api, small_archive):
    land = _land(small_archive, "hulunbuir-steppe-demo")
    with flaky_proxy(stac_api.url, failures=10_000) as (url, _):
        with pytest.raises(SearchError, match="failed after 2 retries"):
            search_items(url, intersects=land.geometry, start="2026-04-01", end="2026-10-31", collections=COLS,
                         retry=RetryPolicy(retries=2, backoff_s=0.01))


def test_same_acquisition_from_two_providers_is_merged(small_archive):
    its = demo_items(small_archive, "sentinel-2-c1-l2a", "50UQV", "2026-07")[:3]
    es = [dict(i, properties={k: v for k, v in i["properties"].items() if k != "processing:software"}) for i in its]
    pc = [as_planetary_computer(i) for i in its]
    for p in pc:  # Planetary Computer stamps the datatake start, a few minutes earlier
        t = dt.datetime.fromisoformat(p["properties"]["datetime"].replace("Z", "+00:00")) - dt.timedelta(minutes=4)
        p["properties"]["datetime"] = t.isoformat().replace("+00:00", "Z")
    merged = merge_duplicates(pc + es)
    assert len(merged) == 3
    assert all(detect_profile(m).provider == "earth-search" for m in merged)
    assert all(m["properties"]["amurwatch:alternates"][0].startswith("planetary-computer/") for m in merged)
    assert solar_date(merged[0]) == solar_date(pc[0])


def test_planetary_computer_hrefs_are_signed_through_the_sdk(monkeypatch):
    """A loopback SAS-token endpoint stands in for the Planetary Computer token service."""
    calls = []

    class T(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            calls.append(self.path)
            body = json.dumps({"msft:expiry": "2099-01-01T00:00:00Z", "token": "sv=2099&sig=TEST"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), T)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("PC_SDK_SAS_URL", f"http://127.0.0.1:{srv.server_port}/api/sas/v1/token")
        import planetary_computer.settings as pcs
        import planetary_computer.sas as sas

        pcs.Settings.get.cache_clear()
        sas.TOKEN_CACHE.clear()
        from tests.conftest import SHARED_REAL

        feats = json.loads((SHARED_REAL / "stac-responses" / "planetarycomputer_landsat-c2-l2.json").read_text())["features"]
        es = json.loads((SHARED_REAL / "stac-responses" / "earth-search_landsat-c2-l2.json").read_text())["features"]
        signed = sign_items(feats[:2] + es[:1])
        href = signed[0]["assets"]["red"]["href"]
        assert "sig=TEST" in href and urllib.parse.urlparse(href).netloc.endswith(".blob.core.windows.net")
        assert calls and "landsateuwest" in calls[0]
        assert signed[2]["assets"]["red"]["href"] == es[0]["assets"]["red"]["href"]  # Earth Search: untouched
        assert signed[2]["assets"]["red"]["href"].startswith("s3://usgs-landsat/")  # requester pays, documented
    finally:
        srv.shutdown()
        srv.server_close()
        import planetary_computer.settings as pcs

        pcs.Settings.get.cache_clear()


def test_a_read_timeout_is_retried(stac_api, small_archive):
    """The first request hangs past the client timeout; the retry gets the answer."""
    land = _land(small_archive, "zhalong-demo")
    with flaky_proxy(stac_api.url, delay_first_s=1.5) as (url, state):  # longer than the 0.5 s timeout
        got = search_items(url, intersects=land.geometry, start="2026-07-01", end="2026-07-31", collections=COLS,
                           retry=RetryPolicy(retries=3, backoff_s=0.05, timeout_s=0.5))
    assert state["seen"] >= 2 and got
