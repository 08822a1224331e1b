"""A big landscape's annual layers: written a band of rows at a time, equal to the in-memory write.

The flow's annual write (``flows.pipeline._annual``) switches to banded, lazily sliced writes above
``DASK_READ_PX`` pixels (the 10,000 x 10,000 px benchmark peaked at 6 GB in the whole-array write).
The thresholds are lowered here so that a 70 x 50 px cube takes that path, under a real in-process
dask.distributed client, as in the nightly flow (a client would otherwise pickle the whole arrays
into each graph).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from distributed import Client

import flows.pipeline as pl
import outputs.cube as oc

from ..outputs.conftest import make_slices


def _layers(like: xr.DataArray, seed: int, tmp_path) -> dict[str, xr.DataArray]:
    rng = np.random.default_rng(seed)
    shape = like.shape
    dnbr = np.memmap(tmp_path / f"dnbr{seed}", dtype=np.float32, mode="w+", shape=shape)  # as after the strips
    dnbr[:] = np.where(rng.random(shape) < 0.2, rng.uniform(-0.1, 0.9, shape), np.nan)
    # the flow passes the layers as they are (bool forest): _annual casts them to the stored types
    return {"forest_baseline": like.copy(data=rng.random(shape) < 0.7),
            "forest_status": like.copy(data=rng.integers(0, 3, shape).astype(np.int8)),
            "burn_severity": like.copy(data=rng.integers(-1, 5, shape).astype(np.int8)),
            "dnbr": like.copy(data=dnbr)}


def _two_stores(tmp_path):
    """Two cubes of the same 70 x 50 px slice (one written whole, one in bands), the cube, a 2-D layer."""
    slices = make_slices(["2026-06-01"], shape=(70, 50))
    eager, banded = oc.CubeStore(tmp_path / "a.zarr"), oc.CubeStore(tmp_path / "b.zarr")
    for s in (eager, banded):
        s.write(slices)
    cube = banded.open()
    return eager, banded, cube, cube["ndvi"].isel(time=0, drop=True)


def test_big_annual_layers_are_written_in_bands_and_equal_the_in_memory_write(tmp_path, monkeypatch):
    eager, banded, cube, like = _two_stores(tmp_path)
    writes = []
    real_write_rows = oc.CubeStore._write_rows

    def spy(self, body, *, group, region):
        writes.append((group, oc._row_bands(body) is not None))
        return real_write_rows(self, body, group=group, region=region)

    monkeypatch.setattr(oc.CubeStore, "_write_rows", spy)
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"):
        # fresh group, then the same year replaced by other values, then an unchanged rewrite
        for seed in (1, 2, 2):
            lay = _layers(like, seed, tmp_path)
            pl._annual(eager, cube, "annual/forest", 2026, lay)
            with monkeypatch.context() as m:
                m.setattr(pl, "DASK_READ_PX", 100)
                m.setattr(pl, "ROW_BAND", 16)
                m.setattr(oc, "ROW_BAND", 16)
                pl._annual(banded, cube, "annual/forest", 2026, lay)
            a = oc.open_cube(eager.url, group="annual/forest").load()
            b = oc.open_cube(banded.url, group="annual/forest").load()
            xr.testing.assert_identical(a, b)
            assert np.array_equal(b["dnbr"].values[0], np.asarray(lay["dnbr"].data), equal_nan=True)
    # the banded store was written band by band (fresh and replaced), the eager one whole
    assert ("annual/forest", True) in writes and ("annual/forest", False) in writes
    assert b.sizes["year"] == 1 and int(b["forest_status"].max()) == 2



def test_annual_layers_written_only_inside_a_mask_banded_or_whole(tmp_path, monkeypatch):
    """``_annual(only=...)``, as the flow writes burn severity and dNBR inside the burn-scar alerts:
    the layer inside the mask, the fill outside, the same banded (memory-mapped layers) or whole."""
    eager, banded, cube, like = _two_stores(tmp_path)
    lay = _layers(like, 3, tmp_path)
    scars = np.zeros(like.shape, bool)
    scars[10:40, 5:30] = True
    only = {"burn_severity": (scars, -1), "dnbr": (scars, np.nan)}
    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0"):
        pl._annual(eager, cube, "annual/forest", 2026, lay, only=only)
        with monkeypatch.context() as m:
            m.setattr(pl, "DASK_READ_PX", 100)
            m.setattr(pl, "ROW_BAND", 16)
            m.setattr(oc, "ROW_BAND", 16)
            pl._annual(banded, cube, "annual/forest", 2026, lay, only=only)
    a = oc.open_cube(eager.url, group="annual/forest").load()
    b = oc.open_cube(banded.url, group="annual/forest").load()
    xr.testing.assert_identical(a, b)
    sev, dnbr = b["burn_severity"].values[0], b["dnbr"].values[0]
    assert (sev[~scars] == -1).all() and np.array_equal(sev[scars], lay["burn_severity"].values[scars])
    assert np.isnan(dnbr[~scars]).all()
    assert np.array_equal(dnbr[scars], np.asarray(lay["dnbr"].data)[scars], equal_nan=True)
    assert (lay["burn_severity"].values[~scars] >= 0).any()  # there was something to drop
    # the other layers are untouched
    assert np.array_equal(b["forest_status"].values[0], lay["forest_status"].values)



def _mapped_rss_kb(path) -> int:
    """Resident kB of this process's mapping of ``path`` (/proc/self/smaps)."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    kb = 0
    for i, line in enumerate(lines):
        if line.endswith(str(path)):
            for rest in lines[i + 1:]:
                if rest.startswith("Rss:"):
                    kb += int(rest.split()[1])
                    break
    return kb


