"""The wire protocol between the CNI plugin and the node daemon: the single source of truth.

Both sides import this module (standard library only, cheap to import). docs/cni.md has examples.

Transport: a unix stream socket, `/var/run/eni/eni.socket` by default (mode 0600, the daemon
creates it). ONE request and ONE reply per connection: the plugin connects, writes the request,
reads the reply, closes. The daemon closes after replying.

Framing: each message is one line, a compact UTF-8 JSON object followed by `\\n` (JSON escapes every
newline inside strings, so the first `\\n` ends the message). Chosen over a length prefix because a
human can speak it by hand (`socat - UNIX-CONNECT:/var/run/eni/eni.socket`). A message is at most
`MAX_MESSAGE_BYTES` including the newline; a longer one, a connection closed before the newline,
or bytes that are not one JSON object are a `ProtocolError`.

Timeout: one deadline bounds connect + write + read (`DEFAULT_TIMEOUTS` per verb; the netconf key
`daemon_timeout` or the env `TERWAY_DAEMON_TIMEOUT`, in seconds, overrides it for every verb).

Request (plugin -> daemon); every key is always present, absent values are "" / null:

    {"protocol": 1, "verb": "ADD"|"DEL"|"CHECK"|"STATUS"|"GC", "cni_version": "1.1.0",
     "network_name": "terway", "container_id": "...", "netns": "/var/run/netns/cni-...",
     "ifname": "eth0", "pod_namespace": "default", "pod_name": "nginx",
     "infra_container_id": "...", "pod_uid": "...", "cni_args": {"K8S_POD_NAME": "nginx", ...},
     "runtime_config": {"bandwidth": {"ingressRate": 1000000, ...}, "portMappings": [...]},
     "netconf": {...the plugin's network config without prevResult and runtimeConfig...},
     "prev_result": null | {...current-shaped result (results.py)...},
     "valid_attachments": null | [{"container_id": "...", "ifname": "eth0"}, ...]}

`runtime_config` is the CNI `runtimeConfig` object as the runtime sent it (CNI CONVENTIONS names:
bandwidth rates and bursts in bits, portMappings with hostPort/containerPort/protocol/hostIP),
already validated by the plugin. `prev_result` comes with CHECK and DEL (and ADD when the plugin is
not first in a chain), lifted to the 1.1.0 shape. `valid_attachments` comes with GC only: the daemon
releases every allocation that is not in the list.

Reply (daemon -> plugin), one of:

    {"protocol": 1, "ok": true, "result": {...1.1.0-shaped result...} | null}
    {"protocol": 1, "ok": false, "error": {"code": 11, "msg": "...", "details": "..."}}

ADD answers a result (without `cniVersion`: the plugin sets it while converting); DEL, CHECK,
STATUS and GC answer `"result": null`. Errors carry CNI error codes (`spec.py`) which the plugin
prints as they are: e.g. 11 when the pool is empty and the cloud failed, 3 for CHECK of an unknown
container, 50 for STATUS while the daemon is not ready. DEL of something unknown is `ok`.
"""

from __future__ import annotations

import json
import os
import socket
import time

# Not `from typing import TYPE_CHECKING`: importing typing would cost the plugin's start-up a few ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

PROTOCOL_VERSION = 1
DEFAULT_SOCKET_PATH = "/var/run/eni/eni.socket"
SOCKET_PATH_ENV = "TERWAY_DAEMON_SOCKET"
SOCKET_PATH_KEY = "daemon_socket"
TIMEOUT_ENV = "TERWAY_DAEMON_TIMEOUT"
TIMEOUT_KEY = "daemon_timeout"
MAX_MESSAGE_BYTES = 1 << 20
MAX_TIMEOUT = 600.0
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL

VERBS: tuple[str, ...] = ("ADD", "DEL", "CHECK", "STATUS", "GC")
# ADD may wait for the daemon to call the cloud (a cold pool); STATUS must answer at once.
DEFAULT_TIMEOUTS: dict[str, float] = {"ADD": 30.0, "DEL": 30.0, "CHECK": 10.0, "STATUS": 5.0, "GC": 30.0}

