"""Kubernetes API failures as terwayctl errors, each with a hint."""

from __future__ import annotations

import json
from typing import Any

from terwayctl.core.errors import InvalidInput, NotFound, TerwayctlError


class KubeError(TerwayctlError):
    """A failed Kubernetes API call (exit 1 unless a subclass says otherwise)."""

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None,
                 reason: str = "") -> None:
        super().__init__(message, hint)
        self.status = status
        self.reason = reason


class KubeConfigError(InvalidInput):
    """The kubeconfig or the context cannot be used (exit 2)."""


class KubeNotFound(KubeError, NotFound):
    """The object does not exist (exit 2)."""


class KubeConflict(KubeError):
    """409: the object changed under us (resourceVersion) or already exists, or an apply conflict."""


class KubeForbidden(KubeError):
    """403: RBAC denies the call."""


class KubeUnauthorized(KubeError):
    """401: the credentials of the kubeconfig are not accepted."""


class KubeUnavailable(KubeError):
    """The API server cannot be reached or answers 5xx."""


class KubeInvalid(KubeError, InvalidInput):
    """400 / 422: the server rejected the object (exit 2)."""


def status_body(body: Any) -> dict[str, Any]:
    """The metav1.Status object of an error reply, or {}."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str):
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def from_api_error(status: int | None, body: Any, what: str) -> KubeError:
    """Translate an HTTP status and Status body of a failed call on `what` (e.g. 'configmaps/eni-config')."""
    data = status_body(body)
    message = str(data.get("message") or f"HTTP {status}")
    reason = str(data.get("reason") or "")
    if status == 404:
        return KubeNotFound(f"{what}: {message}", hint="check the name and -n/--namespace (default kube-system)",
                            status=status, reason=reason)
    if status == 409:
        hint = ("another field manager owns these fields: rerun with --force-conflicts to take them over"
                if "conflict with" in message else "the object changed meanwhile: rerun the command")
        return KubeConflict(f"{what}: {message}", hint=hint, status=status, reason=reason)
    if status == 403:
        return KubeForbidden(f"{what}: forbidden: {message}",
                             hint="the kubeconfig's user lacks RBAC permissions for this; use an admin context",
                             status=status, reason=reason)
    if status == 401:
        return KubeUnauthorized(f"{what}: unauthorized: {message}",
                                hint="the kubeconfig's credentials were rejected: refresh them or pick another "
                                     "--context", status=status, reason=reason)
    if status in (400, 422):
        return KubeInvalid(f"{what}: {message}", hint="fix the object the server rejected", status=status,
                           reason=reason)
    if status is not None and status >= 500:
        return KubeUnavailable(f"{what}: server error {status}: {message}",
                               hint="the API server is failing: retry later", status=status, reason=reason)
    return KubeError(f"{what}: {message}", status=status, reason=reason)


def unreachable(server: str, detail: str) -> KubeUnavailable:
    return KubeUnavailable(
        f"cannot reach the Kubernetes API server at {server}: {detail}",
        hint="check --kubeconfig / --context and that the cluster's API server is reachable from here",
    )


def not_kubernetes(server: str, detail: str) -> KubeUnavailable:
    return KubeUnavailable(
        f"{server} is not a Kubernetes API server: {detail}",
        hint="check the server: URL of the kubeconfig's cluster (--kubeconfig / --context)",
    )
