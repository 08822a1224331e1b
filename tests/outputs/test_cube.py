"""The cube store: the contract (xarray, rioxarray, GDAL), idempotent upserts, order, checksums, kills."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

from outputs.cube import CHUNKS, CubeError, CubeGridError, CubeStore, open_cube

from .conftest import make_slices

HERE = Path(__file__).resolve().parent


def _digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _equal(ds: xr.Dataset, ref: xr.Dataset) -> bool:
    if not np.array_equal(ds["time"].values, ref["time"].values):
        return False
    return all(np.array_equal(ds[v].values.astype(np.float64), ref[v].values.astype(np.float64), equal_nan=True)
               for v in ("ndvi", "nbr", "clear", "water"))


def test_contract_round_trip(tmp_path):
    url = tmp_path / "cubes" / "zhalong.zarr"
    s = make_slices(["2026-05-01", "2026-05-06"])
    CubeStore(url).write(s)
    ds = xr.open_zarr(url, decode_coords="all")  # plain xarray, consolidated by default
    assert ds.rio.crs.to_epsg() == 32651
    assert ds.rio.transform() == s.rio.transform()
    assert dict(ds.sizes) == {"time": 2, "y": 40, "x": 50}
    assert ds["ndvi"].dtype == np.float32 and ds["ndvi"].attrs["units"] == "1"
    assert ds["ndvi"].encoding["grid_mapping"] == "spatial_ref" and "long_name" in ds["ndvi"].attrs  # decoded CF
    assert ds["time"].encoding["units"] == "seconds since 1970-01-01"
    assert list(ds["item_id"].values) == ["S2_20260501", "S2_20260506"]
    np.testing.assert_array_equal(ds["ndvi"].values, s["ndvi"].values)
    np.testing.assert_array_equal(ds["water"].values, s["water"].values)  # NaN where not observed
    assert ds["ndvi"].encoding["chunks"] == (CHUNKS["time"], 40, 50)
    meta = json.loads((url / "ndvi" / ".zarray").read_text())
    assert meta["compressor"]["id"] == "zstd" and meta["compressor"]["checksum"] is True
    # GDAL (QGIS, rasterio) reads the same cube with its CRS and geotransform
    with rasterio.open(f'ZARR:"{url}":/ndvi:1') as r:
        assert r.crs.to_epsg() == 32651 and r.transform == s.rio.transform()
        np.testing.assert_array_equal(r.read(1), s["ndvi"].values[1])


def test_rerun_is_a_no_op_and_late_scenes_keep_time_sorted(tmp_path):
    url = tmp_path / "c.zarr"
    store = CubeStore(url)
    store.write(make_slices(["2026-05-01", "2026-05-11"]))
    before = _digest(url)
    rep = store.write(make_slices(["2026-05-01", "2026-05-11"]))
    assert not rep.wrote and rep.unchanged == 2
    assert _digest(url) == before
    rep = store.write(make_slices(["2026-05-06", "2026-05-16"]))  # one late scene, one new
    assert rep.rewritten_from == 1 and rep.added == ["2026-05-06T00:00:00", "2026-05-16T00:00:00"]
    ds = open_cube(url)
    assert _equal(ds, make_slices(["2026-05-01", "2026-05-06", "2026-05-11", "2026-05-16"]))
    assert list(ds["item_id"].values) == ["S2_20260501", "S2_20260506", "S2_20260511", "S2_20260516"]
    assert not (tmp_path / "c.zarr.txn").exists()
    # times() reads the committed coordinate without xarray: the same instants as xarray decodes
    assert store.times().equals(pd.DatetimeIndex(ds["time"].values))
    assert list(store.times().strftime("%Y-%m-%d")) == ["2026-05-01", "2026-05-06", "2026-05-11", "2026-05-16"]
    assert CubeStore(tmp_path / "none.zarr").times().empty


def test_a_changed_slice_is_replaced(tmp_path):
    url = tmp_path / "c.zarr"
    store = CubeStore(url)
    store.write(make_slices(["2026-05-01", "2026-05-06"]))
    late = make_slices(["2026-05-01"], seed=9)  # a second tile of the same solar day completes the mosaic
    rep = store.write(late)
    assert rep.replaced == ["2026-05-01T00:00:00"] and rep.added == []
    ds = open_cube(url)
    np.testing.assert_array_equal(ds["ndvi"].values[0], late["ndvi"].values[0])
    np.testing.assert_array_equal(ds["ndvi"].values[1], make_slices(["2026-05-06"])["ndvi"].values[0])


def test_bad_slices_are_refused_and_the_cube_is_untouched(tmp_path):
    url = tmp_path / "c.zarr"
    store = CubeStore(url)
    store.write(make_slices(["2026-05-01"]))
    before = _digest(url)
    with pytest.raises(CubeGridError, match=r"not the cube's \(40x50\).*load on the landscape's grid"):
        store.write(make_slices(["2026-05-06"], x0=450010.0))
    with pytest.raises(CubeGridError, match="CRS EPSG:32652 is not the cube's EPSG:32651"):
        store.write(make_slices(["2026-05-06"], epsg=32652))
    with pytest.raises(CubeError, match=r"lack \['water'\]"):
        store.write(make_slices(["2026-05-06"]).drop_vars("water"))
    with pytest.raises(CubeError, match="repeat a time label"):
        store.write(make_slices(["2026-05-06", "2026-05-06"]))
    assert _digest(url) == before


def test_annual_layers_have_their_own_groups(tmp_path):
    url = tmp_path / "c.zarr"
    store = CubeStore(url)
    with pytest.raises(CubeError, match="write observations before annual layers"):
        store.write_annual(xr.Dataset(), group="annual/forest")
    store.write(make_slices(["2026-05-01"]))
    s = make_slices(["2026-05-01"])
    ann = xr.Dataset({"grass_slope": (("year", "y", "x"), np.full((1, 40, 50), 0.01, np.float32)),
                      "grass_p_value": (("year", "y", "x"), np.full((1, 40, 50), 0.03, np.float32)),
                      "grass_class": (("year", "y", "x"), np.full((1, 40, 50), -1, np.int8))},
                     coords={"year": [2026], "y": s.y, "x": s.x}).rio.write_crs(32651)
    store.write_annual(ann, group="annual/grassland")
    store.write_annual(ann.assign_coords(year=[2025]), group="annual/grassland")  # an earlier year goes first
    fo = xr.Dataset({"forest_baseline": (("year", "y", "x"), np.ones((1, 40, 50), np.uint8)),
                     "forest_status": (("year", "y", "x"), np.full((1, 40, 50), 2, np.int8)),
                     "burn_severity": (("year", "y", "x"), np.full((1, 40, 50), -1, np.int8)),
                     "dnbr": (("year", "y", "x"), np.full((1, 40, 50), np.nan, np.float32))},
                    coords={"year": [2026], "y": s.y, "x": s.x}).rio.write_crs(32651)
    store.write_annual(fo, group="annual/forest")
    a = open_cube(url, group="annual/grassland")
    assert list(a["year"].values) == [2025, 2026] and a.rio.crs.to_epsg() == 32651
    assert float(a["grass_slope"][1, 0, 0]) == pytest.approx(0.01)
    f = xr.open_zarr(url, group="annual/forest", decode_coords="all")  # plain xarray, consolidated
    assert int(f["forest_status"][0, 0, 0]) == 2 and f.rio.crs.to_epsg() == 32651
    assert open_cube(url).sizes["time"] == 1  # the main group is unchanged
    with pytest.raises(CubeError, match="unknown annual group"):
        store.write_annual(fo, group="annual")


def test_a_flipped_bit_is_an_error_not_a_wrong_value(tmp_path):
    url = tmp_path / "c.zarr"
    CubeStore(url).write(make_slices(["2026-05-01"]))
    chunk = url / "ndvi" / "0.0.0"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    chunk.write_bytes(bytes(raw))
    with pytest.raises(Exception, match="(?i)checksum|corrupt|error"):
        open_cube(url)["ndvi"].values


def _state(url: Path) -> str:
    """'clean' or what a kill left behind."""
    txn = Path(str(url) + ".txn")
    left = []
    if Path(str(url) + ".txn.json").exists():
        left.append("journal")
    elif txn.exists():
        left.append("stage")
    if list(url.rglob("*.partial")):
        left.append("partial")
    store = CubeStore(url)
    shapes = store._committed_shapes()
    if json.loads((url / "ndvi" / ".zarray").read_text())["shape"] != list(shapes["ndvi"]):
        left.append("grown")
    return "+".join(left) or "clean"


@pytest.mark.slow
def test_kill_9_during_writes_then_rerun_equals_an_uninterrupted_run(tmp_path):
    sys.path.insert(0, str(HERE))
    from _cube_writer import BATCH_A, BATCH_B, BATCH_C, batch

    ref_url = tmp_path / "ref.zarr"
    ref = CubeStore(ref_url)
    ref.write(batch(BATCH_A))
    t0 = time.perf_counter()
    ref.write(batch(BATCH_B))
    ref.write(batch(BATCH_C))
    write_s = time.perf_counter() - t0
    want = open_cube(ref_url).load()
    valid = [open_cube(ref_url).isel(time=[0, 1, 2]).load(),  # before B
             open_cube(ref_url).isel(time=[0, 1, 2, 4, 5, 6, 7, 8]).load()]  # after B, before C

    rng = random.Random(42)
    states = []
    # each writer is forked from a zygote that imported everything once (see _cube_writer.py)
    zyg = subprocess.Popen([sys.executable, str(HERE / "_cube_writer.py"), "--zygote"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, text=True, cwd=HERE.parents[1])
    assert zyg.stdout.readline().strip() == "zygote"
    for trial in range(12):
        url = tmp_path / f"k{trial}.zarr"
        CubeStore(url).write(batch(BATCH_A))
        zyg.stdin.write(f"{url}\n")
        zyg.stdin.flush()
        lines = {zyg.stdout.readline().strip() for _ in range(2)}  # "pid N" and the writer's "ready"
        assert "ready" in lines, lines
        pid = int(next(x for x in lines if x.startswith("pid ")).split()[1])
        time.sleep(rng.uniform(0.0, 1.3 * write_s))
        os.kill(pid, signal.SIGKILL)  # a writer that finished is a zombie until reaped: the kill is a no-op
        zyg.stdin.write("reap\n")
        zyg.stdin.flush()
        while not (line := zyg.stdout.readline()).startswith(f"exit {pid} "):  # reaped by the zygote
            assert line, "the zygote died"
        state = _state(url)
        states.append(state)
        # whatever the kill left, the committed view opens and is one of the valid states
        seen = open_cube(url).load()
        if "journal" not in state:
            assert any(_equal(seen, v) for v in valid + [want]), f"trial {trial}: torn cube ({state})"
        # the next run repairs and redoes the nights: the result equals the uninterrupted run
        store = CubeStore(url)
        store.write(batch(BATCH_B))
        store.write(batch(BATCH_C))
        assert _equal(open_cube(url).load(), want), f"trial {trial} ({state})"
        assert _state(url) == "clean"
    zyg.stdin.close()
    assert zyg.wait(timeout=30) == 0
    dirty = [s for s in states if s != "clean"]
    print("kill states:", states)
    assert len(dirty) >= 3, f"too few kills landed in the middle of a write to prove anything: {states}"


def test_reflectance_bands_round_trip_as_scaled_int16(tmp_path):
    url = tmp_path / "c.zarr"
    s = make_slices(["2026-05-01"])
    rng = np.random.default_rng(1)
    for b in ("blue", "green", "red", "nir", "nir08", "swir16", "swir22"):
        v = rng.uniform(-0.05, 0.6, (1, 40, 50)).astype(np.float32)
        v[0, :3] = np.nan
        s[b] = (("time", "y", "x"), v)
    store = CubeStore(url)
    store.write(s)
    meta = json.loads((url / "red" / ".zarray").read_text())
    assert meta["dtype"] == "<i2" and meta["fill_value"] == -32768
    ds = open_cube(url)
    assert abs(float((ds["red"] - s["red"]).max())) <= 5e-5 + 1e-7
    assert bool(ds["red"][0, :3].isnull().all())
    assert not store.write(s).wrote  # the same data, quantised the same way: nothing to write
    with pytest.raises(CubeError, match=r"lack \['blue'"):
        store.write(make_slices(["2026-05-06"]))  # this cube keeps reflectance: every slice must have it


def test_an_fsspec_url_works_like_a_path():
    url = "memory://amurwatch-test/cubes/zhalong.zarr"
    store = CubeStore(url)
    store.write(make_slices(["2026-05-01", "2026-05-11"]))
    store.write(make_slices(["2026-05-06"]))  # a late scene: staged and journalled through fsspec
    assert not store.pending()
    ds = open_cube(url)
    assert _equal(ds, make_slices(["2026-05-01", "2026-05-06", "2026-05-11"]))
    assert ds.rio.crs.to_epsg() == 32651


def test_dask_backed_slices_are_written_in_bands_of_rows_and_equal_numpy_ones(tmp_path, monkeypatch):
    """A big landscape's lazy slices go to the cube one band of rows per compute (fresh cube, append,
    and a late slice inserted before the last): the cube equals the one written from memory."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    import outputs.cube as oc

    monkeypatch.setattr(oc, "ROW_BAND", 512)

    def slices(times, seed):
        rng = np.random.default_rng(seed)
        ny, nx = 1300, 300
        y, x = 5e6 - 5 - 10 * np.arange(ny), 4e5 + 5 + 10 * np.arange(nx)
        ds = xr.Dataset({v: (("time", "y", "x"), rng.random((len(times), ny, nx)).astype(np.float32))
                         for v in ["blue", "green", "red", "nir", "nir08", "swir16", "swir22", "ndvi", "nbr"]},
                        coords={"time": pd.to_datetime(times), "y": y, "x": x,
                                "item_id": ("time", [f"i{t}" for t in times]),
                                "platform": ("time", ["sentinel-2a"] * len(times))})
        ds["clear"] = ds["red"] > 0.2
        ds["water"] = (ds["nir"] > 0.5).astype(np.float32).where(ds["clear"])
        return ds.rio.write_crs(32651)

    eager, lazy = oc.CubeStore(tmp_path / "a.zarr"), oc.CubeStore(tmp_path / "b.zarr")
    for s in (slices(["2026-06-01", "2026-06-06"], 1), slices(["2026-06-11"], 2), slices(["2026-06-03"], 3)):
        eager.write(s)
        assert oc._row_bands(s) is None
        s_lazy = s.assign({v: s[v].chunk({"time": 1, "y": 256, "x": 256}) for v in s.data_vars})
        assert len(oc._row_bands(s_lazy)) == 3
        lazy.write(s_lazy)
    a, b = eager.open().load(), lazy.open().load()
    xr.testing.assert_identical(a, b)
    assert a.sizes["time"] == 4 and list(a["item_id"].values)[1] == "i2026-06-03"
