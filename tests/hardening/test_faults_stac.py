"""A loopback chaos proxy in front of the local STAC API: 5xx answers, timeouts, slow answers and
truncated JSON. Searches retry and return exactly what the API holds; nights run through the
proxy give the same outputs as nights run against the API directly; a dead API fails clearly."""

from __future__ import annotations

import http.server
import json
import threading
import time
import urllib.request
from collections import Counter
from contextlib import contextmanager

import pytest

from aoi.landscapes import load_landscapes
from demo.mailserver import MailCatcher
from sources.search import RetryPolicy, SearchError, search_items

from ..loopback import serve_http
from .test_kill import _assert_same, _old_digests, _finish, _outputs, _snapshot, _start

FAULTS = ("503", "timeout", "slow", "truncated")


@contextmanager
def chaos_proxy(upstream: str, schedule, *, hang_s: float = 3.0, slow_s: float = 0.4):
    """Forwards to ``upstream``; request ``n`` (from 0) gets the fault ``schedule(n)`` (None: none).

    503: an empty 503 answer; timeout: no answer for ``hang_s`` seconds, then a dropped
    connection; slow: the right answer ``slow_s`` seconds late; truncated: a 200 whose JSON body
    is cut in half (with a Content-Length that matches what is sent, so only the parser notices).
    """
    seen: Counter = Counter()
    lock = threading.Lock()
    count = {"n": 0}

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _go(self, body):
            with lock:
                n = count["n"]
                count["n"] += 1
            fault = schedule(n)
            seen[fault or "ok"] += 1
            if fault == "503":
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault == "timeout":
                time.sleep(hang_s)
                self.close_connection = True
                return
            req = urllib.request.Request(upstream + self.path, data=body, method=self.command,
                                         headers={"Content-Type": self.headers.get("Content-Type", "application/json")})
            with urllib.request.urlopen(req, timeout=30) as r:
                data = r.read().replace(upstream.encode(), f"http://127.0.0.1:{self.server.server_port}".encode())
                code = r.status
            if fault == "slow":
                time.sleep(slow_s)
            if fault == "truncated":
                data = data[: len(data) // 2]
            try:
                self.send_response(code)
                self.send_header("Content-Type", "application/geo+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self):
            self._go(None)

        def do_POST(self):
            self._go(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    with serve_http(H) as url:
        yield url, seen


def _kw(small_archive):
    land = {x.id: x for x in load_landscapes(small_archive / "aoi.geojson")}["hulunbuir-steppe-demo"]
    return dict(intersects=land.geometry, start="2026-04-01", end="2026-10-31",
                collections=["sentinel-2-c1-l2a", "landsat-c2-l2"], limit=20)


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_retried_and_the_search_is_complete(stac_api, small_archive, fault):
    kw = _kw(small_archive)
    direct = search_items(stac_api.url, **kw)
    # the fault on the landing page, on a page in the middle, twice in a row
    with chaos_proxy(stac_api.url, lambda n: fault if n in (0, 3, 4) else None) as (url, seen):
        got = search_items(url, retry=RetryPolicy(retries=3, backoff_s=0.05, timeout_s=1.0), **kw)
    assert seen[fault] == 3
    assert [i["id"] for i in got] == [i["id"] for i in direct] and len(got) > 40
    assert [json.loads(json.dumps(i).replace(url, stac_api.url)) for i in got] == direct


def test_a_dead_api_fails_clearly(stac_api, small_archive):
    with chaos_proxy(stac_api.url, lambda n: "503") as (url, _):
        with pytest.raises(SearchError, match=r"failed after 2 retries.*Fix: check the URL"):
            search_items(url, retry=RetryPolicy(retries=2, backoff_s=0.01), **_kw(small_archive))
    with chaos_proxy(stac_api.url, lambda n: "truncated") as (url, _):
        with pytest.raises(SearchError, match="failed after 2 retries"):
            search_items(url, retry=RetryPolicy(retries=2, backoff_s=0.01), **_kw(small_archive))


@pytest.mark.slow
def test_nights_through_the_chaos_proxy_equal_nights_without_it(zygote, replay, reference, tmp_path):  # noqa: F811
    ref, _ = reference
    cycle = ["503", "truncated", "slow"]
    out = _snapshot(replay, tmp_path / "chaos")
    with chaos_proxy(replay["api"], lambda n: cycle[(n // 2) % 3] if n % 2 == 1 else None) as (url, seen), \
            MailCatcher(tmp_path / "chaos-mail") as mc:
        _finish(_start(zygote, dict(replay, api=url), out, mc.port))
    assert all(seen[f] >= 1 for f in cycle) and sum(seen[f] for f in cycle) >= 5, seen
    _assert_same(ref, _outputs(out, tmp_path / "chaos-mail"), -2, _old_digests(replay))
