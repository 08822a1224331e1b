"""Scale-out on real engines: the nightly flow (Prefect harness) against an external ``dask scheduler``
with two ``dask worker`` processes on loopback, writing its cubes to an S3-compatible server on
loopback (moto in server mode, spoken to over HTTP by s3fs). The outputs equal those of the same
nights run locally (the reference of the SIGKILL trials)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demo.mailserver import MailCatcher

from ..outputs.conftest import free_port
from .test_kill import NIGHTS, _assert_same, _old_digests, _outputs

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture
def s3_server():
    from moto.server import ThreadedMotoServer

    port = free_port()
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    srv.start()
    opts = {"key": "amurwatch-test", "secret": "amurwatch-test", "endpoint_url": f"http://127.0.0.1:{port}",
            "client_kwargs": {"region_name": "us-east-1"}}
    import boto3
    import s3fs

    boto3.client("s3", endpoint_url=opts["endpoint_url"], aws_access_key_id=opts["key"],
                 aws_secret_access_key=opts["secret"], region_name="us-east-1").create_bucket(Bucket="amurwatch-cubes")
    fs = s3fs.S3FileSystem(**opts)
    try:
        yield fs, opts
    finally:
        srv.stop()


@pytest.fixture
def dask_cluster(tmp_path):
    port = free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(1.0)
    for k in range(2):
        procs.append(subprocess.Popen([str(BIN / "dask"), "worker", addr, "--nthreads", "1", "--no-dashboard",
                                       "--memory-limit", "2GiB", "--local-directory", str(tmp_path / f"w{k}")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    from distributed import Client

    with Client(addr, timeout=60) as c:
        c.wait_for_workers(2, timeout=90)
        pids = list(c.run(lambda: __import__("os").getpid()).values())
    try:
        yield addr, pids
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def test_nightly_on_an_external_dask_cluster_with_cubes_on_s3_equals_a_local_run(
        replay, reference, prefect_harness, s3_server, dask_cluster, tmp_path):  # noqa: F811
    from distributed import Client

    from flows.demo import demo_settings
    from flows.nightly import nightly

    ref, _ = reference
    fs, opts = s3_server
    addr, worker_pids = dask_cluster
    out = tmp_path / "out"
    shutil.copytree(replay["snapshot"], out)
    fs.put(str(out / "cubes"), "amurwatch-cubes/cubes", recursive=True)  # the cubes move to the bucket
    shutil.rmtree(out / "cubes")
    with Client(addr) as c:
        tasks_before = c.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
    with MailCatcher(tmp_path / "mail") as mc:
        s = demo_settings(replay["archive"], out, replay["api"], mc.port)
        over = json.loads(s.model_dump_json())
        over.update(cubes="s3://amurwatch-cubes/cubes", storage_options=opts, dask={"scheduler_address": addr})
        for night in NIGHTS:
            res = nightly(night, overrides=over)
            assert not res["failed"], res
    assert not (out / "cubes").exists()  # nothing went to the local disk
    with Client(addr) as c:
        tasks_after = c.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter)
        assert sorted(c.run(lambda: __import__("os").getpid()).values()) == sorted(worker_pids)
    assert tasks_after > tasks_before  # the array work ran on the external workers
    fs.get("amurwatch-cubes/cubes", str(out / "cubes"), recursive=True)  # to compare with the local run
    _assert_same(ref, _outputs(out, tmp_path / "mail"), -3, _old_digests(replay))
    cat = json.loads((out / "stac" / "catalog.json").read_text())
    assert cat["id"] == "amurwatch-outputs"
    item = next((out / "stac").rglob("greater-khingan-demo.json"))
    assert json.loads(item.read_text())["assets"]["data"]["href"].startswith("s3://amurwatch-cubes/cubes/")
