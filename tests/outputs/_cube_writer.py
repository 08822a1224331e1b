"""Subprocess for the kill tests: writes the nightly batches B then C into a cube holding batch A.

Run as ``python tests/outputs/_cube_writer.py STORE``; prints ``ready`` once imported, so the
test can time its SIGKILL against the writes themselves.
"""

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


if __name__ == "__main__":
    store = CubeStore(sys.argv[1])
    b, c = batch(BATCH_B), batch(BATCH_C)
    print("ready", flush=True)
    store.write(b)
    store.write(c)
    print("done", flush=True)
