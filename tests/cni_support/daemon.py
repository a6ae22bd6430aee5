"""A small node daemon for the CNI plugin's tests: a real unix-socket server speaking the protocol.

It keeps allocations in memory (container id + ifname -> result), hands out 10.0.0.x/24 (and
fd00::x/64 when `dual_stack`), and can misbehave on demand (`mode`): "hang" reads the request and
never answers, "garbage" answers bytes that are not JSON, "close" hangs up without a word;
`corrupt_results` makes ADD allocate and answer a broken result (the plugin must roll it back).
Every request it decoded is kept in `requests`. Use it as a context manager; it stops its threads
and closes its sockets on exit.
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time
from pathlib import Path
from types import TracebackType

from terwayctl.cni import main as cni_main
from terwayctl.cni import protocol
from terwayctl.cni.protocol import Reply, Request
from terwayctl.cni.spec import PLUGIN_NOT_AVAILABLE, TRY_AGAIN_LATER, UNKNOWN_CONTAINER

HANG_LIMIT = 10.0  # a hanging connection gives up after this long even if nobody stops it


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = False
    block_on_close = True


class TestDaemon:
    """The fake daemon; `socket_path` is where the plugin connects."""

    __test__ = False  # not a pytest test class

    def __init__(self, socket_path: Path, *, dual_stack: bool = False) -> None:
        self.socket_path = socket_path
        self.dual_stack = dual_stack
        self.ready = True
        self.mode = "normal"
        self.pool_empty = False
        self.corrupt_results = False  # ADD allocates but answers a result the plugin must refuse
        self.allocations: dict[tuple[str, str], dict[str, object]] = {}
        self.requests: list[Request] = []
        self.netns_fds_seen = 0  # invocations that came with the pod's namespace as a descriptor
        self.released: list[tuple[str, str]] = []
        self._next_host = 10
        self._lock = threading.Lock()
        self._stop = threading.Event()
        daemon = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                daemon._serve(self.request)

        self._server = _Server(str(socket_path), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    def __enter__(self) -> TestDaemon:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=HANG_LIMIT)

    # --- the connection ---------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        """Protocol 2 (what the shim and its Python twin send) runs the real CNI semantics
        (`cni.main.run`) in-process over this fake backend, as the real daemon's server does;
        protocol 1 requests are answered directly."""
        fds: list[int] = []
        try:
            frame, fds = protocol.recv_frame_and_fds(conn, time.monotonic() + 5.0, protocol.MAX_INVOCATION_BYTES)
            message = protocol.decode(frame, protocol.MAX_INVOCATION_BYTES)
            if self.mode == "hang":
                self._stop.wait(HANG_LIMIT)
            elif self.mode == "garbage":
                conn.sendall(b"this is not json\n")
            elif self.mode == "normal" and message.get("protocol") == protocol.INVOCATION_PROTOCOL:
                invocation = protocol.Invocation.from_wire(message)
                handle = f"/proc/{os.getpid()}/fd/{fds[0]}" if invocation.netns_fd and fds else ""
                self.netns_fds_seen += bool(handle)
                outcome = cni_main.run(invocation.env, invocation.stdin, self.handle, handle)
                conn.sendall(protocol.encode_frame(outcome.to_wire(), protocol.MAX_INVOCATION_BYTES))
            elif self.mode == "normal":
                conn.sendall(protocol.encode_reply(self.handle(protocol.Request.from_wire(message))))
        except (OSError, protocol.ProtocolError):
            pass  # the client went away: nothing to answer
        finally:
            for fd in fds:
                os.close(fd)

    def handle(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            verb = getattr(self, "_" + request.verb.lower())
            reply: Reply = verb(request)
            return reply

    # --- the verbs ----------------------------------------------------------------------------

    def _add(self, request: Request) -> Reply:
        key = (request.container_id, request.ifname)
        if key in self.allocations:
            return Reply.success(self.allocations[key])
        if self.pool_empty:
            return Reply.failure(TRY_AGAIN_LATER, "no IP in the pool", "InvalidVSwitchId.IpNotEnough")
        host = self._next_host
        self._next_host += 1
        ips: list[dict[str, object]] = [{"address": f"10.0.0.{host}/24", "gateway": "10.0.0.1", "interface": 1}]
        routes: list[dict[str, object]] = [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]
        if self.dual_stack:
            ips.append({"address": f"fd00::{host:x}/64", "gateway": "fd00::1", "interface": 1})
            routes.append({"dst": "::/0", "gw": "fd00::1"})
        result: dict[str, object] = {
            "interfaces": [  # as the node daemon answers: the host veth, then the pod's interface
                {"name": f"cali{request.container_id[:11]}", "mac": f"ee:ee:ee:ee:ee:{host:02x}", "mtu": 1500},
                {"name": request.ifname, "mac": f"02:00:00:00:00:{host:02x}", "mtu": 1500, "sandbox": request.netns},
            ],
            "ips": ips,
            "routes": routes,
            "dns": {"nameservers": ["172.21.0.10"], "search": ["default.svc.cluster.local"]},
        }
        self.allocations[key] = result
        if self.corrupt_results:
            return Reply.success({"ips": [{"address": "10.0.0.999/24"}]})
        return Reply.success(result)

    def _del(self, request: Request) -> Reply:
        key = (request.container_id, request.ifname)
        if self.allocations.pop(key, None) is not None:
            self.released.append(key)
        return Reply.success()

    def _check(self, request: Request) -> Reply:
        held = self.allocations.get((request.container_id, request.ifname))
        if held is None:
            return Reply.failure(UNKNOWN_CONTAINER, f"unknown container {request.container_id}")
        prev = request.prev_result or {}
        want = sorted(str(ip["address"]) for ip in held["ips"])  # type: ignore[attr-defined]
        got = sorted(str(ip.get("address")) for ip in prev.get("ips", []))  # type: ignore[attr-defined]
        if want != got:
            return Reply.failure(100, "addresses differ", f"daemon holds {want}, prevResult has {got}")
        return Reply.success()

    def _status(self, request: Request) -> Reply:
        return Reply.success() if self.ready else Reply.failure(PLUGIN_NOT_AVAILABLE, "pool not warmed up yet")

    def _gc(self, request: Request) -> Reply:
        valid = {(a["container_id"], a["ifname"]) for a in request.valid_attachments or []}
        for key in [key for key in self.allocations if key not in valid]:
            del self.allocations[key]
            self.released.append(key)
        return Reply.success()

