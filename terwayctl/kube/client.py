"""The client factory and the one request primitive every kube/ module uses.

`connect()` loads the kubeconfig (or the in-cluster service account) and returns a `KubeClient`;
objects cross this boundary as plain JSON dicts, never as the `kubernetes` package's models.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from terwayctl import __version__
from terwayctl.kube.errors import (
    KubeConfigError,
    KubeError,
    KubeInvalid,
    from_api_error,
    not_kubernetes,
    unreachable,
)

Obj = dict[str, Any]
DEFAULT_REQUEST_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0
DISCOVERY_TIMEOUT = 5.0  # read deadline of the discovery calls (and any call that names none)
FIELD_MANAGER = "terwayctl"


def resource_path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None) -> str:
    """/api/v1/namespaces/NS/configmaps/NAME or /apis/apps/v1/... (namespace None: cluster-scoped or all)."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
    return "/".join(parts)


class KubeClient:
    """One API server; satisfies every Protocol of terwayctl.kube.api. Close it when done."""

    def __init__(self, dynamic: Any, server: str, workdir: Path | None = None,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT) -> None:
        self._dynamic = dynamic
        self.server = server
        self._workdir = workdir
        self._timeout = request_timeout

    def close(self) -> None:
        self._dynamic.client.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KubeClient({self.server})"

    # --- the primitive --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Any = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str | None = None,
    ) -> Obj:
        """Send one call and return the reply object; errors become terwayctl.kube.errors."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        params: dict[str, Any] = {"query_params": list(query), "_request_timeout": self._timeout,
                                  "serializer": _as_json}
        if content_type:
            params["content_type"] = content_type
        try:
            reply = self._dynamic.request(method.lower(), path, body=body, **params)
        except ApiException as exc:
            raise from_api_error(exc.status or None, exc.body, what) from None
        except HTTPError as exc:
            raise unreachable(self.server, _reason(exc)) from None
        if not isinstance(reply, dict):
            raise KubeError(f"{what}: the API server sent no JSON object")
        return reply

    def resource_for(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from the server's discovery documents."""
        from kubernetes.dynamic.exceptions import ResourceNotFoundError, ResourceNotUniqueError

        try:
            resource = self._dynamic.resources.get(api_version=api_version, kind=kind)
        except (ResourceNotFoundError, ResourceNotUniqueError):
            raise KubeInvalid(
                f"the API server does not serve {kind} in {api_version}",
                hint="check the apiVersion and kind, or install the CustomResourceDefinition first",
            ) from None
        return str(resource.name), bool(resource.namespaced)

    # --- small conveniences -------------------------------------------------------------------------------

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> Obj:
        return self.request("GET", resource_path(api_version, plural, namespace, name),
                            what=f"{plural}/{name}")

    def list(self, api_version: str, plural: str, namespace: str | None = None, *, label_selector: str = "",
             field_selector: str = "") -> list[Obj]:
        query = [("labelSelector", label_selector)] if label_selector else []
        if field_selector:
            query.append(("fieldSelector", field_selector))
        reply = self.request("GET", resource_path(api_version, plural, namespace), what=plural, query=query)
        items = reply.get("items") or []
        return [i for i in items if isinstance(i, dict)]

    def replace(self, api_version: str, plural: str, obj: Mapping[str, Any]) -> Obj:
        meta = obj.get("metadata") or {}
        name, namespace = str(meta.get("name")), meta.get("namespace")
        return self.request("PUT", resource_path(api_version, plural, namespace, name), what=f"{plural}/{name}",
                            body=dict(obj), query=[("fieldManager", FIELD_MANAGER)])

    def pod_log(self, namespace: str, name: str, *, container: str | None = None, since_seconds: int | None = None,
                tail_lines: int | None = None, limit_bytes: int | None = None) -> str:
        """A container's log (GET .../pods/NAME/log, text/plain) through the typed client's
        read_namespaced_pod_log, with this client's request timeout; errors become terwayctl.kube.errors."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        core: Any = client.CoreV1Api(self._dynamic.client)
        options = {k: v for k, v in (("container", container), ("since_seconds", since_seconds),
                                     ("tail_lines", tail_lines), ("limit_bytes", limit_bytes)) if v is not None}
        try:
            text = core.read_namespaced_pod_log(name, namespace, _request_timeout=self._timeout, **options)
        except ApiException as exc:
            raise from_api_error(exc.status or None, exc.body, f"pods/{name}/log") from None
        except HTTPError as exc:
            raise unreachable(self.server, _reason(exc)) from None
        return text if isinstance(text, str) else str(text or "")

    def patch(self, api_version: str, plural: str, name: str, patch: Any, *, namespace: str | None = None,
              content_type: str = "application/merge-patch+json") -> Obj:
        return self.request("PATCH", resource_path(api_version, plural, namespace, name), what=f"{plural}/{name}",
                            body=patch, content_type=content_type, query=[("fieldManager", FIELD_MANAGER)])


def _as_json(_client: object, data: Any) -> Any:
    return data


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    text = str(reason or exc)
    return text.split(": ", 1)[-1] if "Failed to establish" in text else text


def _default_kubeconfig(environ: Mapping[str, str]) -> str | None:
    home = environ.get("HOME") or os.path.expanduser("~")
    path = Path(home) / ".kube" / "config"
    return str(path) if path.exists() else None


def connect(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
) -> KubeClient:
    """A client from `kubeconfig` (else ~/.kube/config, else the in-cluster service account)."""
    import yaml
    from kubernetes import client
    from kubernetes import config as untyped_config
    from kubernetes.config.config_exception import ConfigException

    config: Any = untyped_config  # kubernetes.config has no annotations: its calls are checked here

    env = os.environ if environ is None else environ
    path = kubeconfig or _default_kubeconfig(env)
    configuration = client.Configuration()
    if path:
        missing = [p for p in path.split(os.pathsep) if p and not Path(p).exists()]
        if missing and len(missing) == len([p for p in path.split(os.pathsep) if p]):
            raise KubeConfigError(f"the kubeconfig {path} does not exist",
                                  hint="pass --kubeconfig PATH or set KUBECONFIG to an existing file")
        try:
            config.load_kube_config(config_file=path, context=context, client_configuration=configuration,
                                    persist_config=False)
        except (ConfigException, OSError, ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError) as exc:
            if isinstance(exc, yaml.YAMLError):
                mark = getattr(exc, "problem_mark", None)
                where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
                detail = f"not valid YAML{where}: {getattr(exc, 'problem', None) or 'syntax error'}"
            elif isinstance(exc, (TypeError, KeyError, AttributeError)):
                detail = "not a kubeconfig (a mapping with clusters, users, contexts and current-context)"
            else:
                lines = str(exc).strip().splitlines()
                detail = lines[0] if lines else type(exc).__name__
            raise KubeConfigError(
                f"cannot use the kubeconfig {path}{f' (context {context})' if context else ''}: {detail}",
                hint="check the file with 'kubectl config view' and the context name with "
                     "'kubectl config get-contexts'",
            ) from None
    else:
        if context:
            raise KubeConfigError(f"--context {context} needs a kubeconfig, and none was found",
                                  hint="pass --kubeconfig PATH or set KUBECONFIG")
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException:
            raise KubeConfigError(
                "no kubeconfig (~/.kube/config does not exist) and not running inside a pod",
                hint="pass --kubeconfig PATH or set KUBECONFIG",
            ) from None
    return _open(configuration, request_timeout)


def _open(configuration: Any, request_timeout: float) -> KubeClient:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic import DynamicClient as UntypedDynamicClient
    from urllib3.exceptions import (
        ConnectTimeoutError,
        HTTPError,
        MaxRetryError,
        NewConnectionError,
        ReadTimeoutError,
    )
    from urllib3.util.retry import Retry

    dynamic_client: Any = UntypedDynamicClient  # kubernetes.dynamic has no annotations
    server = str(configuration.host)
    # One retry of a refused or timed-out connect, never of a request the server may have seen: the
    # total time of a call stays under connect x 2 + read.
    configuration.retries = Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0)
    api_client: Any = client.ApiClient(configuration)
    api_client.user_agent = f"terwayctl/{__version__}"
    deadline = (min(CONNECT_TIMEOUT, request_timeout), min(DISCOVERY_TIMEOUT, request_timeout))
    call_api = api_client.call_api

    def call_with_deadline(*args: Any, **kwargs: Any) -> Any:
        # The dynamic client's discovery calls pass no timeout: without this they wait forever on a
        # server that accepts the connection and never answers.
        if not kwargs.get("_request_timeout"):
            kwargs["_request_timeout"] = deadline
        return call_api(*args, **kwargs)

    api_client.call_api = call_with_deadline
    workdir = Path(tempfile.mkdtemp(prefix="terwayctl-discovery-"))
    try:
        dynamic = dynamic_client(api_client, cache_file=str(workdir / "discovery.json"))
    except ApiException as exc:
        api_client.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if exc.status in (404, 405) or not _is_kube_status(exc.body):
            raise not_kubernetes(server, f"it answered API discovery with HTTP {exc.status}") from None
        raise from_api_error(exc.status or None, exc.body, "API discovery") from None
    except (ValueError, json.JSONDecodeError, TypeError, KeyError, AttributeError):
        api_client.close()
        shutil.rmtree(workdir, ignore_errors=True)
        raise not_kubernetes(server, "its answer to API discovery is not a Kubernetes discovery document") from None
    except HTTPError as exc:
        api_client.close()
        shutil.rmtree(workdir, ignore_errors=True)
        reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
        if isinstance(reason, NewConnectionError):
            text = str(reason)
            detail = "connection refused" if "refused" in text.lower() else f"cannot connect: {text.split('] ')[-1]}"
        elif isinstance(reason, ReadTimeoutError):
            detail = f"connected, but no answer to API discovery in {deadline[1]:g} s"
        elif isinstance(reason, ConnectTimeoutError):
            detail = f"no answer to the connection in {deadline[0]:g} s"
        else:
            detail = _reason(exc)
        raise unreachable(server, detail) from None
    return KubeClient(dynamic, server, workdir, request_timeout)


def _is_kube_status(body: Any) -> bool:
    """The error body is a metav1.Status, so the server is a Kubernetes API server."""
    from terwayctl.kube.errors import status_body

    return status_body(body).get("kind") == "Status"
