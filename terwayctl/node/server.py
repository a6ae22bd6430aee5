"""The daemon's transports: the CNI unix socket and the metrics endpoint.

The CNI socket speaks `terwayctl.cni.protocol` (one JSON line each way per connection), one thread
per connection. Protocol 2 is a whole CNI invocation forwarded by the static shim (with the pod's
network namespace as a passed descriptor): the daemon runs the CNI semantics (`cni.main.run`) and
answers what the plugin prints. Protocol 1 is the typed request of `daemon status` and tools. One extension for `terwayctl daemon status`: a STATUS request carrying
``"detail": true`` is answered with the status document as its result (the plugin never sends
that key, and its STATUS still gets ``result: null``).

Metrics: ``GET /metrics`` (Prometheus text) on ``127.0.0.1:PORT`` or ``unix:/path``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from terwayctl.cni.main import run as run_invocation
from terwayctl.cni.protocol import (
    DEFAULT_TIMEOUTS,
    INVOCATION_PROTOCOL,
    MAX_INVOCATION_BYTES,
    Invocation,
    Outcome,
    ProtocolError,
    Reply,
    Request,
    decode,
    encode_frame,
    encode_reply,
    recv_frame_and_fds,
    send_frame,
)
from terwayctl.core.errors import InvalidInput
from terwayctl.node.service import Daemon

log = logging.getLogger("terwayctl.node.server")

CONNECTION_TIMEOUT = 60.0


def remove_stale_socket(path: Path, option: str) -> None:
    """Remove `path` only when it is a unix socket nobody answers on; refuse anything else.

    The daemon runs as root: `--socket /etc/passwd` must never delete the file. A regular file, a
    directory, a symbolic link or a socket a live process listens on are refused (InvalidInput).
    """
    import errno
    import stat

    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InvalidInput(f"{option} {path}: cannot inspect it: {exc.strerror}") from None
    if not stat.S_ISSOCK(mode):
        kind = ("a directory" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode)
                else "a regular file" if stat.S_ISREG(mode) else "not a socket")
        raise InvalidInput(f"{option} {path} exists and is {kind}; refusing to replace it",
                           hint="give the path of a socket (a stale one is removed) or of no file yet")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise InvalidInput(f"{option} {path}: cannot tell whether the socket is in use: {exc.strerror or exc}",
                               hint="remove it by hand if no daemon uses it") from None
    else:
        raise InvalidInput(f"{option} {path}: another process is listening on this socket",
                           hint="stop the other daemon first, or give another path")
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    log.info("removed the stale socket %s", path)


class SocketServer:
    """Accepts CNI connections on a unix socket (mode 0600) and answers them with `Daemon.handle`."""

    def __init__(self, daemon: Daemon, path: Path) -> None:
        self.daemon = daemon
        self.path = path
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._accepter: threading.Thread | None = None
        self._workers: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        remove_stale_socket(self.path, "--socket")  # a stale socket of a previous run, nothing else
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        except OSError as exc:
            sock.close()
            raise InvalidInput(f"cannot listen on {self.path}: {exc.strerror}") from None
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        sock.listen(256)
        sock.settimeout(0.2)
        self._sock = sock
        self._accepter = threading.Thread(target=self._accept, name="cni-accept", daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=self._serve, args=(conn,), name="cni-conn", daemon=True)
            with self._lock:
                self._workers.add(worker)
            worker.start()

    def _serve(self, conn: socket.socket) -> None:
        fds: list[int] = []
        try:
            with conn:
                deadline = time.monotonic() + CONNECTION_TIMEOUT
                try:
                    frame, fds = recv_frame_and_fds(conn, deadline, MAX_INVOCATION_BYTES)
                    message = decode(frame, MAX_INVOCATION_BYTES)
                    if message.get("protocol") == INVOCATION_PROTOCOL:
                        outcome = self._invoke(Invocation.from_wire(message), fds)
                        send_frame(conn, encode_frame(outcome.to_wire(), MAX_INVOCATION_BYTES), deadline)
                        return
                    if message.get("verb") == "STATUS" and message.get("detail") is True:
                        reply = Reply.success(self.daemon.status())
                    else:
                        reply = self.daemon.handle(Request.from_wire(message))
                except ProtocolError as exc:
                    reply = Reply.failure(6, "bad request from the CNI plugin", str(exc))
                send_frame(conn, encode_reply(reply), deadline)
        except (OSError, TimeoutError) as exc:
            log.warning("CNI connection failed: %s", exc)
        finally:
            for fd in fds:
                os.close(fd)
            with self._lock:
                self._workers.discard(threading.current_thread())

    def _invoke(self, invocation: Invocation, fds: list[int]) -> Outcome:
        """Run the CNI semantics for one forwarded invocation. The pod's namespace is entered
        through the descriptor the shim passed (`/proc/<pid>/fd/<n>`, a path child processes such
        as tc can open too), so it need not exist in this daemon's mount namespace."""
        handle = f"/proc/{os.getpid()}/fd/{fds[0]}" if invocation.netns_fd and fds else ""
        return run_invocation(invocation.env, invocation.stdin, self.daemon.handle, handle)

    def stop(self) -> None:
        self._stop.set()
        if self._accepter is not None:
            self._accepter.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout=DEFAULT_TIMEOUTS["ADD"])


class _MetricsHandler(BaseHTTPRequestHandler):
    render: Callable[[], str]

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404, "only /metrics")
            return
        body = type(self).render().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: " + format, *args)


class _UnixHttpServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> tuple[Any, Any]:
        conn, _ = super().get_request()
        return conn, ("unix", 0)


class MetricsServer:
    """``GET /metrics`` on ``127.0.0.1:PORT`` (port 0 picks one) or ``unix:/path``."""

    def __init__(self, address: str, render: Callable[[], str]) -> None:
        self.address = address
        handler = type("MetricsHandler", (_MetricsHandler,), {"render": staticmethod(render)})
        self._server: socketserver.BaseServer
        if address.startswith("unix:"):
            path = Path(address[5:])
            remove_stale_socket(path, "--metrics")
            try:
                self._server = _UnixHttpServer(str(path), handler)
            except OSError as exc:
                raise InvalidInput(f"--metrics {address}: cannot listen on {path}: {exc.strerror}") from None
            self.url = address
        else:
            host, _, port = address.rpartition(":")
            if host not in ("127.0.0.1", "localhost", "::1") or not port.isdigit():
                raise InvalidInput(f"--metrics {address!r}: use 127.0.0.1:PORT or unix:/path (local only)")
            server = ThreadingHTTPServer((host, int(port)), handler)
            server.daemon_threads = True
            self._server = server
            self.url = f"http://{host}:{server.server_address[1]}/metrics"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="metrics", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self.address.startswith("unix:"):
            with contextlib.suppress(FileNotFoundError):
                Path(self.address[5:]).unlink()


class Running:
    """A started daemon with its socket and metrics servers; `stop()` closes everything."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.socket = SocketServer(daemon, daemon.config.socket_path)
        self.metrics: MetricsServer | None = None

    def start(self) -> Running:
        self.daemon.start()
        try:
            if self.daemon.config.metrics:
                self.metrics = MetricsServer(self.daemon.config.metrics, self.daemon.metrics.render)
                self.metrics.start()
                log.info("metrics on %s", self.metrics.url)
            self.socket.start()
        except BaseException:
            self.stop()
            raise
        log.info("serving CNI on %s", self.daemon.config.socket_path)
        return self

    def stop(self) -> None:
        self.socket.stop()
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        self.daemon.stop()

    def __enter__(self) -> Running:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
