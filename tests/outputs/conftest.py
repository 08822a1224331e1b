"""Factories of nightly cube slices and alert candidates, seeded, on a UTM grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401
import xarray as xr


def make_slices(times, *, shape=(40, 50), seed=0, epsg=32651, res=10.0, x0=450000.0, y0=5680000.0) -> xr.Dataset:
    """Cube slices (time, y, x): ndvi, nbr, clear, water, with provenance coordinates.

    The values of a slice depend only on its date and ``seed``, so the same night loaded twice
    gives the same slice.
    """
    t = pd.to_datetime(list(times))
    h, w = shape
    x = x0 + (np.arange(w) + 0.5) * res
    y = y0 - (np.arange(h) + 0.5) * res
    nd, nb, cl, wa = [], [], [], []
    for day in t:
        rng = np.random.default_rng([seed, int(day.strftime("%Y%m%d"))])
        clear = rng.random((h, w)) > 0.3
        v = rng.uniform(-0.2, 0.9, (h, w)).astype(np.float32)
        nd.append(np.where(clear, v, np.nan))
        nb.append(np.where(clear, v * 0.8, np.nan).astype(np.float32))
        cl.append(clear)
        wa.append(np.where(clear, (v < 0).astype(np.float32), np.nan))
    ds = xr.Dataset({"ndvi": (("time", "y", "x"), np.array(nd, np.float32)),
                     "nbr": (("time", "y", "x"), np.array(nb, np.float32)),
                     "clear": (("time", "y", "x"), np.array(cl)),
                     "water": (("time", "y", "x"), np.array(wa, np.float32))},
                    coords={"time": t, "y": y, "x": x,
                            "platform": ("time", ["sentinel-2a" if d.day % 2 else "landsat-9" for d in t]),
                            "item_id": ("time", [f"S2_{d:%Y%m%d}" for d in t])})
    return ds.rio.write_crs(epsg)


def make_alerts(rows, *, landscape_id="zhalong"):
    """Alert candidates in EPSG:4326 from (alert_id, kind, status, first_detected, area_ha, severity, lon, lat)."""
    import geopandas as gpd
    from shapely.geometry import box

    recs = []
    for aid, kind, status, first, area, sev, lon, lat in rows:
        d = (area * 1e4) ** 0.5 / 111_000  # a square of about the right size, in degrees
        recs.append({"alert_id": aid, "landscape_id": landscape_id, "kind": kind, "status": status,
                     "first_detected": pd.Timestamp(first).date(), "area_ha": area, "severity": sev,
                     "severity_ha": {sev: area} if sev else None, "centroid_lon": lon, "centroid_lat": lat,
                     "geometry": box(lon - d / 2, lat - d / 2, lon + d / 2, lat + d / 2)})
    cols = ["alert_id", "landscape_id", "kind", "status", "first_detected", "area_ha", "severity", "severity_ha",
            "centroid_lon", "centroid_lat", "geometry"]
    return gpd.GeoDataFrame(recs, columns=cols, geometry="geometry", crs=4326)


# ------------------------------------------------------------------------------------------ SMTP
import socket  # noqa: E402
import threading  # noqa: E402
from email import message_from_bytes, policy  # noqa: E402

import pytest  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """A real aiosmtpd server on loopback that keeps what it receives; stop() makes it refuse connections."""

    def __init__(self, port: int, *, auth: tuple[str, str] | None = None):
        self.port = port
        self.messages: list = []
        self.envelopes: list = []
        self.auth = auth
        self.controller = None

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content, policy=policy.default))
        return "250 OK"

    def _authenticator(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (isinstance(auth_data, LoginPassword) and self.auth is not None
              and (auth_data.login.decode(), auth_data.password.decode()) == self.auth)
        return AuthResult(success=ok)

    def start(self):
        from aiosmtpd.controller import Controller

        kw = {}
        if self.auth:
            kw = {"authenticator": self._authenticator, "auth_require_tls": False}
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kw)
        self.controller.start()
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None

    def message_ids(self):
        return [m["Message-ID"] for m in self.messages]


@pytest.fixture
def inbox():
    box = Inbox(free_port()).start()
    yield box
    box.stop()


class DroppingServer:
    """Speaks SMTP up to DATA, reads part of the message, then drops the connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.drops = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                f = conn.makefile("rwb")
                f.write(b"220 flaky ESMTP\r\n")
                f.flush()
                while True:
                    line = f.readline()
                    if not line:
                        break
                    cmd = line[:4].upper()
                    if cmd in (b"EHLO", b"HELO"):
                        f.write(b"250-flaky\r\n250 8BITMIME\r\n")
                    elif cmd == b"DATA":
                        f.write(b"354 go ahead\r\n")
                        f.flush()
                        f.read(512)
                        self.drops += 1
                        break  # drop in the middle of the message
                    else:
                        f.write(b"250 OK\r\n")
                    f.flush()

    def close(self):
        self.sock.close()
