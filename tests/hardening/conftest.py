"""Fixtures the SIGKILL trials share with the other tests that compare a night with theirs
(chaos proxy, scale-out): one zygote and one uninterrupted reference night for the session."""

from __future__ import annotations

import os
import time

import pytest

from demo.mailserver import MailCatcher
from tests.hardening.night_driver import Zygote

from .test_kill import NIGHTS, REPO, _finish, _outputs, _snapshot, _start


@pytest.fixture(scope="session")
def zygote(tmp_path_factory):
    """Forks each run from one process that imported everything once (``night_driver --zygote``):
    every run is still a process of its own, killed as a whole, but its start-up is milliseconds,
    not the seconds of importing prefect, xarray, dask and GDAL again (half of each trial's time)."""
    z = Zygote(REPO, tmp_path_factory.mktemp("zygote"), {**os.environ, "PREFECT_LOGGING_LEVEL": "ERROR"})
    yield z
    z.close()


@pytest.fixture(scope="session")
def reference(zygote, replay, tmp_path_factory):
    """The nightly run once, uninterrupted, from the snapshot; with how long it took (seconds after
    ``ready``: ``run``, the whole of it; ``publish``, its last phase)."""
    tmp = tmp_path_factory.mktemp("kill-ref")
    ref_out = _snapshot(replay, tmp / "ref")
    with MailCatcher(tmp / "ref-mail") as mc:
        proc = _start(zygote, replay, ref_out, mc.port)
        assert proc.wait_ready()
        t0 = time.perf_counter()
        assert proc.wait_line("publish")  # the last phase: exports, report, digests
        t1 = time.perf_counter()
        _finish(proc)
        t2 = time.perf_counter()
    timing = {"run": t2 - t0, "publish": t2 - t1}  # the run proper (after start-up), and its last phase
    ref = _outputs(ref_out, tmp / "ref-mail")
    assert len(ref["message_ids"]) >= 1 and len(ref["alerts"]) >= 1  # the nights do mail and alert
    assert (ref["outbox"]["run_date"].astype(str) >= NIGHTS[0]).any()  # the nights add changes
    return ref, timing
