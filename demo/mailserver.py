"""A real SMTP server (aiosmtpd) on loopback for the offline demo: every mail it accepts is saved as
``DIR/mail/<nnn>-<landscape>.eml``."""

from __future__ import annotations

import itertools
import socket
import threading
from email import message_from_bytes, policy
from pathlib import Path

__all__ = ["MailCatcher"]


class MailCatcher:
    """``with MailCatcher(dir) as mc:`` starts the server on a free loopback port (``mc.port``)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._n = itertools.count(len(list(self.folder.glob("*.eml"))) + 1)
        self._lock = threading.Lock()
        self.received: list[Path] = []
        self.controller = None
        self.port = 0

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = message_from_bytes(raw, policy=policy.default)
        lid = str(msg.get("X-Amurwatch-Landscape", "mail")).replace("/", "_")[:64]
        with self._lock:
            path = self.folder / f"{next(self._n):03d}-{lid}.eml"
            path.write_bytes(raw)
            self.received.append(path)
        return "250 OK"

    def __enter__(self) -> "MailCatcher":
        from aiosmtpd.controller import Controller

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None
