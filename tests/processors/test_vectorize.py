from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from processors.vectorize import ALERT_COLUMNS, vectorize_alerts

from .conftest import make_cube


def _mask(blobs, dates=None):
    base = make_cube(shape=(60, 60))["red"].isel(time=0, drop=True)
    m = xr.zeros_like(base, dtype=bool)
    d = xr.full_like(base, np.datetime64("NaT"), dtype="datetime64[ns]")
    for (r0, r1, c0, c1), day in zip(blobs, dates or [None] * len(blobs)):
        m[r0:r1, c0:c1] = True
        if day:
            d[r0:r1, c0:c1] = np.datetime64(day)
    return m, d


def test_minimum_mapping_unit_and_area():
    m, d = _mask([(2, 7, 2, 7), (20, 30, 20, 30)], ["2026-06-10", "2026-07-01"])  # 0.25 ha and 1 ha at 10 m
    g = vectorize_alerts(m, kind="forest_loss", landscape_id="x", min_area_ha=0.5, first_detected=d)
    assert len(g) == 1 and g.crs.to_epsg() == 4326
    assert list(g.columns[: len(ALERT_COLUMNS)]) == ALERT_COLUMNS
    assert g.area_ha.iloc[0] == pytest.approx(1.0) and g.first_detected.iloc[0] == pd.Timestamp("2026-07-01").date()
    area_m2 = g.to_crs(32651).geometry.area.iloc[0]
    assert area_m2 == pytest.approx(10_000, rel=1e-3)
    # the polygon lies on its pixels' edges (each patch is traced in its own bounding box)
    res = abs(float(m.x[1] - m.x[0]))
    ys = sorted([float(m.y[20]), float(m.y[29])])
    want = [float(m.x[20]) - res / 2, ys[0] - res / 2, float(m.x[29]) + res / 2, ys[1] + res / 2]
    np.testing.assert_allclose(g.to_crs(m.rio.crs).total_bounds, want, atol=0.01)
    assert 100 < g.centroid_lon.iloc[0] < 130 and 40 < g.centroid_lat.iloc[0] < 55


def test_alert_id_is_stable_when_the_event_grows_and_on_rerun():
    m1, d1 = _mask([(20, 30, 20, 30)], ["2026-07-01"])
    m2, d2 = _mask([(20, 30, 20, 30), (20, 30, 30, 40)], ["2026-07-01", "2026-07-06"])  # grew eastward later
    a = vectorize_alerts(m1, kind="forest_loss", landscape_id="x", min_area_ha=0.5, first_detected=d1)
    b = vectorize_alerts(m2, kind="forest_loss", landscape_id="x", min_area_ha=0.5, first_detected=d2)
    again = vectorize_alerts(m1, kind="forest_loss", landscape_id="x", min_area_ha=0.5, first_detected=d1)
    assert a.alert_id.iloc[0] == b.alert_id.iloc[0] == again.alert_id.iloc[0]
    assert b.area_ha.iloc[0] == pytest.approx(2.0)
    other = vectorize_alerts(m1, kind="burn_scar", landscape_id="x", min_area_ha=0.5, first_detected=d1)
    assert other.alert_id.iloc[0] != a.alert_id.iloc[0]


def test_severity_composition():
    m, d = _mask([(10, 30, 10, 30)], ["2026-06-20"])
    sev = xr.zeros_like(m, dtype=np.int8)
    sev[10:20, 10:30] = 4
    sev[20:30, 10:30] = 2
    g = vectorize_alerts(m, kind="burn_scar", landscape_id="x", min_area_ha=1.0, first_detected=d, severity=sev,
                         severity_names={2: "moderate_low", 4: "high"})
    assert g.severity_ha.iloc[0] == {"moderate_low": 2.0, "high": 2.0}
    assert g.severity.iloc[0] in ("moderate_low", "high")


def test_empty_mask_gives_an_empty_frame_with_the_columns():
    m, _ = _mask([])
    g = vectorize_alerts(m, kind="wetland_loss", landscape_id="x", min_area_ha=0.5)
    assert len(g) == 0 and list(g.columns[: len(ALERT_COLUMNS)]) == ALERT_COLUMNS and g.crs.to_epsg() == 4326


def test_dask_input_is_refused_with_the_fix():
    m, _ = _mask([(0, 5, 0, 5)])
    lazy = m.copy(data=da.from_array(m.values, chunks=10))
    with pytest.raises(TypeError, match="compute it before vectorising"):
        vectorize_alerts(lazy, kind="forest_loss", landscape_id="x", min_area_ha=0.5)
