"""Quick-look pictures of a loaded reflectance cube: a true-colour scene and an NDVI time series."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

__all__ = ["quicklook_png"]


def _stretch(rgb: np.ndarray, lo: float = 0.0, hi: float = 0.16) -> np.ndarray:
    return np.clip((rgb - lo) / (hi - lo), 0, 1)


def quicklook_png(rgb: xr.Dataset, series: xr.Dataset, *, title: str, out: str | Path) -> Path:
    """Write a PNG: left, a true-colour image; right, per-scene mean NDVI and clear fraction.

    Parameters
    ----------
    rgb
        One time step with ``red``, ``green``, ``blue`` (reflectance, NaN where not clear), dims (y, x).
    series
        Along ``time``: ``ndvi`` (mean NDVI of clear pixels), ``clear_fraction`` (0-1) and a
        ``platform`` coordinate.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1, 1.6]})
    img = np.dstack([rgb[b].values for b in ("red", "green", "blue")])
    shown = _stretch(np.nan_to_num(img, nan=0.0))
    ax0.imshow(shown, extent=(float(rgb.x.min()), float(rgb.x.max()), float(rgb.y.min()), float(rgb.y.max())))
    day = str(np.datetime_as_string(rgb.time.values, unit="D")) if "time" in rgb.coords else ""
    ax0.set_title(f"true colour {day} (black: cloud-masked)", fontsize=9)
    ax0.set_xlabel("UTM x (m)", fontsize=8)
    ax0.tick_params(labelsize=7)
    width_km = (float(rgb.x.max()) - float(rgb.x.min())) / 1000
    bar = 1000 if width_km > 2.5 else 500
    x0, y0 = float(rgb.x.min()) + 0.05 * width_km * 1000, float(rgb.y.min()) + 0.05 * width_km * 1000
    ax0.plot([x0, x0 + bar], [y0, y0], color="white", lw=3)
    ax0.text(x0, y0 + 0.03 * width_km * 1000, f"{bar // 1000 if bar >= 1000 else bar} {'km' if bar >= 1000 else 'm'}",
             color="white", fontsize=8)
    t = series["time"].values
    plat = series["platform"].values.astype(str)
    for name, marker, sel in (("Sentinel-2", "o", np.char.startswith(plat, "sentinel")),
                              ("Landsat", "s", np.char.startswith(plat, "landsat"))):
        if sel.any():
            ax1.plot(t[sel], series["ndvi"].values[sel], marker, ms=4, label=f"mean NDVI, {name}")
    ax1.set_ylabel("NDVI of clear pixels")
    ax1.set_ylim(-0.2, 1.0)
    ax2 = ax1.twinx()
    ax2.bar(t, series["clear_fraction"].values, width=2.0, alpha=0.25, color="grey", label="clear fraction")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("clear fraction", fontsize=8)
    ax1.legend(loc="upper left", fontsize=8)
    ax1.set_title("per-scene NDVI and clear-sky fraction", fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
