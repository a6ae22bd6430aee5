"""The Python twin of the static shim: forward one CNI invocation to the daemon, print its answer.

What kubelet execs on a node is the static shim (`shim/main.go`); this module behaves the same
way for the `terway` console script and `terwayctl cni`, which stay as debugging clients, and for
the tests of the wire protocol. Like the shim it holds no CNI logic: it picks the socket and the
deadline, passes CNI_NETNS as an open descriptor, and answers only what the daemon cannot:

- no daemon listening, or no answer before the deadline: code 11 "try again later" (50 "plugin
  not available" for STATUS), naming the socket (a DEL that "succeeded" without the daemon would leak the pod's IP for good, while a
  failed DEL is retried by the runtime until the daemon is back);
- the connection breaks or the reply breaks the protocol: code 5, I/O failure;
- stdin larger than `protocol.MAX_STDIN_BYTES`: code 6, without connecting.

Socket: TERWAY_DAEMON_SOCKET, else the config's `daemon_socket`, else /var/run/eni/eni.socket.
Deadline (connect + send + receive): TERWAY_DAEMON_TIMEOUT, else `daemon_timeout`, else the
verb's default (`protocol.DEFAULT_TIMEOUTS`). Invalid values are left to the daemon to report.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time

from terwayctl.cni import protocol
from terwayctl.cni.spec import (
    DECODE_FAILURE,
    IO_FAILURE,
    LATEST_VERSION,
    PLUGIN_NOT_AVAILABLE,
    TRY_AGAIN_LATER,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import BinaryIO, TextIO

RETRY_DETAILS = "the runtime retries; check the terway pod on this node"
DEFAULT_VERB_TIMEOUT = 30.0


def _config(stdin: bytes) -> dict[str, object]:
    try:
        document = json.loads(stdin)
    except (ValueError, RecursionError):
        return {}
    return document if isinstance(document, dict) else {}


def requested_version(config: Mapping[str, object]) -> str:
    version = config.get("cniVersion")
    return version if isinstance(version, str) and version else LATEST_VERSION


def socket_path(env: Mapping[str, str], config: Mapping[str, object]) -> str:
    from_config = config.get(protocol.SOCKET_PATH_KEY)
    if env.get(protocol.SOCKET_PATH_ENV):
        return env[protocol.SOCKET_PATH_ENV]
    if isinstance(from_config, str) and from_config:
        return from_config
    return protocol.DEFAULT_SOCKET_PATH


def _seconds(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if 0 < seconds <= protocol.MAX_TIMEOUT else None


def deadline_seconds(env: Mapping[str, str], config: Mapping[str, object]) -> float:
    from_config = config.get(protocol.TIMEOUT_KEY)
    for candidate in (env.get(protocol.TIMEOUT_ENV), from_config if isinstance(from_config, int | float) else None):
        seconds = _seconds(candidate) if candidate not in (None, "") else None
        if seconds is not None:
            return seconds
    verb = env.get("CNI_COMMAND", "")
    return protocol.DEFAULT_TIMEOUTS.get(verb, 5.0 if verb == "VERSION" else DEFAULT_VERB_TIMEOUT)


def _error(version: str, code: int, msg: str, details: str = "") -> protocol.Outcome:
    document = {"cniVersion": version, "code": code, "msg": msg, "details": details}
    return protocol.Outcome(1, json.dumps(document, indent=4) + "\n")


def _open_netns(path: str) -> int | None:
    if not path:
        return None
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _exchange(path: str, frame: bytes, netns_fd: int | None, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except TimeoutError:
            raise protocol.DaemonTimeout(path, f"no reply within {timeout:g}s") from None
        except OSError as exc:
            raise protocol.DaemonUnreachable(path, exc.strerror or str(exc)) from None
        try:
            if netns_fd is not None:
                sent = socket.send_fds(sock, [frame], [netns_fd])
                frame = frame[sent:]
            if frame:  # an empty send after the daemon answered and closed would fail with EPIPE
                protocol.send_frame(sock, frame, deadline)
            reply, fds = protocol.recv_frame_and_fds(sock, deadline, protocol.MAX_INVOCATION_BYTES)
        except TimeoutError:
            raise protocol.DaemonTimeout(path, f"no reply within {timeout:g}s") from None
        except protocol.ProtocolError as exc:
            raise protocol.DaemonBroken(path, str(exc)) from None
        except OSError as exc:
            raise protocol.DaemonBroken(path, exc.strerror or str(exc)) from None
    for fd in fds:
        os.close(fd)
    return reply


def forward(env: Mapping[str, str], stdin: bytes) -> protocol.Outcome:
    """Send one invocation to the daemon and return its outcome, or the error the shim would print."""
    config = _config(stdin)
    version = requested_version(config)
    if len(stdin) > protocol.MAX_STDIN_BYTES:
        return _error(version, DECODE_FAILURE, f"network config on stdin is larger than {protocol.MAX_STDIN_BYTES} bytes")
    path = socket_path(env, config)
    timeout = deadline_seconds(env, config)
    netns_fd = _open_netns(env.get("CNI_NETNS", ""))
    forwarded = {k: v for k, v in env.items() if k.startswith(protocol.FORWARDED_PREFIXES)}
    try:
        invocation = protocol.Invocation(forwarded, stdin.decode(errors="replace"), netns_fd is not None)
        frame = protocol.encode_frame(invocation.to_wire(), protocol.MAX_INVOCATION_BYTES)
        reply = _exchange(path, frame, netns_fd, timeout)
        return protocol.Outcome.from_wire(protocol.decode(reply, protocol.MAX_INVOCATION_BYTES))
    except (protocol.DaemonUnreachable, protocol.DaemonTimeout) as exc:
        what = "is not running" if isinstance(exc, protocol.DaemonUnreachable) else "did not answer in time"
        message = f"terway daemon {what}: {path}: {exc.reason}"
        if env.get("CNI_COMMAND") == "STATUS":  # the spec's answer for "cannot accept ADD now"
            return _error(version, PLUGIN_NOT_AVAILABLE, "plugin not available: " + message, RETRY_DETAILS)
        return _error(version, TRY_AGAIN_LATER, message, RETRY_DETAILS)
    except (protocol.DaemonBroken, protocol.ProtocolError) as exc:
        reason = exc.reason if isinstance(exc, protocol.DaemonBroken) else f"bad reply: {exc}"
        return _error(version, IO_FAILURE, f"talking to the terway daemon at {path} failed: {reason}")
    finally:
        if netns_fd is not None:
            os.close(netns_fd)


def main(env: Mapping[str, str], stdin: BinaryIO, stdout: TextIO, stderr: TextIO) -> int:
    """Read stdin (bounded), forward, write the daemon's output; the exit status to exit with."""
    try:
        data = stdin.read(protocol.MAX_STDIN_BYTES + 1)
    except OSError as exc:
        outcome = _error(LATEST_VERSION, IO_FAILURE, f"cannot read the network config from stdin: {exc}")
    else:
        outcome = forward(env, data)
    with contextlib.suppress(OSError, ValueError):
        stdout.write(outcome.stdout)
        stdout.flush()
        if outcome.stderr:
            stderr.write(outcome.stderr)
            stderr.flush()
    return outcome.exit