_STR_FIELDS = (
    "verb",
    "cni_version",
    "network_name",
    "container_id",
    "netns",
    "ifname",
    "pod_namespace",
    "pod_name",
    "infra_container_id",
    "pod_uid",
)


class ProtocolError(ValueError):
    """A message that breaks the protocol: framing, size, JSON, shape or version."""


class ExchangeError(Exception):
    """The exchange with the daemon failed; `socket_path` names the daemon's socket."""

    def __init__(self, socket_path: str, reason: str) -> None:
        super().__init__(reason)
        self.socket_path = socket_path
        self.reason = reason


class DaemonUnreachable(ExchangeError):
    """Nothing accepts connections on the socket: the daemon is not running (or not yet)."""


class DaemonTimeout(ExchangeError):
    """The daemon did not answer within the deadline."""


class DaemonBroken(ExchangeError):
    """The connection failed midway or the reply broke the protocol."""


class Request:
    """What the plugin asks the daemon. Built by the plugin, decoded by the daemon."""

    __slots__ = (
        "cni_args",
        "cni_version",
        "container_id",
        "ifname",
        "infra_container_id",
        "netconf",
        "netns",
        "netns_handle",
        "network_name",
        "pod_name",
        "pod_namespace",
        "pod_uid",
        "prev_result",
        "runtime_config",
        "valid_attachments",
        "verb",
    )

    def __init__(
        self,
        *,
        verb: str,
        cni_version: str,
        network_name: str = "",
        container_id: str = "",
        netns: str = "",
        ifname: str = "",
        pod_namespace: str = "",
        pod_name: str = "",
        infra_container_id: str = "",
        pod_uid: str = "",
        cni_args: dict[str, str] | None = None,
        runtime_config: dict[str, object] | None = None,
        netconf: dict[str, object] | None = None,
        prev_result: dict[str, object] | None = None,
        valid_attachments: list[dict[str, str]] | None = None,
    ) -> None:
        self.verb = verb
        self.cni_version = cni_version
        self.network_name = network_name
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.pod_namespace = pod_namespace
        self.pod_name = pod_name
        self.infra_container_id = infra_container_id
        self.pod_uid = pod_uid
        self.cni_args: dict[str, str] = dict(cni_args or {})
        self.runtime_config: dict[str, object] = dict(runtime_config or {})
        self.netconf: dict[str, object] = dict(netconf or {})
        self.prev_result = prev_result
        self.valid_attachments = valid_attachments
        # Where the daemon opens the pod's namespace (the shim's descriptor); never on the wire.
        self.netns_handle = ""

    def to_wire(self) -> dict[str, object]:
        wire: dict[str, object] = {"protocol": PROTOCOL_VERSION}
        for name in _STR_FIELDS:
            wire[name] = getattr(self, name)
        wire["cni_args"] = self.cni_args
        wire["runtime_config"] = self.runtime_config
        wire["netconf"] = self.netconf
        wire["prev_result"] = self.prev_result
        wire["valid_attachments"] = self.valid_attachments
        return wire

    @classmethod
    def from_wire(cls, message: Mapping[str, object]) -> Request:
        """Check a decoded request's shape; ProtocolError names the first bad field."""
        _check_protocol(message)
        strings: dict[str, str] = {}
        for name in _STR_FIELDS:
            value = message.get(name, "")
            if not isinstance(value, str):
                raise ProtocolError(f"request field {name!r} must be a string")
            strings[name] = value
        if strings["verb"] not in VERBS:
            raise ProtocolError(f"unknown verb {strings['verb']!r}; expected one of {', '.join(VERBS)}")
        cni_args = _optional_object(message, "cni_args") or {}
        if not all(isinstance(v, str) for v in cni_args.values()):
            raise ProtocolError("request field 'cni_args' must map strings to strings")
        attachments = message.get("valid_attachments")
        if attachments is not None and not (
            isinstance(attachments, list)
            and all(
                isinstance(a, dict)
                and isinstance(a.get("container_id"), str)
                and isinstance(a.get("ifname"), str)
                for a in attachments
            )
        ):
            raise ProtocolError("request field 'valid_attachments' must be a list of {container_id, ifname}")
        return cls(
            **strings,
            cni_args={str(k): str(v) for k, v in cni_args.items()},
            runtime_config=_optional_object(message, "runtime_config"),
            netconf=_optional_object(message, "netconf"),
            prev_result=_optional_object(message, "prev_result"),
            valid_attachments=attachments,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Request) and self.to_wire() == other.to_wire()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Request({self.verb} {self.container_id or '-'} {self.ifname or '-'})"


