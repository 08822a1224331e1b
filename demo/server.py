"""Serve an archive's collections and items over a real STAC API on loopback (``rustac serve``).

``rustac serve`` runs its in-memory backend: it answers ``/search`` by bbox, intersects, datetime,
collections, ids, with paging, but it **ignores CQL2 ``filter`` and ``query``**. Filter
``eo:cloud_cover`` on the client side.

rustac resolves relative links against its own working directory, not against the file that holds
them, so :func:`prepare_for_serving` writes one ItemCollection per collection with absolute asset
hrefs and hands those to the server.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import requests

from aoi.errors import AmurwatchError
from sources.search import iter_static_items

__all__ = ["StacServer", "StacServerError", "serve_archive", "prepare_for_serving", "free_port", "rustac_executable"]


class StacServerError(AmurwatchError):
    """The local STAC API could not be started, or the archive cannot be served."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def rustac_executable() -> str:
    """Path of the ``rustac`` CLI installed beside this Python (the ``rustac`` PyPI package)."""
    here = Path(sys.executable).parent / "rustac"
    if here.exists():
        return str(here)
    found = shutil.which("rustac")
    if not found:
        raise StacServerError("the 'rustac' command was not found; install the pinned environment with `make env` "
                              "(it comes with the rustac package)")
    return found


def prepare_for_serving(archive: str | Path, workdir: str | Path) -> list[Path]:
    """Write, under ``workdir``, each collection of a static catalog and an ItemCollection of its items
    with absolute asset hrefs. Returns the files to hand to ``rustac serve``.
    """
    root = Path(archive).resolve()
    cat = root / "catalog.json"
    if not cat.exists():
        raise StacServerError(f"{str(root)!r} has no catalog.json; is it a STAC archive? Generate the demo one with "
                              f"`amurwatch demo generate {root}`")
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for link in json.loads(cat.read_text())["links"]:
        if link.get("rel") != "child":
            continue
        col_path = (root / link["href"]).resolve()
        col = json.loads(col_path.read_text())
        items = []
        for item in iter_static_items(col_path):  # follows item links, makes asset hrefs absolute
            item["links"] = []
            item["collection"] = col["id"]
            items.append(item)
        col["links"] = []
        cp = wd / f"{col['id']}.collection.json"
        cp.write_text(json.dumps(col))
        ip_ = wd / f"{col['id']}.items.json"
        ip_.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
        out += [cp, ip_]
    if not out:
        raise StacServerError(f"{str(cat)!r} links no collections (rel=child)")
    return out


class StacServer:
    """A ``rustac serve`` process on loopback. Use as a context manager; it is stopped on exit.

    Attributes
    ----------
    url : str
        Root URL of the STAC API, e.g. ``http://127.0.0.1:7822``.
    """

    def __init__(self, archive: str | Path, *, host: str = "127.0.0.1", port: int | None = None,
                 startup_timeout_s: float = 60.0):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise StacServerError(f"host {host!r} is not loopback; the demo STAC API only binds 127.0.0.1 or ::1")
        self.archive = Path(archive)
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self.n_items = 0

    def start(self) -> "StacServer":
        self._tmp = tempfile.TemporaryDirectory(prefix="amurwatch-stac-")
        files = prepare_for_serving(self.archive, self._tmp.name)
        self.n_items = sum(len(json.loads(f.read_text())["features"]) for f in files if f.name.endswith(".items.json"))
        cmd = [rustac_executable(), "serve", "--addr", f"{self.host}:{self.port}", *map(str, files)]
        log = open(Path(self._tmp.name) / "rustac.log", "wb")
        # own process group, so that stop() also ends anything rustac spawned
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self._tmp.name,
                                      start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                msg = (Path(self._tmp.name) / "rustac.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise StacServerError(f"rustac serve exited with code {self._proc.returncode}: {msg}")
            try:
                r = requests.get(f"{self.url}/collections", timeout=2)
                if r.ok and r.json().get("collections"):
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise StacServerError(f"rustac serve did not answer on {self.url} within {self.startup_timeout_s:.0f} s")

    def stop(self) -> None:
        p, self._proc = self._proc, None
        if p is not None and p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def is_running(self) -> bool:
        """Whether the rustac process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def __enter__(self) -> "StacServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):  # last resort: never leave an orphan server behind
        with contextlib.suppress(Exception):
            self.stop()


@contextlib.contextmanager
def serve_archive(archive: str | Path, **kw) -> Iterator[StacServer]:
    """``with serve_archive(dir) as api: Client.open(api.url)`` -- a STAC API for the block's duration."""
    srv = StacServer(archive, **kw)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
