"""Pictures for emails and reports: a landscape map with its alerts and a scale bar, before/after
NDVI thumbnails of an alert, an NDVI anomaly map and a water-extent time series. All return PNG bytes."""

from __future__ import annotations

import io
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import geopandas as gpd  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from aoi.landscapes import Landscape  # noqa: E402

__all__ = ["alert_map_png", "before_after_png", "ndvi_anomaly_png", "water_series_png", "KIND_COLOURS"]

KIND_COLOURS = {"forest_loss": "#d7301f", "burn_scar": "#54278f", "wetland_loss": "#2171b5",
                "grassland_degradation": "#b8860b"}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _nice(length_m: float) -> float:
    """A round scale-bar length near a fifth of the map width."""
    target = length_m / 5
    exp = 10 ** np.floor(np.log10(target))
    return float(max(m * exp for m in (1, 2, 5) if m * exp <= target))


def _scale_bar(ax, x0: float, x1: float, y0: float, y1: float) -> None:
    bar = _nice(x1 - x0)
    bx, by = x0 + 0.05 * (x1 - x0), y0 + 0.05 * (y1 - y0)
    ax.plot([bx, bx + bar], [by, by], color="black", lw=3, solid_capstyle="butt")
    label = f"{bar / 1000:g} km" if bar >= 1000 else f"{bar:g} m"
    ax.text(bx + bar / 2, by + 0.015 * (y1 - y0), label, ha="center", va="bottom", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1})


def alert_map_png(landscape: Landscape, alerts: gpd.GeoDataFrame, *, title: str | None = None,
                  extent: Sequence[float] | None = None) -> bytes:
    """The landscape outline, the alerts coloured by kind, a scale bar and a legend, in UTM metres.

    ``extent`` (xmin, ymin, xmax, ymax in the landscape's UTM CRS) zooms in; by default the map
    shows the outline, or the alerts' area when the outline is much larger.
    """
    epsg = landscape.utm_epsg
    outline = gpd.GeoSeries([landscape.shape], crs=4326).to_crs(epsg)
    a = alerts.to_crs(epsg) if len(alerts) else alerts
    fig, ax = plt.subplots(figsize=(6, 5))
    outline.boundary.plot(ax=ax, color="#333333", lw=1)
    for kind, colour in KIND_COLOURS.items():
        sub = a[a["kind"] == kind] if len(a) else a
        if len(sub):
            sub.plot(ax=ax, color=colour, edgecolor=colour, lw=0.8)
            # small alerts stay visible at landscape scale
            pts = sub.geometry.representative_point()
            ax.scatter(pts.x, pts.y, s=30, facecolors="none", edgecolors=colour, lw=1.2)
    zoomed = False
    if extent is None:
        x0, y0, x1, y1 = outline.total_bounds
        if len(a):
            ax0, ay0, ax1, ay1 = a.total_bounds
            pad = max(ax1 - ax0, ay1 - ay0, 2000) * 0.5
            if (ax1 - ax0 + 2 * pad) < 0.25 * (x1 - x0):
                x0, y0, x1, y1 = ax0 - pad, ay0 - pad, ax1 + pad, ay1 + pad
                zoomed = True
    else:
        x0, y0, x1, y1 = extent
        zoomed = True
    if zoomed:  # an overview of the whole landscape, with the zoomed area
        ins = ax.inset_axes([0.01, 0.70, 0.28, 0.28])
        outline.plot(ax=ins, color="#e8e8e8", edgecolor="#333333", lw=0.6)
        ins.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#d7301f", lw=1.2))
        ins.set_xticks([])
        ins.set_yticks([])
        ins.set_xlabel("")
        ins.set_ylabel("")
        ins.set_aspect("equal")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    _scale_bar(ax, x0, x1, y0, y1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_title(title or landscape.name, fontsize=10)
    present = sorted(set(a["kind"])) if len(a) else []
    handles = [Patch(color=KIND_COLOURS[k], label=k.replace("_", " ")) for k in present]
    handles.append(Patch(facecolor="none", edgecolor="#333333", label="landscape"))
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8)
    ax.text(0.99, 0.01, f"EPSG:{epsg}", transform=ax.transAxes, ha="right", va="bottom", fontsize=6, color="#555555")
    return _png(fig)


