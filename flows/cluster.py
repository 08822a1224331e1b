"""The dask.distributed client of a run: an existing scheduler, or a LocalCluster sized for the machine."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator

from .settings import DaskSettings

__all__ = ["dask_client", "default_layout"]

log = logging.getLogger(__name__)


def default_layout(cores: int | None = None) -> tuple[int, int]:
    """(workers, threads per worker) for a LocalCluster.

    GDAL decoding and NumPy release the GIL, so threads share the cube chunks without copies; one
    process per 4 cores keeps Python-heavy steps (vectorising, the STAC client) from serialising.
    ``benchmarks/nightly.py --layouts`` measures the alternatives.
    """
    n = cores or os.cpu_count() or 1
    workers = max(1, n // 4)
    return workers, max(1, n // workers)


@contextlib.contextmanager
def dask_client(cfg: DaskSettings) -> Iterator["object"]:
    """A ``distributed.Client`` for the block; dask computations inside go to it."""
    from distributed import Client, LocalCluster

    if cfg.scheduler_address:
        log.info("using the dask scheduler at %s", cfg.scheduler_address)
        with Client(cfg.scheduler_address, set_as_default=True) as client:
            yield client
        return
    w, t = default_layout()
    kw = {"n_workers": cfg.n_workers or w, "threads_per_worker": cfg.threads_per_worker or t,
          "processes": cfg.processes, "dashboard_address": ":0"}  # a free port: never "8787 in use"
    if cfg.memory_limit:
        kw["memory_limit"] = cfg.memory_limit
    with LocalCluster(**kw) as cluster, Client(cluster, set_as_default=True) as client:
        log.info("LocalCluster: %d workers x %d threads (processes=%s)", kw["n_workers"], kw["threads_per_worker"],
                 cfg.processes)
        yield client
