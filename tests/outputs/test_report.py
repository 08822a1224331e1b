"""The run report opens in headless Chromium with every image loaded and a clean console."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyproj

from aoi import load_landscapes
from outputs.alerts import AlertStore
from outputs.cube import CubeStore
from outputs.report import write_report
from outputs.stats import append_stats
from tests.browser import check_page

from .conftest import make_alerts, make_slices

ZH = next(land for land in load_landscapes() if land.id == "zhalong")


def test_checker_catches_broken_images_and_console_errors(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="missing.png"><script>console.error("boom")</script></body></html>')
    res = check_page(page)
    assert res.broken_images == ["missing.png"]
    assert any("boom" in e for e in res.errors)


def test_report_loads_in_chromium(tmp_path):
    land = ZH.model_copy(update={"name": "Zhalong <b>wetland</b>"})
    years = [f"{y}-06-{d:02d}" for y in (2024, 2025, 2026) for d in (1, 11, 21)]
    CubeStore(tmp_path / "cubes" / "zhalong.zarr").write(make_slices(years))
    store = AlertStore.at(tmp_path)
    lon, lat = pyproj.Transformer.from_crs(32651, 4326, always_xy=True).transform(450200, 5679800)
    store.upsert(make_alerts([("wetl-zhalong-a", "wetland_loss", "confirmed", "2026-06-11", 12.0, None, lon, lat)]),
                 landscape_id="zhalong", run_date="2026-06-21")
    t = pd.to_datetime(years)
    append_stats(tmp_path / "stats.parquet", pd.DataFrame(
        {"landscape_id": "zhalong", "time": t, "variable": "water_ha", "value": np.linspace(100, 70, len(t)),
         "unit": "ha"}))
    index = write_report(tmp_path, "2026-06-21", [land], store=store, summary={"zhalong": {"status": "ok",
                                                                                          "scenes": 3}})
    html = index.read_text()
    assert "Zhalong &lt;b&gt;wetland&lt;/b&gt;" in html and "<b>wetland</b>" not in html
    assert "wetl-zhalong-a" in html
    res = check_page(index)
    assert res.errors == []
    srcs = sorted(i["src"] for i in res.images)
    assert srcs == ["zhalong-map.png", "zhalong-ndvi-anomaly.png", "zhalong-water.png"]
    assert res.broken_images == []
