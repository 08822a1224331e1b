"""The archive's COGs served by a loopback HTTP server with Range support, read remotely through
GDAL's ``/vsicurl/``, with faults: 503 answers, bytes cut short, a missing file, a corrupt file.

Transient 503s are retried by GDAL and the scene loads; a scene that still fails is skipped and
reported (and stays out of the cube, so the next night's lookback tries it again). The slices that
do reach the cube equal, value for value, the same scenes ingested from local files.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from aoi.landscapes import load_landscapes
from flows import pipeline
from flows.demo import demo_settings

from ..loopback import serve_http
from ..sources.conftest import demo_items

pytestmark = pytest.mark.slow


@contextmanager
def cog_server(root: Path, faults: dict[str, str]):
    """Serves ``root`` with HTTP Range requests. ``faults`` maps a path (relative to root) to
    ``flaky`` (the first two requests get 503), ``truncated`` (reads past the header are cut
    short: half the bytes, then the connection closes), ``missing`` (404) or ``corrupt``
    (random bytes of the right length)."""
    hits: Counter = Counter()
    lock = threading.Lock()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def _serve(self, head: bool):
            rel = self.path.lstrip("/")
            with lock:
                hits[rel] += 1
                n = hits[rel]
            mode = faults.get(rel)
            p = root / rel
            if mode == "missing" or not p.is_file():
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if mode == "flaky" and n <= 2:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = p.read_bytes()
            if mode == "corrupt":
                data = np.random.default_rng(0).integers(0, 256, len(data), dtype=np.uint8).tobytes()
            size = len(data)
            m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            a, b = (int(m.group(1)), min(size - 1, int(m.group(2) or size - 1))) if m else (0, size - 1)
            body = data[a:b + 1]
            self.send_response(206 if m else 200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body)))
            if m:
                self.send_header("Content-Range", f"bytes {a}-{b}/{size}")
            self.end_headers()
            if head:
                return
            if mode == "truncated" and a > 0:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

        def do_GET(self):
            self._serve(False)

        def do_HEAD(self):
            self._serve(True)

    with serve_http(H) as url:
        yield url, hits


def _remote(items: list[dict], root: Path, base: str) -> list[dict]:
    out = []
    for it in items:
        it = {**it, "assets": {k: dict(a) for k, a in it["assets"].items()}}
        for a in it["assets"].values():
            a["href"] = f"{base}/{Path(a['href']).relative_to(root).as_posix()}"
        out.append(it)
    return out


@pytest.mark.parametrize("stream", [False, True], ids=["batched", "streamed"])
def test_remote_cogs_with_faults_are_retried_or_skipped_and_no_wrong_pixel_lands(small_archive, tmp_path,
                                                                                  monkeypatch, stream):
    """``streamed``: the remote run writes each slice lazily from the files to the cube, as on a
    landscape too big to load a slice in memory; it must equal the local, batched run."""
    monkeypatch.setenv("GDAL_DISABLE_READDIR_ON_OPEN", "EMPTY_DIR")
    monkeypatch.setenv("CPL_VSIL_CURL_ALLOWED_EXTENSIONS", ".tif")
    land = {x.id: x for x in load_landscapes(small_archive / "aoi.geojson")}["greater-khingan-demo"]
    items = [i for i in demo_items(small_archive, "sentinel-2-c1-l2a", "51UVR")
             if i["properties"]["datetime"][:7] in ("2026-06", "2026-07")]
    items = [i for i in items if i["properties"].get("eo:cloud_cover", 0) < 60][:8]
    assert len(items) >= 6
    rel = lambda it, key: Path(it["assets"][key]["href"]).relative_to(small_archive).as_posix()  # noqa: E731
    faults = {rel(items[1], k): "flaky" for k in items[1]["assets"] if k in ("red", "nir", "scl", "swir16")}
    faults[rel(items[2], "red")] = "truncated"
    faults[rel(items[3], "nir")] = "missing"
    faults[rel(items[4], "scl")] = "corrupt"
    local_s = demo_settings(small_archive, tmp_path / "local", "unused", None)
    ref = pipeline.ingest(local_s, land, items)
    assert ref.slices_written == len(items) and not ref.skipped
    if stream:
        monkeypatch.setattr(pipeline, "INGEST_BYTES", 1)
    with cog_server(small_archive, faults) as (base, hits):
        remote_s = demo_settings(small_archive, tmp_path / "remote", "unused", None)
        rep = pipeline.ingest(remote_s, land, _remote(items, small_archive, base))
    bad = [items[2]["id"], items[3]["id"], items[4]["id"]]  # cut short, missing, corrupt
    skipped = " ".join(rep.skipped)
    for iid in bad:
        assert iid in skipped, (iid, rep.skipped)
    assert items[1]["id"] not in skipped  # the 503s were retried
    assert any(hits[p] > 2 for p, m in faults.items() if m == "flaky")
    assert "read failed" in skipped  # the cut-short file failed at decode time, after its header passed
    assert rep.slices_written == len(items) - len(bad)
    got = xr.open_zarr(tmp_path / "remote" / "cubes" / f"{land.id}.zarr").load()
    want = xr.open_zarr(tmp_path / "local" / "cubes" / f"{land.id}.zarr").load()
    ids = [str(v) for v in got["item_id"].values]
    assert not set(bad) & set(ids) and items[1]["id"] in ids
    xr.testing.assert_identical(got, want.sel(time=got["time"]))