class ErrorInfo:
    """A CNI error the daemon answers with: the plugin prints it as the CNI error object."""

    __slots__ = ("code", "details", "msg")

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        self.code = code
        self.msg = msg
        self.details = details

    def to_wire(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg, "details": self.details}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorInfo) and self.to_wire() == other.to_wire()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ErrorInfo({self.code!r}, {self.msg!r}, {self.details!r})"


class Reply:
    """The daemon's answer: `Reply.success(result)` or `Reply.failure(code, msg, details)`."""

    __slots__ = ("error", "ok", "result")

    def __init__(self, ok: bool, result: dict[str, object] | None = None, error: ErrorInfo | None = None) -> None:
        if ok == (error is not None):
            raise ValueError("a reply is either ok or carries an error")
        self.ok = ok
        self.result = result
        self.error = error

    @classmethod
    def success(cls, result: dict[str, object] | None = None) -> Reply:
        return cls(True, result=result)

    @classmethod
    def failure(cls, code: int, msg: str, details: str = "") -> Reply:
        return cls(False, error=ErrorInfo(code, msg, details))

    def to_wire(self) -> dict[str, object]:
        if self.error is not None:
            return {"protocol": PROTOCOL_VERSION, "ok": False, "error": self.error.to_wire()}
        return {"protocol": PROTOCOL_VERSION, "ok": True, "result": self.result}

    @classmethod
    def from_wire(cls, message: Mapping[str, object]) -> Reply:
        _check_protocol(message)
        ok = message.get("ok")
        if ok is True:
            return cls.success(_optional_object(message, "result"))
        if ok is not False:
            raise ProtocolError("reply field 'ok' must be true or false")
        error = message.get("error")
        if not isinstance(error, dict):
            raise ProtocolError("a failed reply needs an 'error' object")
        code, msg, details = error.get("code"), error.get("msg"), error.get("details", "")
        if not isinstance(code, int) or isinstance(code, bool) or code <= 0:
            raise ProtocolError("reply error 'code' must be a positive integer")
        if not isinstance(msg, str) or not isinstance(details, str):
            raise ProtocolError("reply error 'msg' and 'details' must be strings")
        return cls.failure(code, msg, details)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reply) and self.to_wire() == other.to_wire()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Reply(ok={self.ok!r}, error={self.error!r})"


def _check_protocol(message: Mapping[str, object]) -> None:
    version = message.get("protocol")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r} is not {PROTOCOL_VERSION}")


def _optional_object(message: Mapping[str, object], key: str) -> dict[str, object] | None:
    value = message.get(key)
    if value is not None and not isinstance(value, dict):
        raise ProtocolError(f"field {key!r} must be an object or null")
    return value


# Framing ------------------------------------------------------------------------------------


def encode(message: Mapping[str, object]) -> bytes:
    """One frame: compact JSON and a newline. ProtocolError when it exceeds MAX_MESSAGE_BYTES."""
    frame = json.dumps(message, separators=(",", ":")).encode() + b"\n"
    if len(frame) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(frame)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
    return frame


def decode(frame: bytes, limit: int = MAX_MESSAGE_BYTES) -> dict[str, object]:
    """The JSON object of one frame (with or without its newline)."""
    if len(frame) > limit:
        raise ProtocolError(f"message exceeds the {limit}-byte limit")
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"message is not valid JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("message must be a JSON object")
    return message


def encode_request(request: Request) -> bytes:
    return encode(request.to_wire())


def decode_request(frame: bytes) -> Request:
    return Request.from_wire(decode(frame))


def encode_reply(reply: Reply) -> bytes:
    return encode(reply.to_wire())


