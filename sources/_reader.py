"""A stackstac reader that skips the warp where no warp is needed.

stackstac reads every asset through a GDAL ``WarpedVRT`` unless the file's grid *is* the whole
output grid, which never happens with real tiles. When an asset is in the output CRS, with a
pixel size that is the output's times an integer ``k`` (1 for Sentinel-2 10 m bands on a 10 m grid,
2 for 20 m bands), and its pixel edges fall on output pixel edges, nearest-neighbour resampling is
exactly "read the window, repeat each pixel k x k". This reader does that; anything else
(bilinear, other CRSs, misaligned grids, Landsat's 15 m offset) goes to stackstac's own reader.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window
from stackstac.rio_reader import AutoParallelRioReader

__all__ = ["GridAlignedReader"]


class GridAlignedReader(AutoParallelRioReader):
    """Drop-in ``reader=`` for :func:`stackstac.stack`; same constructor and pickling as the parent."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self._local = threading.local()
        self._plan_lock = threading.Lock()
        self._plan: tuple | None | bool = False  # False: not decided yet; None: use the parent

    def __setstate__(self, state):
        super().__setstate__(state)
        self._local = threading.local()
        self._plan_lock = threading.Lock()
        self._plan = False

    def _own_dataset(self):
        ds = getattr(self._local, "ds", None)
        if ds is None:
            with self.gdal_env.open:
                ds = rasterio.open(self.url, sharing=False)
            self._local.ds = ds
        return ds

    def _decide(self):
        with self._plan_lock:
            if self._plan is not False:
                return self._plan
            plan = None
            if self.resampling == Resampling.nearest:
                try:
                    ds = self._own_dataset()
                    plan = self._aligned(ds)
                except Exception:
                    plan = None  # let the parent open it and raise (or mask) the error its own way
            self._plan = plan
            return plan

    def _aligned(self, ds) -> tuple | None:
        vp = self.spec.vrt_params
        if ds.count != 1 or ds.crs is None or ds.crs.to_epsg() != vp["crs"]:
            return None
        ft, tt = ds.transform, vp["transform"]
        if ft.b or ft.d or tt.b or tt.d or ft.a <= 0 or ft.e >= 0:
            return None
        k = ft.a / tt.a
        if abs(k - round(k)) > 1e-9 or round(k) < 1 or abs(ft.a + ft.e) > 1e-9 or abs(tt.a + tt.e) > 1e-9:
            return None
        k = int(round(k))
        dc = (tt.c - ft.c) / tt.a  # output column 0 is dc output pixels right of the file's left edge
        dr = (ft.f - tt.f) / tt.a  # output row 0 is dr output pixels below the file's top edge
        if abs(dc - round(dc)) > 1e-6 or abs(dr - round(dr)) > 1e-6:
            return None
        return k, int(round(dc)), int(round(dr))

    def read(self, window: Window, **kwargs) -> np.ndarray:
        plan = self._decide()
        if plan is None:
            return super().read(window, **kwargs)
        k, dc, dr = plan
        ds = self._own_dataset()
        r0, c0 = int(window.row_off) + dr, int(window.col_off) + dc  # in output pixels from the file's corner
        h, w = int(window.height), int(window.width)
        fr0, fc0 = math.floor(r0 / k), math.floor(c0 / k)
        fr1, fc1 = math.floor((r0 + h - 1) / k) + 1, math.floor((c0 + w - 1) / k) + 1
        out = np.full((fr1 - fr0, fc1 - fc0), self.fill_value, dtype=self.dtype)
        ir0, ic0 = max(fr0, 0), max(fc0, 0)
        ir1, ic1 = min(fr1, ds.height), min(fc1, ds.width)
        if ir1 > ir0 and ic1 > ic0:
            try:
                with self.gdal_env.read:
                    a = ds.read(1, window=Window(ic0, ir0, ic1 - ic0, ir1 - ir0), masked=True)
            except Exception as e:
                raise RuntimeError(f"Error reading {window} from {self.url!r}: {e!r}") from e
            dst = out[ir0 - fr0:ir1 - fr0, ic0 - fc0:ic1 - fc0]
            dst[...] = a.data
            if a.mask is not np.ma.nomask:
                dst[a.mask] = self.fill_value
        if k > 1:
            out = np.repeat(np.repeat(out, k, axis=0), k, axis=1)
            out = out[r0 - fr0 * k:r0 - fr0 * k + h, c0 - fc0 * k:c0 - fc0 * k + w]
        scale, offset = self.scale_offset
        if scale != 1 or offset != 0:
            out = out * scale + offset
        return out if out.flags.c_contiguous else np.ascontiguousarray(out)

    def close(self) -> None:
        ds = getattr(self._local, "ds", None)
        if ds is not None:
            ds.close()
            self._local.ds = None
        super().close()
