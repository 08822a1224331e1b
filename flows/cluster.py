"""The dask.distributed client of a run: an existing scheduler, or a LocalCluster sized for the machine."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

from .settings import DaskSettings

__all__ = ["dask_client", "default_layout"]

log = logging.getLogger(__name__)


def default_layout(cores: int | None = None) -> tuple[int, int, bool]:
    """(workers, threads per worker, processes) for a LocalCluster.

    GDAL decoding and NumPy release the GIL, so threads share the cube chunks without copies. On 2
    cores one in-process worker with 2 threads was fastest (``python -m benchmarks layouts``: worker
    processes pay for moving every chunk between processes). From 8 cores on, one process per 4
    cores keeps the Python-heavy steps of many tasks from queueing on one interpreter.
    """
    n = cores or os.cpu_count() or 1
    if n < 8:
        return 1, n, False
    workers = n // 4
    return workers, max(1, n // workers), True


@contextlib.contextmanager
def dask_client(cfg: DaskSettings) -> Iterator["object"]:
    """A ``distributed.Client`` for the block; dask computations inside go to it."""
    from distributed import Client, LocalCluster

    if cfg.scheduler_address:
        log.info("using the dask scheduler at %s", cfg.scheduler_address)
        with Client(cfg.scheduler_address, set_as_default=True) as client:
            yield client
        return
    w, t, p = default_layout()
    kw = {"n_workers": cfg.n_workers or w, "threads_per_worker": cfg.threads_per_worker or t,
          "processes": p if cfg.processes is None else cfg.processes,
          "dashboard_address": ":0"}  # a free port: never "8787 in use"
    if cfg.memory_limit:
        kw["memory_limit"] = cfg.memory_limit
    with LocalCluster(**kw) as cluster, Client(cluster, set_as_default=True) as client:
        log.info("LocalCluster: %d workers x %d threads (processes=%s)", kw["n_workers"], kw["threads_per_worker"],
                 kw["processes"])
        yield client
