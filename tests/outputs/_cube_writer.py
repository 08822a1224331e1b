"""Subprocess for the kill tests: writes the nightly batches B then C into a cube holding batch A.

Run as ``python tests/outputs/_cube_writer.py STORE``; prints ``ready`` once imported, so the
test can time its SIGKILL against the writes themselves.

``python tests/outputs/_cube_writer.py --zygote`` imports once, then forks one writer per STORE
line read from stdin: it prints ``pid N`` for each (the writer prints ``ready`` and ``done``), waits
for the next line (the test has killed the writer, or let it finish), reaps the writer and prints
``exit N STATUS``. Until it is reaped the pid cannot be reused, so the test's kill never hits
another process. Trials no longer pay for importing zarr, xarray and dask each time. The zygote
runs no threads (nothing computed before a fork), so no child inherits a held lock.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import make_slices  # noqa: E402

from outputs.cube import CubeStore  # noqa: E402

SHAPE = (640, 640)
BATCH_A = ["2026-05-01", "2026-05-06", "2026-05-11"]
BATCH_B = ["2026-05-16", "2026-05-21", "2026-05-26", "2026-05-31", "2026-06-05"]  # appends
BATCH_C = ["2026-05-13", "2026-06-10"]  # a late scene (inserted) and a new one


def batch(times):
    return make_slices(times, shape=SHAPE, seed=3)


def write(url: str) -> None:
    store = CubeStore(url)
    b, c = batch(BATCH_B), batch(BATCH_C)
    print("ready", flush=True)
    store.write(b)
    store.write(c)
    print("done", flush=True)


def zygote() -> None:
    print("zygote", flush=True)
    for line in sys.stdin:
        url = line.strip()
        if not url:
            continue
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the writer
            try:
                write(url)
            finally:
                os._exit(0)
        print(f"pid {pid}", flush=True)
        sys.stdin.readline()  # reaped only when the test says so: until then its pid stays its own (a zombie)
        _, status = os.waitpid(pid, 0)
        print(f"exit {pid} {status}", flush=True)


if __name__ == "__main__":
    zygote() if sys.argv[1] == "--zygote" else write(sys.argv[1])
