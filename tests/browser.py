"""Open a page in headless Chromium (Debian's ``chromium``) over the DevTools protocol and report
the images that did not load and every console error, uncaught exception and failed request."""

from __future__ import annotations

import json
import os
import re
import signal
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.sync.client import connect


@dataclass
class PageCheck:
    images: list[dict] = field(default_factory=list)  #: src, complete, width
    errors: list[str] = field(default_factory=list)

    @property
    def broken_images(self) -> list[str]:
        return [i["src"] for i in self.images if not i["complete"] or i["width"] == 0]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise RuntimeError("chromium is not installed; `make test` installs it (apt-get install chromium)")
    return exe


def check_page(path: Path, *, timeout_s: float = 60.0) -> PageCheck:
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-port=0",
                                 f"--user-data-dir={profile}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            url = None
            t0 = time.monotonic()
            while url is None and time.monotonic() - t0 < timeout_s:
                line = proc.stderr.readline()
                m = re.search(r"(ws://\S+)", line or "")
                if m:
                    url = m.group(1)
                elif not line and proc.poll() is not None:
                    break
            if url is None:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            return _drive(url, Path(path).resolve().as_uri(), timeout_s)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # chromium's helpers too, before the profile goes
            except ProcessLookupError:
                pass
            proc.wait()


def _drive(ws_url: str, page_url: str, timeout_s: float) -> PageCheck:
    out = PageCheck()
    with connect(ws_url, max_size=None, open_timeout=timeout_s) as ws:
        n = 0

        def send(method, params=None, session=None):
            nonlocal n
            n += 1
            msg = {"id": n, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            ws.send(json.dumps(msg))
            return n

        def wait(pred, what):
            t0 = time.monotonic()
            while time.monotonic() - t0 < timeout_s:
                m = json.loads(ws.recv(timeout=timeout_s))
                _collect(m, out)
                if pred(m):
                    return m
            raise TimeoutError(f"chromium: no {what} within {timeout_s} s")

        i = send("Target.createTarget", {"url": "about:blank"})
        target = wait(lambda m: m.get("id") == i, "target")["result"]["targetId"]
        i = send("Target.attachToTarget", {"targetId": target, "flatten": True})
        session = wait(lambda m: m.get("id") == i, "session")["result"]["sessionId"]
        for method in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
            i = send(method, session=session)
            wait(lambda m, i=i: m.get("id") == i, method)
        send("Page.navigate", {"url": page_url}, session=session)
        wait(lambda m: m.get("method") == "Page.loadEventFired", "load event")
        expr = ("JSON.stringify(Array.from(document.images).map(i => "
                "({src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth})))")
        i = send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=session)
        res = wait(lambda m: m.get("id") == i, "evaluation")
        out.images = json.loads(res["result"]["result"]["value"])
    return out


def _collect(m: dict, out: PageCheck) -> None:
    method, p = m.get("method"), m.get("params", {})
    if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        out.errors.append("console.error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
    elif method == "Runtime.exceptionThrown":
        out.errors.append("exception: " + p["exceptionDetails"].get("text", "") + " "
                          + str(p["exceptionDetails"].get("exception", {}).get("description", "")))
    elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
        out.errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    elif method == "Network.loadingFailed":
        out.errors.append(f"request failed: {p.get('errorText')}")
