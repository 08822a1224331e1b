"""Shared fixtures: a small demo archive (session-scoped) and a real STAC API on loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = (REPO / ".." / "shared" / "data" / "real").resolve()

os.environ.setdefault("GDAL_NUM_THREADS", "1")

#: the test modules whose tests use the session's ``replay`` (minutes to build): under pytest-xdist
#: (``make test`` runs two workers, and session fixtures are built once per worker) they all run on
#: one worker, so the replay is built once. ``pytest_collection_modifyitems`` checks the list.
REPLAY_MODULES = ("tests/flows/test_cli.py", "tests/flows/test_e2e.py", "tests/hardening/test_faults_stac.py",
                  "tests/hardening/test_kill.py", "tests/hardening/test_scaleout.py",
                  "tests/hardening/test_security.py")
#: modules with an expensive module-scoped fixture: each runs whole on one worker
WHOLE_MODULES = ("tests/processors/test_chain_accuracy.py", "tests/processors/test_incremental.py")


def pytest_collection_modifyitems(config, items):
    stray = sorted({i.nodeid.split("::")[0] for i in items if "replay" in i.fixturenames} - set(REPLAY_MODULES))
    if stray:
        raise pytest.UsageError(f"{', '.join(stray)} use the `replay` fixture: add them to REPLAY_MODULES in "
                                "tests/conftest.py, so that pytest-xdist builds the replay once")


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` (what ``make test`` passes), with the groups decided here by module:
    pytest-xdist 3.8's own ``xdist_group`` marks have no effect under pytest 9.2 (it renames
    ``item._nodeid``, which pytest no longer reads), so the replay would be built on both workers."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0]
            if module in REPLAY_MODULES:
                return "replay"
            return module if module in WHOLE_MODULES else nodeid

    return SharedFixtureScheduling(config, log)


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
