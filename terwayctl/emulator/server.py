"""The emulator: HTTP on 127.0.0.1, dispatch of RPC calls to actions, idempotency and hooks.

`Emulator` is the public object: start it, read `.url`, set `.faults`, `stop()` it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from terwayctl.emulator.actions_ecs import ECS_ACTIONS
from terwayctl.emulator.actions_vpc import VPC_ACTIONS
from terwayctl.emulator.auth import NonceCache, authenticate, authorize
from terwayctl.emulator.context import Call, Handler, Reply, next_due, settle
from terwayctl.emulator.errors import ApiError, missing
from terwayctl.emulator.faults import FaultInjector
from terwayctl.emulator.hooks import EniHook, HookEvent, NoopEniHook
from terwayctl.emulator.httpserver import ClosingHTTPServer
from terwayctl.emulator.store import Store, seed_world
from terwayctl.emulator.world import World, default_world

log = logging.getLogger(__name__)

ECS_VERSION = "2014-05-26"
VPC_VERSION = "2016-04-28"


@dataclass(frozen=True)
class Product:
    name: str
    host: str
    actions: Mapping[str, Handler]


PRODUCTS = {
    ECS_VERSION: Product("Ecs", "ecs.aliyuncs.com", ECS_ACTIONS),
    VPC_VERSION: Product("Vpc", "vpc.aliyuncs.com", VPC_ACTIONS),
}
DELAYED_ACTIONS = frozenset({"AttachNetworkInterface", "DetachNetworkInterface"})
# Parameters that do not change what an idempotent call means (they differ between retries).
COMMON_PARAMS = frozenset({
    "Signature", "SignatureNonce", "Timestamp", "SignatureMethod", "SignatureVersion", "SignatureType",
    "AccessKeyId", "SecurityToken", "Format", "Version", "Action",
})


@dataclass(frozen=True)
class Response:
    status: int
    body: Reply


class Emulator:
    """An ECS + VPC OpenAPI emulator on one SQLite state file.

    `world` seeds an empty state (the default world when None); an existing state is kept as it is
    (`seeded` tells which happened).
    The world's faults are applied on every start. Use `start()` / `stop()` or `with Emulator(...) as emu:`.
    """

    def __init__(
        self,
        state_path: Path | str,
        world: World | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        hook: EniHook | None = None,
        fault_seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the emulator listens on loopback only")
        self.host, self.port = host, port
        self.hook: EniHook = hook or NoopEniHook()
        self.clock = clock
        self.store = Store(state_path)
        chosen = world or default_world()
        self.seeded = self.store.is_empty()
        if self.seeded:
            try:
                with self.store.transaction() as conn:
                    seed_world(conn, chosen)
            except BaseException:
                self.store.close()
                raise
        self.region = self.store.region()
        self.faults = FaultInjector(seed=fault_seed if fault_seed is not None else chosen.fault_seed)
        if world is not None:
            for action, spec in world.faults.items():
                self.faults.set(action, spec)
        self.key_pairs = self._key_pairs()
        self._nonces = NonceCache(clock)
        self._httpd: _HttpServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._wake = threading.Event()

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Emulator:
        self._httpd = _HttpServer((self.host, self.port), _RequestHandler, self)
        self.port = self._httpd.server_address[1]
        self._threads = [
            threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                             name="emulator-http", daemon=True),
            threading.Thread(target=self._settler, name="emulator-settler", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """host:port, the form the aliyun SDK's request.set_endpoint() takes (with protocol http)."""
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop serving, close every connection and the state file; safe to call twice."""
        self._stopping.set()
        self._wake.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.close_connections()
            self._httpd.server_close()
            self._httpd = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        self.store.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _key_pairs(self) -> list[tuple[str, str]]:
        with self.store.transaction() as conn:
            return [(r[0], r[1]) for r in conn.execute("SELECT access_key_id, secret FROM key_pairs ORDER BY rowid")]

    # --- one call --------------------------------------------------------------------------------

    def handle(self, method: str, params: Mapping[str, str]) -> Response:
        """Answer one RPC call: (HTTP status, JSON body)."""
        request_id = str(uuid.uuid4()).upper()
        product = PRODUCTS.get(params.get("Version", ""))
        try:
            product, handler = self._resolve(params)
            action = params["Action"]
            with self.store.transaction() as conn:
                authenticate(conn, method, params, self.clock(), self._nonces)
                authorize(conn, params["AccessKeyId"], action, product.name)
            decision = self.faults.decide(action)
            if decision.delay_s:
                time.sleep(decision.delay_s)
            if decision.error is not None and not decision.after_commit:
                raise decision.error
            body = self._execute(action, handler, params)
            if decision.error is not None:
                raise decision.error
        except ApiError as exc:
            return Response(exc.status, _error_body(request_id, exc, product))
        except Exception:
            log.exception("action failed")
            error = ApiError("InternalError", "The request processing has failed due to some unknown error.")
            return Response(error.status, _error_body(request_id, error, product))
        return Response(200, {"RequestId": request_id, **body})

    def _resolve(self, params: Mapping[str, str]) -> tuple[Product, Handler]:
        version = params.get("Version", "")
        if not version:
            raise missing("Version")
        action = params.get("Action", "")
        if not action:
            raise missing("Action")
        product = PRODUCTS.get(version)
        if product is None:
            raise ApiError("InvalidVersion", f"Specified parameter Version \"{version}\" is not valid; the emulator "
                           f"serves ECS {ECS_VERSION} and VPC {VPC_VERSION}.")
        handler = product.actions.get(action)
        if handler is None:
            raise ApiError("InvalidAction.NotFound", f"Specified api \"{action}\" is not found in {product.name} "
                           f"{version}, please check your url and method.")
        return product, handler

    def _execute(self, action: str, handler: Handler, params: Mapping[str, str]) -> Reply:
        events: list[HookEvent] = []
        with self.store.transaction() as conn:
            now = self.clock()
            events.extend(settle(conn, now))
            region = params.get("RegionId", self.region)
            if region != self.region:
                raise ApiError("InvalidRegionId.NotFound", f"The region \"{region}\" does not exist here; the "
                               f"emulator serves {self.region}.", 404)
            call = Call(action, params, conn, self.region, now)
            token = params.get("ClientToken", "")
            body = _idempotent(call, handler, token) if token else handler(call)
            events.extend(call.events)
        self._fire(events)
        if action in DELAYED_ACTIONS:
            self._wake.set()  # a new Attaching / Detaching deadline for the settler
        return body

    # --- attach / detach delays and hooks --------------------------------------------------------

    def _settler(self) -> None:
        while not self._stopping.is_set():
            with self.store.transaction() as conn:
                due = next_due(conn)
            timeout = None if due is None else max(0.0, due - self.clock())
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stopping.is_set():
                return
            with self.store.transaction() as conn:
                events = settle(conn, self.clock())
            self._fire(events)

    def _fire(self, events: list[HookEvent]) -> None:
        for event in events:
            try:
                if event.kind == "attach":
                    self.hook.on_attach(event.instance_id, event.eni)
                elif event.kind == "ips":
                    self.hook.on_ips_changed(event.instance_id, event.eni)
                else:
                    self.hook.on_detach(event.instance_id, event.eni)
            except Exception:
                log.exception("ENI hook failed for %s", event.eni.eni_id)


def _fingerprint(params: Mapping[str, str]) -> str:
    meaningful = sorted((k, v) for k, v in params.items() if k not in COMMON_PARAMS and k != "ClientToken")
    return hashlib.sha256(json.dumps(meaningful).encode()).hexdigest()


def _idempotent(call: Call, handler: Handler, token: str) -> Reply:
    """Same ClientToken and action: the first reply again; with other parameters: IdempotentParameterMismatch."""
    row = call.conn.execute(
        "SELECT fingerprint, response FROM client_tokens WHERE token = ? AND action = ?", (token, call.action)
    ).fetchone()
    fingerprint = _fingerprint(call.params)
    if row is not None:
        if row["fingerprint"] != fingerprint:
            raise ApiError("IdempotentParameterMismatch", "The request uses the same client token as a previous, "
                           "but non-identical request.")
        stored: Reply = json.loads(row["response"])
        return stored
    body = handler(call)
    call.conn.execute("INSERT INTO client_tokens VALUES (?, ?, ?, ?)",
                      (token, call.action, fingerprint, json.dumps(body)))
    return body


def _error_body(request_id: str, error: ApiError, product: Product | None) -> Reply:
    host = product.host if product is not None else "ecs.aliyuncs.com"
    name = product.name if product is not None else "Ecs"
    return {
        "RequestId": request_id, "HostId": host, "Code": error.code, "Message": error.message,
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={error.code}&product={name}",
    }


# --- HTTP ------------------------------------------------------------------------------------------


class _HttpServer(ClosingHTTPServer):
    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, handler)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "terwayctl-emulator"
    server: _HttpServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if body and "application/x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        response = self.server.emulator.handle(method, params)
        payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-acs-request-id", str(response.body.get("RequestId", "")))
        self.end_headers()
        self.wfile.write(payload)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # Never the request line itself: its query carries the AccessKeyId and the signature.
        action = dict(parse_qsl(urlsplit(self.path).query)).get("Action", "-")
        log.debug("%s %s Action=%s %s", self.address_string(), self.command, action, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
