"""A stackstac reader that skips the warp where no warp is needed.

stackstac reads every asset through a GDAL ``WarpedVRT`` unless the file's grid *is* the whole
output grid, which never happens with real tiles. When an asset is in the output CRS, with a
pixel size that is the output's times an integer ``k`` (1 for Sentinel-2 10 m bands on a 10 m grid,
2 for 20 m bands), and its pixel edges fall on output pixel edges, nearest-neighbour resampling is
exactly "read the window, repeat each pixel k x k". This reader does that; anything else
(bilinear, other CRSs, misaligned grids, Landsat's 15 m offset) goes to stackstac's own reader.

The load's preflight opens every asset once to check it; it hands those open datasets to
:data:`HANDLES`, and the reader takes them from there instead of opening each file a second time
(on small tiles the open costs about as much as the read).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

import numpy as np
import rasterio
from rasterio.enums import MaskFlags, Resampling
from rasterio.windows import Window
from stackstac.rio_reader import AutoParallelRioReader

__all__ = ["GridAlignedReader", "HandlePool", "HANDLES", "is_local_href"]


def is_local_href(href: str) -> bool:
    """A path on this machine's file system (no URL scheme, no GDAL ``/vsi*`` virtual file system)."""
    return "://" not in href and not href.startswith("/vsi")


class HandlePool:
    """Open rasterio datasets, by URL, waiting to be read: the preflight gives, the readers take.

    At most one handle waits per URL: a later preflight of the same file replaces it (it saw the
    file as it is now). A dataset is used by one thread at a time (GDAL handles are not thread-safe,
    but may move between threads). Handles not taken within ``ttl_s`` seconds, or beyond ``cap``,
    are closed, so a lazy load that is never computed does not keep files open. Each process has its
    own pool: a reader on a distributed worker process finds none and opens the file itself.
    """

    def __init__(self, cap: int = 1024, ttl_s: float = 300.0):
        self.cap, self.ttl_s = cap, ttl_s
        self._lock = threading.Lock()
        self._waiting: OrderedDict[str, tuple[float, object]] = OrderedDict()  # oldest given first

    def give(self, url: str, ds) -> None:
        """Keep ``ds`` for the next reader of ``url``, closing one given earlier and not taken."""
        with self._lock:
            old = self._waiting.pop(url, None)
            self._waiting[url] = (time.monotonic(), ds)
            stale = self._expire_locked() + ([old[1]] if old else [])
        for h in stale:
            h.close()

    def take(self, url: str):
        """The handle waiting for ``url`` (now the caller's), or None."""
        with self._lock:
            stale = self._expire_locked()
            got = self._waiting.pop(url, None)
        for h in stale:
            h.close()
        return got[1] if got else None

    def clear(self) -> None:
        with self._lock:
            stale = [h for _, h in self._waiting.values()]
            self._waiting.clear()
        for h in stale:
            h.close()

    def __len__(self) -> int:
        return len(self._waiting)

    def _expire_locked(self) -> list:
        """Pop the handles past their ttl or beyond the cap (the oldest are first in the dict)."""
        out = []
        now = time.monotonic()
        while self._waiting:
            url, (t, h) = next(iter(self._waiting.items()))
            if now - t <= self.ttl_s and len(self._waiting) <= self.cap:
                break
            del self._waiting[url]
            out.append(h)
        return out


def _handle_cap() -> int:
    """At most 1,024 waiting handles, and a quarter of the process's open-file limit (1,024 on many
    systems), so that handles nobody takes (readers on worker processes) never starve other opens."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 256
    return 1024 if soft == resource.RLIM_INFINITY else max(16, min(1024, soft // 4))


#: the process's pool (see :class:`HandlePool`)
HANDLES = HandlePool(cap=_handle_cap())


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

    @property
    def _local_file(self) -> bool:
        return is_local_href(self.url)

    def _own_dataset(self):
        ds = getattr(self._local, "ds", None)
        if ds is None:
            ds = HANDLES.take(self.url)
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
        ir0, ic0 = max(fr0, 0), max(fc0, 0)
        ir1, ic1 = min(fr1, ds.height), min(fc1, ds.width)
        inside = (ir0, ic0, ir1, ic1) == (fr0, fc0, fr1, fc1)
        out = None if inside else np.full((fr1 - fr0, fc1 - fc0), self.fill_value, dtype=self.dtype)
        if ir1 > ir0 and ic1 > ic0:
            flags = ds.mask_flag_enums[0]
            # a plain read where the mask is "all valid" or the nodata value (the common cases): a
            # masked read builds a mask array for every window
            plain = flags == [MaskFlags.all_valid] or flags == [MaskFlags.nodata]
            win = Window(ic0, ir0, ic1 - ic0, ir1 - ir0)
            try:
                if self._local_file:  # the read environment holds HTTP options only: skip its set-up
                    a = ds.read(1, window=win, masked=not plain)
                else:
                    with self.gdal_env.read:
                        a = ds.read(1, window=win, masked=not plain)
            except Exception as e:
                raise RuntimeError(f"Error reading {window} from {self.url!r}: {e!r}") from e
            if out is None:  # the window lies inside the file: the read itself is the output
                out = dst = (a if plain else a.data).astype(self.dtype, copy=False)  # a fresh array
            else:
                dst = out[ir0 - fr0:ir1 - fr0, ic0 - fc0:ic1 - fc0]
                dst[...] = a.data if not plain else a
            if plain:
                if flags == [MaskFlags.nodata] and ds.nodata != self.fill_value:
                    nod = ds.nodata
                    hole = np.isnan(a) if nod is not None and np.isnan(nod) else a == nod
                    dst[hole] = self.fill_value
            elif a.mask is not np.ma.nomask:
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