def test_paged_rows_reads_equal_the_array_and_hand_the_pages_back(tmp_path):
    import dask.array as da

    path = tmp_path / "layer"
    a = np.memmap(path, dtype=np.float32, mode="w+", shape=(512, 1000))  # 2 MB, 4,000 bytes a row
    a[:] = np.random.default_rng(0).random(a.shape, dtype=np.float32)
    a.flush()
    pl.release_layers(xr.Dataset({"v": (("y", "x"), a)}))
    assert _mapped_rss_kb(path) < 64  # nothing resident before the read
    got = da.from_array(pl.PagedRows(a), chunks=(64, -1), asarray=False).compute(scheduler="sync")
    after_paged = _mapped_rss_kb(path)
    assert np.array_equal(got, np.asarray(a))  # a plain read keeps every page mapped
    after_plain = _mapped_rss_kb(path)
    assert after_plain > 1900 and after_paged < 300, (after_paged, after_plain)


def test_alert_masks_of_memory_mapped_layers_equal_the_whole_array_masks(tmp_path, monkeypatch):
    from processors.chain import forest_burn_alerts, forest_burn_masks

    rng = np.random.default_rng(3)
    shape = (300, 200)
    like = xr.DataArray(np.zeros(shape, bool), dims=("y", "x"),
                        coords={"y": 5e6 - 10 * np.arange(shape[0]), "x": 4e5 + 10 * np.arange(shape[1])}
                        ).rio.write_crs(32652)
    vals = {"forest": rng.random(shape) < 0.8, "forest_status": rng.integers(0, 4, shape).astype(np.int8),
            "forest_weak": rng.random(shape) < 0.3, "burn_status": rng.integers(0, 3, shape).astype(np.int8),
            "severity": rng.integers(-1, 5, shape).astype(np.int8),
            "forest_first": np.full(shape, np.datetime64("2026-06-10", "ns")),
            "burn_first": np.full(shape, np.datetime64("2026-06-15", "ns"))}
    mem = xr.Dataset({k: like.copy(data=v) for k, v in vals.items()})
    mapped = pl._mapped_like(mem, like)
    for k, v in vals.items():
        mapped[k].data[:] = v
    monkeypatch.setattr(oc, "ROW_BAND", 32)  # many bands, one not full
    banded = pl.alert_masks(mapped)
    whole = forest_burn_masks(mem)
    assert set(banded) == set(whole)
    for k in whole:
        assert np.array_equal(banded[k], whole[k]), k
    a = forest_burn_alerts(mapped, landscape_id="x", masks=banded)
    b = forest_burn_alerts(mem, landscape_id="x")
    assert len(a) == len(b) > 0
    assert list(a["alert_id"]) == list(b["alert_id"]) and np.allclose(a["area_ha"], b["area_ha"])
