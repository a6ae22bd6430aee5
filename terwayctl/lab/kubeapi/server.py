"""The HTTP side of the test API server, and the DaemonSet controller tests drive."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from terwayctl.emulator.httpserver import ClosingHTTPServer
from terwayctl.lab.kubeapi import resources
from terwayctl.lab.kubeapi.resources import ResourceType
from terwayctl.lab.kubeapi.store import ApiError, Obj, Store, bad_request

CORE_NODES = resources.require("", "v1", "nodes")
CORE_PODS = resources.require("", "v1", "pods")
APPS_DAEMONSETS = resources.require("apps", "v1", "daemonsets")
CORE_NAMESPACES = resources.require("", "v1", "namespaces")


LogSource = Callable[[str, str, str], "str | None"]
LOG_TIME = re.compile(r'(?:^|\s)ts=(\S+)|"ts":\s*"([^"]+)"|^(\d{4}-\d\d-\d\dT\S+)\s')


@dataclass
class DaemonSetController:
    """Plays the DaemonSet controller and the kubelets, synchronously on every DaemonSet write.

    mode "complete": a new generation rolls out at once, one ready pod per Node.
    mode "stuck": the new pods are created but those on `unready_nodes` (every node when empty)
    stay unready (CrashLoopBackOff); status says so. mode "manual": nothing happens until the test
    calls `KubeApiServer.roll_daemonset(...)`.
    """

    mode: str = "complete"
    unready_nodes: set[str] = field(default_factory=set)
    rolled: list[tuple[str, str, int]] = field(default_factory=list)


class KubeApiServer:
    """ThreadingHTTPServer on 127.0.0.1:0 serving a `Store`; `stop()` closes every connection.

    `tls`: a server-side `ssl.SSLContext` (cert and key loaded) to serve HTTPS instead of HTTP, as
    in-cluster clients require (the handshake runs in the connection's thread, not the accept loop).
    """

    def __init__(self, store: Store | None = None, *, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.store = store or Store()
        self.controller = DaemonSetController()
        self.requests: list[tuple[str, str]] = []
        self.logs: dict[tuple[str, str, str], str] = {}
        """(namespace, pod, container) -> the container's log, for ``GET .../pods/NAME/log``."""
        self.log_source: LogSource | None = None
        """Asked first: (namespace, pod, container) -> the log text, None when it has none (then `logs`)."""
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self.store.hooks.append(self._on_write)
        self._rolling = threading.local()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> KubeApiServer:
        self._httpd = _HttpServer(("127.0.0.1", 0), _Handler, self)
        if self.tls is not None:
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True,
                                                      do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="kubeapi-http", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.close_connections()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> KubeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- seeding ---------------------------------------------------------------------------------

    def resource_for(self, obj: Mapping[str, Any]) -> ResourceType:
        rt = resources.by_kind(str(obj.get("apiVersion")), str(obj.get("kind")))
        if rt is None:
            raise ValueError(f"the test API server does not serve {obj.get('apiVersion')} {obj.get('kind')}")
        return rt

    def create(self, obj: Mapping[str, Any]) -> Obj:
        rt = self.resource_for(obj)
        namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
        created = self.store.create(rt, namespace, dict(obj), manager="test-seed")
        if "status" in obj:
            created["status"] = copy.deepcopy(obj["status"])
            created = self.store.replace(rt, namespace, created["metadata"]["name"], created, status_only=True)
        return created

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> Obj:
        rt = resources.by_kind(api_version, kind)
        assert rt is not None, f"unknown kind {api_version} {kind}"
        return self.store.get(rt, namespace, name)

    def objects(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = "") -> list[Obj]:
        rt = resources.by_kind(api_version, kind)
        assert rt is not None
        return list(self.store.list(rt, namespace, label_selector)["items"])

    # --- the DaemonSet controller ------------------------------------------------------------------

    def _on_write(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        if rt is not APPS_DAEMONSETS or getattr(self._rolling, "active", False):
            return
        generation = obj["metadata"].get("generation", 1)
        if old is not None and old["metadata"].get("generation") == generation:
            return
        if self.controller.mode != "manual":
            self.roll_daemonset(obj["metadata"]["namespace"], obj["metadata"]["name"],
                                unready_nodes=None if self.controller.mode == "complete" else self._unready())

    def _unready(self) -> set[str]:
        return set(self.controller.unready_nodes) or set(self.node_names())

    def node_names(self) -> list[str]:
        return [n["metadata"]["name"] for n in self.store.list(CORE_NODES, None)["items"]]

    def roll_daemonset(self, namespace: str, name: str, unready_nodes: Iterable[str] | None = None) -> Obj:
        """Replace the DaemonSet's pods with the current template; pods on `unready_nodes` stay unready."""
        unready = set(unready_nodes or ())
        with self.store.lock:
            self._rolling.active = True
            try:
                ds = self.store.get(APPS_DAEMONSETS, namespace, name)
                generation = int(ds["metadata"].get("generation", 1))
                self._replace_pods(ds, generation, unready)
                nodes = self.node_names()
                ready = len([n for n in nodes if n not in unready])
                ds["status"] = {
                    "observedGeneration": generation, "desiredNumberScheduled": len(nodes),
                    "currentNumberScheduled": len(nodes), "updatedNumberScheduled": len(nodes),
                    "numberReady": ready, "numberAvailable": ready, "numberUnavailable": len(nodes) - ready,
                    "numberMisscheduled": 0,
                }
                self.controller.rolled.append((namespace, name, generation))
                return self.store.replace(APPS_DAEMONSETS, namespace, name, ds, status_only=True)
            finally:
                self._rolling.active = False

    def _replace_pods(self, ds: Obj, generation: int, unready: set[str]) -> None:
        namespace, name = ds["metadata"]["namespace"], ds["metadata"]["name"]
        for pod in self.store.list(CORE_PODS, namespace)["items"]:
            owners = pod["metadata"].get("ownerReferences") or []
            if any(o.get("kind") == "DaemonSet" and o.get("name") == name for o in owners):
                self.store.delete(CORE_PODS, namespace, pod["metadata"]["name"])
        template = ds.get("spec", {}).get("template", {})
        for node in self.node_names():
            suffix = hashlib.sha1(f"{name}/{node}/{generation}".encode()).hexdigest()[:5]
            ready = node not in unready
            containers = template.get("spec", {}).get("containers") or [{"name": "terway"}]
            pod = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": f"{name}-{suffix}", "namespace": namespace,
                    "labels": dict(template.get("metadata", {}).get("labels") or {}),
                    "annotations": dict(template.get("metadata", {}).get("annotations") or {}),
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": name,
                                         "uid": ds["metadata"].get("uid", ""), "controller": True}],
                },
                "spec": {**copy.deepcopy(template.get("spec") or {}), "nodeName": node},
            }
            created = self.store.create(CORE_PODS, namespace, pod, manager="kube-controller-manager")
            created["status"] = _pod_status(ready, [c.get("name", "c") for c in containers])
            self.store.replace(CORE_PODS, namespace, created["metadata"]["name"], created, status_only=True)


