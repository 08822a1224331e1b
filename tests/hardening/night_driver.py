"""Run nights of the nightly flow's body inline (no Prefect server), for the SIGKILL trials.

    python -m tests.hardening.night_driver '{"settings": {...}, "nights": ["2026-06-17", ...]}'
    python -m tests.hardening.night_driver --zygote

Exit 0 when every night completed. Everything it writes goes through the same code as the
``amurwatch-nightly`` flow (``flows.nightly.run_night`` with ``inline=True``), under the run lock.

``--zygote`` imports everything once and then forks one run per request (:class:`Zygote`, the
test side): each run is still its own process, in its own session (what the trials kill), but
it starts in milliseconds instead of re-importing prefect, xarray, dask and GDAL for seconds. The
zygote itself stays single-threaded, so a fork never copies a lock some other thread held.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path


def main(cfg: dict) -> int:
    from flows.nightly import run_lock, run_night
    from flows.settings import load_settings
    from outputs.alerts import AlertStore

    _mark_phases()
    settings = load_settings(None, **cfg["settings"])
    store = AlertStore(settings.state_url())
    try:
        with run_lock(store):
            print("ready", flush=True)  # imports done, lock held: the run proper starts
            for night in cfg["nights"]:
                s = run_night(settings, dt.date.fromisoformat(night), inline=True, report=True)
                if s.failed:
                    print(json.dumps(s.to_dict(), default=str), file=sys.stderr)
                    return 1
                print(f"night {night} done", flush=True)
    finally:
        store.close()
    return 0


def _mark_phases() -> None:
    """Print ``publish`` when a night reaches its last phase (exports, report, digests): the trials
    time part of their kills from it, so they reach the outbox whatever the machine's load."""
    import flows.nightly as nightly

    publish = nightly._publish  # each run is its own process and calls this once

    def marked(*args, **kwargs):
        print("publish", flush=True)
        return publish(*args, **kwargs)

    nightly._publish = marked


def _child(job: dict) -> None:
    """In the forked child: its own session, its output to the job's files, then the run."""
    os.setsid()
    out = os.open(job["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # fresh objects: no lock state copied from the zygote
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    rc = 1
    try:
        rc = main(job["cfg"])
    except BaseException:  # noqa: BLE001 - reported like an uncaught exception, then the exit code
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def zygote() -> int:
    """Read job lines (JSON) on stdin; answer ``pid N`` for each fork and ``exit N RC`` when it ends."""
    import flows.nightly  # noqa: F401 - the imports every run would otherwise repeat
    import flows.settings  # noqa: F401
    import outputs.alerts  # noqa: F401

    print("zygote ready", flush=True)
    running: set[int] = set()
    buf = b""
    stdin_open = True
    while stdin_open or running:
        if stdin_open and select.select([0], [], [], 0.005)[0]:
            chunk = os.read(0, 65536)
            stdin_open = bool(chunk)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                job = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(job)
                running.add(pid)
                print(f"pid {pid}", flush=True)
        elif not stdin_open:
            time.sleep(0.005)
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            running.discard(pid)
            print(f"exit {pid} {os.waitstatus_to_exitcode(status)}", flush=True)
    return 0


class Forked:
    """A run forked by the zygote, with the parts of ``subprocess.Popen`` the trials use."""

    def __init__(self, z: "Zygote", pid: int, stdout: Path, stderr: Path):
        self.zygote, self.pid, self._out, self._err = z, pid, stdout, stderr
        self.returncode: int | None = None

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Until the run prints ``ready`` (True), or ends without it (False)."""
        return self.wait_line("ready", timeout)

    def wait_line(self, line: str, timeout: float = 600.0) -> bool:
        """Until the run prints ``line`` (True), or ends without it (False)."""
        want = f"{line}\n".encode()
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self._out.exists() and (want in self._out.read_bytes().splitlines(keepends=True)):
                return True
            if self.poll() is not None:
                return want in self._out.read_bytes().splitlines(keepends=True)
            time.sleep(0.002)
        raise TimeoutError(f"run {self.pid} did not print {line!r} within {timeout} s")

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote._exit_of(self.pid, 0)
        return self.returncode

    def exited_within(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, returning early (True) if the run ends first."""
        if self.returncode is None:
            self.returncode = self.zygote._exit_of(self.pid, max(seconds, 0.0))
        return self.returncode is not None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.zygote._exit_of(self.pid, timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(f"run {self.pid}", timeout)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[bytes, bytes]:
        self.wait(timeout)
        return self._out.read_bytes(), self._err.read_bytes()


class Zygote:
    """The test side: start the zygote once, then :meth:`start` runs from it."""

    def __init__(self, repo: Path, scratch: Path, env: dict):
        self.scratch, self.n = scratch, 0
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.hardening.night_driver", "--zygote"], cwd=repo,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._lines: queue.Queue = queue.Queue()
        self._exits: dict[int, int] = {}
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._lines.get(timeout=300)
        assert first == "zygote ready", first

    def _read(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode().strip()
            if line.startswith("exit "):
                _, pid, rc = line.split()
                with self._cond:
                    self._exits[int(pid)] = int(rc)
                    self._cond.notify_all()
            else:
                self._lines.put(line)

    def _exit_of(self, pid: int, timeout: float | None) -> int | None:
        with self._cond:
            self._cond.wait_for(lambda: pid in self._exits, timeout=timeout)
            return self._exits.get(pid)

    def start(self, cfg: dict) -> Forked:
        self.n += 1
        out, err = self.scratch / f"run{self.n}.out", self.scratch / f"run{self.n}.err"
        self.proc.stdin.write((json.dumps({"cfg": cfg, "stdout": str(out), "stderr": str(err)}) + "\n").encode())
        self.proc.stdin.flush()
        line = self._lines.get(timeout=60)
        assert line.startswith("pid "), line
        return Forked(self, int(line.split()[1]), out, err)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=120)


if __name__ == "__main__":
    if sys.argv[1:] == ["--zygote"]:
        sys.exit(zygote())
    sys.exit(main(json.loads(sys.argv[1])))