def decode_reply(frame: bytes) -> Reply:
    return Reply.from_wire(decode(frame))


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def recv_frame(sock: socket.socket, deadline: float) -> bytes:
    """Read one frame (up to and including its newline) before `deadline` (time.monotonic()).

    Raises TimeoutError at the deadline, ProtocolError when the peer closes before the newline,
    sends more than MAX_MESSAGE_BYTES, or sends bytes after the newline.
    """
    buffer = bytearray()
    while True:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(65536)
        if not chunk:
            if buffer:
                raise ProtocolError("connection closed in the middle of a message")
            raise ProtocolError("connection closed without a message")
        buffer += chunk
        end = buffer.find(b"\n")
        if end >= 0:
            if end + 1 != len(buffer):
                raise ProtocolError("more than one message on a connection")
            return bytes(buffer)
        if len(buffer) >= MAX_MESSAGE_BYTES:
            raise ProtocolError(f"message exceeds the {MAX_MESSAGE_BYTES}-byte limit")


def send_frame(sock: socket.socket, frame: bytes, deadline: float) -> None:
    sock.settimeout(_remaining(deadline))
    sock.sendall(frame)


# The client (the plugin's side) ---------------------------------------------------------------


def call(request: Request, socket_path: str, timeout: float) -> Reply:
    """Send `request` to the daemon at `socket_path` and return its reply, all within `timeout` s.

    Raises DaemonUnreachable (cannot connect), DaemonTimeout, or DaemonBroken (reset, bad reply);
    each names the socket. ProtocolError when the request itself is too large.
    """
    frame = encode_request(request)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.settimeout(timeout)
            sock.connect(socket_path)
        except TimeoutError:
            raise DaemonTimeout(socket_path, f"connecting took longer than {timeout:g}s") from None
        except OSError as exc:
            raise DaemonUnreachable(socket_path, exc.strerror or str(exc)) from None
        try:
            send_frame(sock, frame, deadline)
            reply = recv_frame(sock, deadline)
        except TimeoutError:
            raise DaemonTimeout(socket_path, f"no reply within {timeout:g}s") from None
        except ProtocolError as exc:
            raise DaemonBroken(socket_path, str(exc)) from None
        except OSError as exc:
            raise DaemonBroken(socket_path, exc.strerror or str(exc)) from None
    try:
        return decode_reply(reply)
    except ProtocolError as exc:
        raise DaemonBroken(socket_path, f"bad reply: {exc}") from None


# The server side (for the daemon) -------------------------------------------------------------


def serve_connection(conn: socket.socket, handle: Callable[[Request], Reply], timeout: float = 60.0) -> None:
    """Answer one accepted connection: read the request, call `handle`, send its reply.

    A request that breaks the protocol is answered with CNI code 6 (decode failure) without
    calling `handle`. The caller closes `conn`. For a blocking (threaded) daemon; an asyncio daemon
    uses `decode_request` / `encode_reply` with `StreamReader.readline()` (limit MAX_MESSAGE_BYTES).
    """
    deadline = time.monotonic() + timeout
    try:
        request = decode_request(recv_frame(conn, deadline))
    except ProtocolError as exc:
        reply = Reply.failure(6, "bad request from the CNI plugin", str(exc))
    else:
        reply = handle(request)
    send_frame(conn, encode_reply(reply), deadline)


# Protocol 2: one whole CNI invocation, forwarded by the static shim ----------------------------
#
# What kubelet execs on the host is the static shim (`shim/`): it holds no CNI logic. It sends the
# invocation as it received it and prints the daemon's answer:
#
#     shim -> daemon: {"protocol": 2, "env": {"CNI_COMMAND": "ADD", ...every CNI_* and TERWAY_*
#                      variable...}, "stdin": "<the network config as read>", "netns_fd": true}
#     daemon -> shim: {"protocol": 2, "exit": 0, "stdout": "<what the plugin prints>", "stderr": ""}
#
# With "netns_fd": true the shim passed CNI_NETNS as an open file descriptor (SCM_RIGHTS) with the
# first bytes of the frame: the daemon enters the pod's namespace through it, whatever mount
# namespace the runtime created the namespace file in. Frames are the same newline-ended JSON as
# protocol 1, up to MAX_INVOCATION_BYTES; stdin is limited to MAX_STDIN_BYTES before encoding.