def _pod_status(ready: bool, containers: list[str]) -> Obj:
    state: Obj = ({"running": {"startedAt": "2026-01-01T00:00:00Z"}} if ready
                  else {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}})
    return {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                        **({} if ready else {"reason": "ContainersNotReady"})}],
        "containerStatuses": [{"name": c, "ready": ready, "restartCount": 0 if ready else 3, "state": state,
                               "image": "terway", "imageID": "", "started": ready} for c in containers],
    }


# --- HTTP --------------------------------------------------------------------------------------------


class _HttpServer(ClosingHTTPServer):
    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], api: KubeApiServer) -> None:
        self.api = api
        super().__init__(address, handler)


@dataclass(frozen=True)
class _Route:
    rt: ResourceType | None
    namespace: str
    name: str | None
    subresource: str | None
    discovery: Obj | None = None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "terwayctl-test-kubeapi"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls
    server: _HttpServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        api = self.server.api
        api.requests.append((method, self.path))
        kind = "application/json"
        try:
            path = parts.path.rstrip("/") or "/"
            log = _LOG_PATH.fullmatch(path)
            if log is not None:
                code, text = 200, _pod_log(api, method, log.group(1), log.group(2), query)
                kind, data = "text/plain", text.encode()
            else:
                code, payload = self._dispatch(api, method, path, query, body)
                data = json.dumps(payload).encode()
        except ApiError as error:
            code, data, kind = error.code, json.dumps(error.status()).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, api: KubeApiServer, method: str, path: str, query: dict[str, str],
                  body: bytes) -> tuple[int, Obj]:
        route = self._route(path, api)
        if route.discovery is not None:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "discovery is read-only")
            return 200, route.discovery
        rt = route.rt
        assert rt is not None
        dry_run = _dry_run(query)
        manager = query.get("fieldManager") or self.headers.get("User-Agent", "unknown").split("/")[0]
        store, status_only = api.store, route.subresource == "status"
        if route.subresource not in (None, "status") or (status_only and "status" not in rt.subresources):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({route.subresource})")
        if route.name is None:
            if method == "GET":
                return 200, store.list(rt, route.namespace or None, query.get("labelSelector", ""),
                                       query.get("fieldSelector", ""))
            if method == "POST":
                return 201, store.create(rt, route.namespace, _decode(body, self.headers.get("Content-Type", "")),
                                         manager=manager, dry_run=dry_run)
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        if method == "GET":
            return 200, store.get(rt, route.namespace, route.name)
        if method == "PUT":
            return 200, store.replace(rt, route.namespace, route.name,
                                      _decode(body, self.headers.get("Content-Type", "")), manager=manager,
                                      dry_run=dry_run, status_only=status_only)
        if method == "PATCH":
            existed = store.key(rt, route.namespace, route.name) in store.objects
            force = query.get("force", "false").lower() == "true"
            result = store.patch(rt, route.namespace, route.name, self.headers.get("Content-Type", ""), body,
                                 manager=query.get("fieldManager") or (None if _is_apply(self.headers) else manager),
                                 force=force, dry_run=dry_run, status_only=status_only)
            return (200 if existed else 201), result
        if method == "DELETE":
            return 200, store.delete(rt, route.namespace, route.name, dry_run=dry_run)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed")

    def _route(self, path: str, api: KubeApiServer) -> _Route:
        segments = [s for s in path.split("/") if s]
        if path == "/version":
            return _Route(None, "", None, None, dict(resources.VERSION_INFO))
        if path == "/api":
            return _Route(None, "", None, None, resources.api_versions(f"127.0.0.1:{api.port}"))
        if path == "/apis":
            return _Route(None, "", None, None, resources.api_group_list())
        if segments[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segments[2:]
        elif segments[:1] == ["apis"] and len(segments) == 2 and segments[1] in resources.groups():
            return _Route(None, "", None, None, resources.api_group(segments[1]))
        elif segments[:1] == ["apis"] and len(segments) >= 3:
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            listing = resources.resource_list(group, version)
            if listing is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _Route(None, "", None, None, listing)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        rt = resources.find(group, version, rest[0])
        if rt is None or (namespace and not rt.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _Route(rt, namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None)


def _is_apply(headers: Any) -> bool:
    return str(headers.get("Content-Type", "")).startswith("application/apply-patch+yaml")


def _dry_run(query: Mapping[str, str]) -> bool:
    value = query.get("dryRun")
    if value is None:
        return False
    if value != "All":
        raise bad_request(f"Invalid dryRun value {value!r}: only 'All' is supported")
    return True


def _decode(body: bytes, content_type: str) -> Any:
    try:
        text = body.decode("utf-8")
        if "yaml" in content_type:
            return yaml.safe_load(text)
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise bad_request(f"cannot decode the request body: {exc}") from None


_LOG_PATH = re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log")


def _int_param(query: Mapping[str, str], key: str, minimum: int) -> int | None:
    if key not in query:
        return None
    try:
        value = int(query[key])
    except ValueError:
        raise bad_request(f"invalid value {query[key]!r} for {key}: not an integer") from None
    if value < minimum:
        raise ApiError(422, "Invalid", f"PodLogOptions \"\" is invalid: {key}: Invalid value: {value}: must be "
                       f"{'greater than 0' if minimum else 'greater than or equal to 0'}")
    return value


def _line_time(line: str) -> float | None:
    """The time a log line was written: logfmt ``ts=``, a JSON ``"ts"``, or a leading RFC 3339 stamp."""
    match = LOG_TIME.search(line)
    if match is None:
        return None
    text = next(g for g in match.groups() if g)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _pod_log(api: KubeApiServer, method: str, namespace: str, name: str, query: Mapping[str, str]) -> str:
    """GET /api/v1/namespaces/NS/pods/NAME/log as the real server answers it: text/plain; 404 for an unknown
    pod, 400 for an unknown container (or none named where the pod has several); sinceSeconds, tailLines,
    limitBytes. A line's time is the one it carries (the runtime's timestamp stands in for it); a line without
    one (a traceback) goes with the line before it."""
    if method != "GET":
        raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on pods/log")
    pod = api.store.get(CORE_PODS, namespace, name)
    spec = pod.get("spec") or {}
    containers = [str(c.get("name")) for c in spec.get("containers") or []]
    inits = [str(c.get("name")) for c in spec.get("initContainers") or []]
    container = query.get("container", "")
    if not container:
        if len(containers) != 1:
            more = f" or one of the init containers: [{' '.join(inits)}]" if inits else ""
            raise bad_request(f"a container name must be specified for pod {name}, choose one of: "
                              f"[{' '.join(containers)}]{more}")
        container = containers[0]
    elif container not in containers and container not in inits:
        raise bad_request(f"container {container} is not valid for pod {name}")
    since = _int_param(query, "sinceSeconds", 1)
    tail = _int_param(query, "tailLines", 0)
    limit = _int_param(query, "limitBytes", 1)
    text = api.log_source(namespace, name, container) if api.log_source is not None else None
    if text is None:
        text = api.logs.get((namespace, name, container), "")
    lines = text.splitlines(keepends=True)
    if since is not None:
        cutoff, kept, when = time.time() - since, [], None
        for line in lines:
            when = _line_time(line) or when
            if when is None or when >= cutoff:
                kept.append(line)
        lines = kept
    if tail is not None:
        lines = lines[len(lines) - tail:] if tail else []
    out = "".join(lines)
    if limit is not None:
        out = out.encode()[:limit].decode(errors="ignore")
    return out
