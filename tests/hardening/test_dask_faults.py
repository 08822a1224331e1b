"""A dask worker process killed (SIGKILL) in the middle of a computation on a LocalCluster with
worker processes: the scheduler reruns its tasks elsewhere and the result equals the in-memory one."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from processors.indices import ndvi

from ..processors.conftest import make_cube

pytestmark = pytest.mark.slow


def _slow(block: np.ndarray) -> np.ndarray:
    time.sleep(0.05)  # long enough that the kill lands while tasks are in flight
    return block


def test_a_worker_killed_mid_computation_changes_nothing():
    from distributed import Client, LocalCluster

    ds = make_cube(times=[f"2026-{m:02d}-{d:02d}" for m in (5, 6, 7) for d in (3, 13, 23)], shape=(96, 96), seed=3,
                   bands=("blue", "green", "red", "nir", "nir08", "swir16", "swir22"))
    ds = ds.assign_coords(time=ds.indexes["time"].floor("s"))
    ds = ds[["red", "nir"]]
    chunks = {"time": 1, "y": 32, "x": 32}
    # the same graph without the cluster (the same reduction tree, so the same bits)
    expect = ndvi(ds.chunk(chunks)["red"], ds.chunk(chunks)["nir"]).mean("time").compute(scheduler="sync").values
    lazy_ds = ds.chunk(chunks)
    lazy_ds = lazy_ds.map_blocks(lambda b: b.copy(data={k: _slow(v.values) for k, v in b.data_vars.items()}),
                                 template=lazy_ds)
    lazy = ndvi(lazy_ds["red"], lazy_ds["nir"]).mean("time")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        before = client.run(os.getpid)  # worker address -> process id
        fut = client.compute(lazy)
        time.sleep(1.5)  # tasks in flight (each block sleeps 50 ms: ~4 s of work on 2 workers)
        victim_pid = next(iter(before.values()))
        assert not fut.done(), "the computation finished before the kill: make the blocks slower"
        os.kill(victim_pid, signal.SIGKILL)
        got = fut.result(timeout=300)
        after = client.run(os.getpid)
    assert victim_pid not in after.values()  # the killed process is gone (the nanny started another)
    np.testing.assert_array_equal(got.values, expect)
