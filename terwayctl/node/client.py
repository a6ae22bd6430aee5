"""Asking a running daemon over its CNI socket (standard library and the wire protocol only).

`terwayctl daemon status` sends a STATUS request with ``"detail": true``; the daemon answers the
status document as the result (see server.py).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from terwayctl.cni import protocol
from terwayctl.core.errors import TerwayctlError


class DaemonUnavailable(TerwayctlError):
    """The daemon cannot be asked, or says it is not ready (exit 1)."""


def status_request() -> dict[str, object]:
    """The wire message `terwayctl daemon status` sends."""
    return {"protocol": protocol.PROTOCOL_VERSION, "verb": "STATUS", "cni_version": "1.1.0", "detail": True}


def ask_status(socket_path: Path, timeout: float = 5.0) -> dict[str, Any]:
    """The daemon's status document; DaemonUnavailable when it cannot be asked."""
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            protocol.send_frame(sock, protocol.encode(status_request()), deadline)
            reply = protocol.decode_reply(protocol.recv_frame(sock, deadline))
    except (OSError, TimeoutError, protocol.ProtocolError) as exc:
        raise DaemonUnavailable(
            f"cannot ask the daemon at {socket_path}: {exc}",
            hint="is 'terwayctl daemon' running? pass its socket: 'daemon status --socket PATH'",
        ) from None
    if reply.error is not None:
        raise DaemonUnavailable(f"the daemon answered {reply.error.code}: {reply.error.msg}")
    return dict(reply.result or {})
