"""Find imagery for a landscape: any STAC API (pystac-client), a static catalog, or an ItemCollection file.

Results are plain item dicts (``items_as_dicts``), so pystac never rewrites ``proj:epsg`` into
``proj:code`` on the way. Cloud cover is filtered on the client side: some APIs (rustac's in-memory
backend among them) do not implement CQL2 ``filter``/``query``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from shapely.geometry import shape

from .profiles import SourceError, detect_profile, item_grid_code, item_platform

__all__ = ["search_items", "iter_static_items", "merge_duplicates", "SearchError", "RetryPolicy", "sign_items", "parse_datetime",
           "solar_date", "REQUESTER_PAYS_ENV"]

log = logging.getLogger(__name__)

#: set this (e.g. in ``stackstac.DEFAULT_GDAL_ENV``) to read requester-pays ``s3://`` Landsat hrefs,
#: together with AWS credentials: the reader's account pays the egress.
REQUESTER_PAYS_ENV = {"AWS_REQUEST_PAYER": "requester"}


class SearchError(SourceError):
    """A search could not be completed."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of STAC API requests: 5xx answers, connection errors and read timeouts, with backoff.

    The wait before retry ``n`` is ``backoff_s * 2**(n-1)`` seconds (urllib3 ``Retry``).
    """

    retries: int = 5
    backoff_s: float = 0.5
    timeout_s: float = 30.0
    status: tuple[int, ...] = (429, 500, 502, 503, 504)

    def urllib3(self):
        from urllib3.util.retry import Retry

        return Retry(total=self.retries, connect=self.retries, read=self.retries, status=self.retries,
                     backoff_factor=self.backoff_s, status_forcelist=self.status,
                     allowed_methods=frozenset({"GET", "POST"}), raise_on_status=True, respect_retry_after_header=True)


def parse_datetime(value: str) -> dt.datetime:
    """Parse a STAC datetime (``...Z``, offsets, or a bare date as in STAC 0.7) into aware UTC."""
    v = value.strip().replace("Z", "+00:00")
    if len(v) == 10:
        v += "T00:00:00+00:00"
    t = dt.datetime.fromisoformat(v)
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def _item_time(item: Mapping[str, Any]) -> dt.datetime:
    p = item.get("properties", {})
    v = p.get("datetime") or p.get("start_datetime")
    if not v:
        raise SourceError(f"item {item.get('id')!r} has no datetime; STAC items must carry properties.datetime")
    return parse_datetime(v)


def solar_date(item: Mapping[str, Any]) -> dt.date:
    """Local solar date of the acquisition (UTC time shifted by the scene centre's longitude / 15 h).

    Tiles of one overpass share it even where the UTC date changes mid-swath.
    """
    t = _item_time(item)
    bbox = item.get("bbox")
    lon = (bbox[0] + bbox[2]) / 2 if bbox else shape(item["geometry"]).centroid.x
    return (t + dt.timedelta(hours=lon / 15.0)).date()


def _as_utc(d: str | dt.date | dt.datetime, end: bool) -> dt.datetime:
    if isinstance(d, str):
        if len(d) == 10:
            d = dt.date.fromisoformat(d)
        else:
            return parse_datetime(d)
    if isinstance(d, dt.datetime):
        return d if d.tzinfo else d.replace(tzinfo=dt.timezone.utc)
    t = dt.datetime.combine(d, dt.time.max if end else dt.time.min)
    return t.replace(tzinfo=dt.timezone.utc)


def _is_url(source: str) -> bool:
    return source.startswith("http://") or source.startswith("https://")


def search_items(
    source: str | Path,
    *,
    intersects: Mapping[str, Any],
    start: str | dt.date | dt.datetime,
    end: str | dt.date | dt.datetime,
    collections: Sequence[str] | None = None,
    max_cloud: float | None = None,
    limit: int = 100,
    retry: RetryPolicy = RetryPolicy(),
    sign: bool = True,
) -> list[dict[str, Any]]:
    """Items intersecting a landscape over ``[start, end]`` (inclusive), sorted by time.

    Parameters
    ----------
    source
        A STAC API root URL, a static ``catalog.json`` (or a collection.json), or an ItemCollection
        / FeatureCollection JSON file.
    intersects
        GeoJSON geometry in EPSG:4326 (e.g. ``landscape.geometry``).
    start, end
        Dates or datetimes; dates cover whole UTC days.
    collections
        Collection ids to search. Required for an API; optional for files.
    max_cloud
        Drop items whose ``eo:cloud_cover`` exceeds this percentage (client side). Items without
        the property are kept.
    limit
        Page size requested from an API (paging follows ``next`` links until the end).
    retry
        Retries of 5xx answers and timeouts, with exponential backoff.
    sign
        Sign Planetary Computer hrefs (SAS tokens) for collections that need it.
    """
    t0, t1 = _as_utc(start, end=False), _as_utc(end, end=True)
    if t1 < t0:
        raise SearchError(f"end {end} is before start {start}; swap them")
    src = str(source)
    if _is_url(src):
        if not collections:
            raise SearchError("searching a STAC API needs collections=[...], e.g. ['sentinel-2-c1-l2a', 'landsat-c2-l2']")
        items = _search_api(src, intersects, t0, t1, list(collections), limit, retry)
    else:
        items = _search_files(Path(src), intersects, t0, t1, collections)
    if max_cloud is not None:
        items = [i for i in items if (i.get("properties", {}).get("eo:cloud_cover") is None
                                      or float(i["properties"]["eo:cloud_cover"]) <= max_cloud)]
    items.sort(key=lambda i: (_item_time(i), i.get("id", "")))
    if sign:
        items = sign_items(items)
    return items


def _search_api(url, intersects, t0, t1, collections, limit, retry: RetryPolicy) -> list[dict]:
    import requests
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO
    from pystac.errors import STACError

    io = StacApiIO(max_retries=retry.urllib3(), timeout=retry.timeout_s)
    # HTTP errors and timeouts are retried per request by urllib3; a body cut short (truncated
    # JSON) restarts the whole paged search, with the same backoff
    def gave_up(exc: Exception) -> SearchError:
        return SearchError(f"STAC API {url} failed after {retry.retries} retries: {exc}. Fix: check the URL and "
                           "the service status, or raise the retry budget")

    for attempt in range(retry.retries + 1):
        try:
            client = Client.open(url, stac_io=io)
            search = client.search(collections=collections, intersects=dict(intersects),
                                   datetime=[t0.isoformat().replace("+00:00", "Z"),
                                             t1.isoformat().replace("+00:00", "Z")], limit=limit)
            return list(search.items_as_dicts())
        except (ValueError, STACError) as exc:  # pystac-client turns transport errors into APIError
            if attempt == retry.retries:
                raise gave_up(exc) from exc
            log.warning("STAC API %s: %s; restarting the search (%d/%d)", url, exc, attempt + 1, retry.retries)
            time.sleep(retry.backoff_s * 2 ** attempt)
        except APIError as exc:
            code = getattr(exc, "status_code", None)
            if code is not None:  # an answer that is not retried (4xx): say what the server said
                raise SearchError(f"STAC API {url} refused the search (HTTP {code}: {str(exc)[:300] or 'no detail'}). "
                                  "Fix: check the collections, dates and area of the search, and the URL") from exc
            raise gave_up(exc) from exc
        except requests.RequestException as exc:
            raise gave_up(exc) from exc
    raise AssertionError("unreachable")


def iter_static_items(path: Path) -> Iterable[dict]:
    """Item dicts of a static catalog/collection (following child/item links) or an ItemCollection file."""
    if not path.exists():
        raise SearchError(f"{str(path)!r} does not exist; give a STAC API URL, a catalog.json or an ItemCollection file")
    doc = json.loads(path.read_text())
    kind = doc.get("type")
    if kind == "FeatureCollection":
        for f in doc.get("features", []):
            yield _absolute_hrefs(f, path.parent)
        return
    if kind == "Feature":
        yield _absolute_hrefs(doc, path.parent)
        return
    if kind not in ("Catalog", "Collection"):
        raise SearchError(f"{str(path)!r} is a {kind!r}, not a STAC Catalog, Collection or ItemCollection")
    for link in doc.get("links", []):
        rel, href = link.get("rel"), link.get("href", "")
        if rel in ("child", "item") and "://" not in href:
            yield from iter_static_items((path.parent / href).resolve())


def _absolute_hrefs(item: dict, base: Path) -> dict:
    for a in item.get("assets", {}).values():
        h = a.get("href", "")
        if h and "://" not in h and not h.startswith("/"):
            a["href"] = str((base / h).resolve())
    return item


def _search_files(path: Path, intersects, t0, t1, collections) -> list[dict]:
    aoi = shape(intersects)
    out = []
    for it in iter_static_items(path):
        if collections and it.get("collection") not in collections:
            continue
        t = _item_time(it)
        if not (t0 <= t <= t1):
            continue
        geom = it.get("geometry")
        if geom is None or not shape(geom).intersects(aoi):
            continue
        out.append(it)
    return out


def sign_items(items: list[dict]) -> list[dict]:
    """Sign the hrefs of items whose profile needs it (Planetary Computer SAS tokens).

    Uses the ``planetary-computer`` package; its token endpoint honours ``PC_SDK_SAS_URL`` and a
    subscription key in ``PC_SDK_SUBSCRIPTION_KEY``. Items of other providers pass through unchanged.
    """
    out = []
    for it in items:
        try:
            needs = detect_profile(it).sign == "planetary-computer"
        except SourceError:
            needs = False
        hrefs = " ".join(a.get("href", "") for a in it.get("assets", {}).values())
        if needs and ".blob.core.windows.net" in hrefs:
            import planetary_computer

            it = planetary_computer.sign(it)
        out.append(it)
    return out


def _provider(item: Mapping[str, Any]) -> tuple[str, str]:
    """(provider, profile name) of a STAC item, or of an Earth Engine image (:func:`sources.earthengine.as_item`)."""
    if "amurwatch:ee" in item:
        return "earthengine", str(item.get("collection", "earth-engine"))
    prof = detect_profile(item)
    return prof.provider, prof.name


def merge_duplicates(items: list[dict], prefer: Sequence[str] = ("earth-search", "planetary-computer", "usgs", "demo",
                                                                  "earthengine")) -> list[dict]:
    """Merge the same acquisition found through several providers into one item.

    Two items are the same scene when platform and tile (MGRS or WRS-2) agree and their times are
    within an hour: providers stamp either the datatake start or the tile sensing time, minutes
    apart, while one satellite never sees a tile twice in an hour. The item of the most preferred
    provider is kept; the others are listed in ``properties["amurwatch:alternates"]``.
    """
    rank = {p: i for i, p in enumerate(prefer)}
    kept: list[dict] = []
    index: dict[tuple, int] = {}
    for it in sorted(items, key=lambda i: rank.get(_provider(i)[0], len(rank))):
        key = (item_platform(it), item_grid_code(it))
        t = _item_time(it)
        match = None
        for (plat, grid, tt), k in index.items():
            if (plat, grid) == key and abs((tt - t).total_seconds()) <= 3600:
                match = k
                break
        if match is None:
            index[(key[0], key[1], t)] = len(kept)
            kept.append(it)
        else:
            alt = kept[match].setdefault("properties", {}).setdefault("amurwatch:alternates", [])
            alt.append(f"{_provider(it)[1]}:{it.get('id')}")
    kept.sort(key=lambda i: (_item_time(i), i.get("id", "")))
    return kept
