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
