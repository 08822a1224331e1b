"""FAKE Earth Engine, at the ``ee.data`` boundary (Earth Engine cannot be reached from here).

It answers in the shapes the real REST service returns: ``listImages`` gives image descriptors
(``id``, ``startTime``, ``geometry``, ``properties`` with the catalog's property names, paged with
``nextPageToken``); ``getPixels`` gives NumPy structured arrays with one field per band. It serves
pixels of the demo archive converted to Earth Engine's conventions (S2_SR_HARMONIZED has the
+1000 DN offset of baseline 04.00 removed), resampled with nearest neighbour as Earth Engine does.
"""

from __future__ import annotations

import json

import numpy as np
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject
from shapely.geometry import shape

S2_EE = {"B2": "blue", "B3": "green", "B4": "red", "B8": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22", "SCL": "scl"}
L_EE = {"SR_B2": "blue", "SR_B3": "green", "SR_B4": "red", "SR_B5": "nir08", "SR_B6": "swir16", "SR_B7": "swir22",
        "QA_PIXEL": "qa_pixel"}


class FakeEE:
    """Stands in for the Earth Engine REST service at the ``ee.data`` boundary, over demo items."""

    def __init__(self, items_by_collection: dict[str, list[dict]]):
        self.items = items_by_collection
        self.by_id = {}
        self.requests: list[dict] = []
        for col, its in items_by_collection.items():
            for it in its:
                self.by_id[f"{col}/{it['id']}"] = (col, it)

    def listImages(self, params):
        self.requests.append(dict(params))
        col = params["parent"].removeprefix("projects/earthengine-public/assets/")
        imgs = []
        for it in self.items.get(col, []):
            p = it["properties"]
            t = p["datetime"]
            if not (params["startTime"] <= t <= params["endTime"]):
                continue
            if not shape(json.loads(params["region"])).intersects(shape(it["geometry"])):
                continue
            cc = p["eo:cloud_cover"]
            if "filter" in params and not cc <= float(params["filter"].split("<=")[1]):
                continue
            props = {"CLOUDY_PIXEL_PERCENTAGE": cc, "MGRS_TILE": p.get("grid:code", "").removeprefix("MGRS-"), "SPACECRAFT_NAME": p["platform"].replace("sentinel", "Sentinel").replace("-2b", "-2B").replace("-2c", "-2C"),
                     "PROCESSING_BASELINE": p.get("s2:processing_baseline", "")} if col.startswith("COPERNICUS") \
                else {"CLOUD_COVER": cc, "SPACECRAFT_ID": p["platform"].upper().replace("-", "_"),
                      "WRS_PATH": int(p["grid:code"][5:8]), "WRS_ROW": int(p["grid:code"][8:11])}
            imgs.append({"type": "IMAGE", "name": f"projects/earthengine-public/assets/{col}/{it['id']}",
                         "id": f"{col}/{it['id']}", "startTime": t, "endTime": t, "properties": props,
                         "geometry": it["geometry"],
                         "bands": [{"id": b} for b in (S2_EE if col.startswith("COPERNICUS") else L_EE)]})
        start = int(params.get("pageToken", 0))
        page = imgs[start:start + 2]  # tiny pages: paging must be followed
        out = {"images": page}
        if start + 2 < len(imgs):
            out["nextPageToken"] = str(start + 2)
        return out

    def getPixels(self, req):
        col, it = self.by_id[req["assetId"]]
        g = req["grid"]
        w, h = g["dimensions"]["width"], g["dimensions"]["height"]
        a = g["affineTransform"]
        dst_t = Affine(a["scaleX"], a["shearX"], a["translateX"], a["shearY"], a["scaleY"], a["translateY"])
        names = S2_EE if col.startswith("COPERNICUS") else L_EE
        out = np.zeros((h, w), dtype=[(b, "<u2") for b in req["bandIds"]])
        for b in req["bandIds"]:
            with rasterio.open(it["assets"][names[b]]["href"]) as src:
                dst = np.zeros((h, w), np.uint16)
                # Earth Engine resamples with nearest neighbour unless an image asks otherwise
                reproject(rasterio.band(src, 1), dst, dst_transform=dst_t, dst_crs=g["crsCode"],
                          resampling=Resampling.nearest, src_nodata=src.nodata, dst_nodata=src.nodata)
            if col.startswith("COPERNICUS") and b != "SCL":
                dst = np.where(dst > 0, np.clip(dst.astype(np.int32) - 1000, 1, None), 0).astype(np.uint16)
            out[b] = dst
        return out
