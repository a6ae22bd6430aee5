"""The supervisor's control socket: one JSON line in, one JSON line out, per connection.

Requests: ``{"op": "<name>", ...arguments}``; replies: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "...", "hint": "..."}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from terwayctl.core.errors import TerwayctlError

log = logging.getLogger("terwayctl.lab.control")
MAX_LINE = 1 << 20
Handler = Callable[[Mapping[str, Any]], Any]


class SupervisorUnavailable(TerwayctlError):
    """The lab's supervisor cannot be asked (not running, or crashed)."""


def ask(socket_path: Path, op: str, timeout: float = 30.0, **args: Any) -> Any:
    """Send one request to the supervisor and return its result; raise on an error reply."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
            reply = json.loads(_read_line(sock))
    except (OSError, ValueError) as exc:
        raise SupervisorUnavailable(f"cannot ask the lab supervisor at {socket_path}: {exc}",
                                    hint="is the lab up? 'terwayctl lab status'; recreate it with lab down + lab up") from None
    if not reply.get("ok"):
        raise TerwayctlError(str(reply.get("error")), hint=reply.get("hint") or None)
    return reply.get("result")


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_LINE:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk:
            break
    return b"".join(chunks).split(b"\n", 1)[0]


class ControlServer:
    """Serves `handlers` on a unix socket (mode 0600) from one accept thread until `stop()`."""

    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self.handlers = dict(handlers)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        os.chmod(path, 0o600)
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="lab-control", daemon=True)

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), name="lab-control-conn", daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(60)
            try:
                request = json.loads(_read_line(conn))
                handler = self.handlers.get(str(request.get("op")))
                if handler is None:
                    reply: dict[str, Any] = {"ok": False, "error": f"unknown op {request.get('op')!r}"}
                else:
                    reply = {"ok": True, "result": handler(request)}
            except TerwayctlError as exc:
                reply = {"ok": False, "error": exc.message, "hint": exc.hint}
            except Exception as exc:
                log.exception("control request failed")
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(reply).encode() + b"\n")
