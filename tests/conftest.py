"""Shared fixtures: a small demo archive (session-scoped) and a real STAC API on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = (REPO / ".." / "shared" / "data" / "real").resolve()

os.environ.setdefault("GDAL_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def small_archive(tmp_path_factory) -> Path:
    """The ``small`` demo archive (seed 42), generated once per test session."""
    from demo.generate import generate_archive

    root = tmp_path_factory.mktemp("archive") / "small"
    generate_archive(root, seed=42, size="small", workers=2)
    return root


@pytest.fixture(scope="session")
def stac_api(small_archive):
    """A ``rustac serve`` STAC API over the small archive, on a free loopback port."""
    from demo.server import StacServer

    with StacServer(small_archive) as srv:
        yield srv


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not SHARED_REAL.exists():
        pytest.fail(f"the real test data are missing: expected {SHARED_REAL} (../shared beside the repo)")
    return SHARED_REAL


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One Prefect test harness (a temporary local API) for every flow test of the session."""
    os.environ.setdefault("PREFECT_HOME", str(tmp_path_factory.mktemp("prefect-home")))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def replay(prefect_harness, small_archive, stac_api, tmp_path_factory):
    """The demo flow over the small archive: backfill, then a night every 14 days, mail to aiosmtpd."""
    from demo.mailserver import MailCatcher
    from flows.demo import demo_flow

    import shutil

    out = tmp_path_factory.mktemp("replay")
    snap = tmp_path_factory.mktemp("replay-snapshot") / SNAPSHOT_NIGHT

    def snapshot(label: str, k: int, n: int) -> None:
        # the outputs as they stood after a mid-season night, for the fault-injection tests
        if label == f"night {SNAPSHOT_NIGHT}":
            shutil.copytree(out, snap, ignore=shutil.ignore_patterns("mail"))
            from flows.nightly import LOCK_NAME
            from outputs.alerts import AlertStore

            st = AlertStore.at(snap)
            st.break_lock(LOCK_NAME)  # the copy is not held by the running demo
            st.close()

    with MailCatcher(out / "mail") as mc:
        res = demo_flow(str(small_archive), str(out), stac_api.url, mc.port, every_days=14, progress=snapshot)
    return {"out": out, "res": res, "mails": list(mc.received), "archive": small_archive, "api": stac_api.url,
            "snapshot": snap}


#: a night of the fortnightly replay (2026-04-01 + 14 k) before the fire of the small archive
SNAPSHOT_NIGHT = "2026-06-10"


class Postgres:
    """A real PostgreSQL server on loopback (Debian's binaries: ``make test`` installs them).

    ``database()`` creates a fresh database and returns its SQLAlchemy URL."""

    def __init__(self, port: int):
        self.port, self.n = port, 0

    def database(self) -> str:
        import psycopg

        self.n += 1
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=amurwatch dbname=postgres",
                             autocommit=True) as con:
            con.execute(f"CREATE DATABASE t{self.n}")
        return f"postgresql+psycopg://amurwatch@127.0.0.1:{self.port}/t{self.n}"


@pytest.fixture(scope="session")
def postgres():
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile
    import time

    import psycopg

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        pytest.fail("no PostgreSQL server binaries under /usr/lib/postgresql; run `make postgres` "
                    "(apt-get install postgresql)")
    bindir = found[-1].parent
    root = Path(tempfile.mkdtemp(prefix="amurwatch-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root: run them as the postgres user
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run(run_as + [str(bindir / "initdb"), "-D", str(data), "-U", "amurwatch", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(run_as + [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                                      "-k", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(f"host=127.0.0.1 port={port} user=amurwatch dbname=postgres").close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the PostgreSQL server did not start") from None
                time.sleep(0.2)
        yield Postgres(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)