INVOCATION_PROTOCOL = 2
MAX_STDIN_BYTES = 1 << 20
MAX_INVOCATION_BYTES = 8 << 20
FORWARDED_PREFIXES = ("CNI_", "TERWAY_")


class Invocation:
    """One CNI invocation as the shim forwards it: the environment, stdin, and the netns descriptor."""

    __slots__ = ("env", "netns_fd", "stdin")

    def __init__(self, env: dict[str, str], stdin: str, netns_fd: bool = False) -> None:
        self.env = env
        self.stdin = stdin
        self.netns_fd = netns_fd

    def to_wire(self) -> dict[str, object]:
        return {"protocol": INVOCATION_PROTOCOL, "env": self.env, "stdin": self.stdin, "netns_fd": self.netns_fd}

    @classmethod
    def from_wire(cls, message: Mapping[str, object]) -> Invocation:
        if message.get("protocol") != INVOCATION_PROTOCOL:
            raise ProtocolError(f"protocol version {message.get('protocol')!r} is not {INVOCATION_PROTOCOL}")
        env, stdin, netns_fd = message.get("env"), message.get("stdin"), message.get("netns_fd", False)
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ProtocolError("invocation field 'env' must map strings to strings")
        if not isinstance(stdin, str):
            raise ProtocolError("invocation field 'stdin' must be a string")
        if not isinstance(netns_fd, bool):
            raise ProtocolError("invocation field 'netns_fd' must be true or false")
        return cls(dict(env), stdin, netns_fd)


class Outcome:
    """What one invocation ends with: the exit status and what the plugin writes."""

    __slots__ = ("exit", "stderr", "stdout")

    def __init__(self, exit: int, stdout: str, stderr: str = "") -> None:
        self.exit = exit
        self.stdout = stdout
        self.stderr = stderr

    def to_wire(self) -> dict[str, object]:
        return {"protocol": INVOCATION_PROTOCOL, "exit": self.exit, "stdout": self.stdout, "stderr": self.stderr}

    @classmethod
    def from_wire(cls, message: Mapping[str, object]) -> Outcome:
        if message.get("protocol") != INVOCATION_PROTOCOL:
            raise ProtocolError(f"protocol version {message.get('protocol')!r} is not {INVOCATION_PROTOCOL}")
        code, out, err = message.get("exit"), message.get("stdout"), message.get("stderr", "")
        if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 255:
            raise ProtocolError("reply field 'exit' must be an integer 0-255")
        if not isinstance(out, str) or not isinstance(err, str):
            raise ProtocolError("reply fields 'stdout' and 'stderr' must be strings")
        return cls(code, out, err)

    def __repr__(self) -> str:
        return f"Outcome(exit={self.exit!r})"


def encode_frame(message: Mapping[str, object], limit: int) -> bytes:
    frame = json.dumps(message, separators=(",", ":")).encode() + b"\n"
    if len(frame) > limit:
        raise ProtocolError(f"message of {len(frame)} bytes exceeds the {limit}-byte limit")
    return frame


def recv_frame_and_fds(sock: socket.socket, deadline: float, limit: int) -> tuple[bytes, list[int]]:
    """Like `recv_frame`, up to `limit` bytes, also collecting descriptors passed with SCM_RIGHTS.

    The caller owns (and must close) the returned descriptors, also when this raises: they are
    closed here before raising.
    """
    buffer = bytearray()
    fds: list[int] = []
    try:
        while True:
            sock.settimeout(_remaining(deadline))
            chunk, received, _flags, _addr = socket.recv_fds(sock, 65536, 1)
            fds.extend(received)
            if not chunk:
                raise ProtocolError("connection closed in the middle of a message" if buffer
                                    else "connection closed without a message")
            buffer += chunk
            end = buffer.find(b"\n")
            if end >= 0:
                if end + 1 != len(buffer):
                    raise ProtocolError("more than one message on a connection")
                return bytes(buffer), fds
            if len(buffer) >= limit:
                raise ProtocolError(f"message exceeds the {limit}-byte limit")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