def before_after_png(cube: xr.Dataset, alert: pd.Series, *, epsg: int, margin_m: float = 300.0,
                     min_clear: float = 0.6) -> bytes | None:
    """NDVI before and after an alert's first detection, around its polygon.

    ``cube`` is a cube (:func:`outputs.cube.open_cube`); ``alert`` a row of the alert store
    (EPSG:4326 geometry, ``first_detected``). Uses the last observation before and the latest one
    from the first detection on that are at least ``min_clear`` clear over the window. Returns
    None when there is no such pair.
    """
    geom = gpd.GeoSeries([alert["geometry"]], crs=4326).to_crs(epsg).iloc[0]
    x0, y0, x1, y1 = geom.bounds
    x0, y0, x1, y1 = x0 - margin_m, y0 - margin_m, x1 + margin_m, y1 + margin_m
    win = cube["ndvi"].sel(x=slice(x0, x1), y=slice(y1, y0))
    if win.sizes["x"] == 0 or win.sizes["y"] == 0:
        return None
    clear = win.notnull().mean(("y", "x")).compute()
    day = np.datetime64(pd.Timestamp(alert["first_detected"]))
    t = win["time"].values
    ok = clear.values >= min_clear
    before = np.nonzero(ok & (t < day))[0]
    after = np.nonzero(ok & (t >= day))[0]
    if not len(before) or not len(after):
        return None
    pair = [int(before[-1]), int(after[-1])]
    imgs = win.isel(time=pair).compute()
    fig, axes = plt.subplots(1, 2, figsize=(6, 3.2))
    ext = [float(win.x.min()), float(win.x.max()), float(win.y.min()), float(win.y.max())]
    for ax, k, label in zip(axes, range(2), ("before", "after")):
        ax.imshow(imgs.values[k], vmin=0, vmax=0.9, cmap="YlGn", extent=ext, interpolation="nearest")
        gpd.GeoSeries([geom]).boundary.plot(ax=ax, color="#d7301f", lw=1.2)
        ax.set_title(f"NDVI {label}: {str(imgs.time.values[k])[:10]}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.set_xlim(ext[0], ext[1])
        ax.set_ylim(ext[2], ext[3])
    _scale_bar(axes[1], *ext[:2], *ext[2:])
    return _png(fig)


def ndvi_anomaly_png(anomaly: xr.DataArray, *, title: str) -> bytes:
    """A diverging map of an NDVI anomaly (y, x), in NDVI units."""
    fig, ax = plt.subplots(figsize=(5, 4.4))
    v = np.asarray(anomaly.values, dtype=np.float32)
    ext = [float(anomaly.x.min()), float(anomaly.x.max()), float(anomaly.y.min()), float(anomaly.y.max())]
    im = ax.imshow(v, vmin=-0.3, vmax=0.3, cmap="RdBu", extent=ext, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="NDVI anomaly")
    _scale_bar(ax, *ext[:2], *ext[2:])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return _png(fig)


def water_series_png(series: pd.DataFrame, *, title: str) -> bytes:
    """Water extent (ha) per observation, with the baseline's range when given.

    ``series`` has ``time``, ``water_ha`` and optionally ``baseline_ha``.
    """
    fig, ax = plt.subplots(figsize=(6, 2.8))
    if len(series):
        ax.plot(pd.to_datetime(series["time"]), series["water_ha"], "o-", ms=3, color="#2171b5", label="water")
        if "baseline_ha" in series and series["baseline_ha"].notna().any():
            ax.axhline(float(series["baseline_ha"].dropna().iloc[-1]), color="#555555", ls="--", lw=1,
                       label="baseline (same months)")
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no clear observation yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("ha")
    ax.set_title(title, fontsize=9)
    fig.autofmt_xdate()
    return _png(fig)
