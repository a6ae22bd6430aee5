"""NetworkPolicy checks of the cluster: policies that nothing enforces, policy containers not ready.

Terway enforces NetworkPolicy only with the policy container (Cilium in CNI chaining mode
`terway-chainer`, `terwayctl render --set network_policy=true`, docs/render.md). Without it the
API server still accepts NetworkPolicy objects, and nothing enforces them.
"""

from __future__ import annotations

from typing import Any

from terwayctl.core import defaults
from terwayctl.doctor.context import Context
from terwayctl.doctor.model import Check, CheckSkipped, Need, Scope, Verdict, fail, ok

NEEDS = frozenset({Need.CLUSTER})
POLICY_CONTAINER = "policy"
SHOWN = 10


def _reader(ctx: Context) -> Any:
    reader = getattr(ctx.kube, "reader", None)
    if reader is None:
        raise CheckSkipped("the cluster reader cannot list NetworkPolicy objects and pods")
    return reader


def _terway_daemonset(reader: Any, namespace: str) -> dict[str, Any] | None:
    from terwayctl.kube.errors import KubeNotFound

    for name in (defaults.DAEMONSET_ENIIP, defaults.DAEMONSET_ENI):
        try:
            found: dict[str, Any] = reader.get("apps/v1", "daemonsets", name, namespace)
            return found
        except KubeNotFound:
            continue
    return None


def network_policy(ctx: Context) -> Verdict:
    kube = ctx.kube
    reader = _reader(ctx)
    ds = _terway_daemonset(reader, kube.namespace)
    if ds is None:
        raise CheckSkipped(f"no {defaults.DAEMONSET_ENIIP} or {defaults.DAEMONSET_ENI} DaemonSet in {kube.namespace}")
    name = str(ds["metadata"]["name"])
    template = ((ds.get("spec") or {}).get("template") or {})
    containers = [str(c.get("name")) for c in (template.get("spec") or {}).get("containers") or []]
    if POLICY_CONTAINER not in containers:
        policies = reader.list("networking.k8s.io/v1", "networkpolicies")
        where = f"{kube.namespace}/{name} has no {POLICY_CONTAINER} container: NetworkPolicy is off"
        if not policies:
            return ok(f"{where}; no NetworkPolicy objects")
        refs = sorted(f"{(p.get('metadata') or {}).get('namespace', '')}/{(p.get('metadata') or {}).get('name', '')}"
                      for p in policies)
        shown = ", ".join(refs[:SHOWN]) + (f" and {len(refs) - SHOWN} more" if len(refs) > SHOWN else "")
        return fail([where, f"{len(refs)} NetworkPolicy object(s) are not enforced: {shown}",
                     "pods they select accept traffic the policies would deny"],
                    "turn NetworkPolicy on: terwayctl apply --set network_policy=true (the Cilium policy container, "
                    "docs/render.md); or delete the NetworkPolicy objects nothing enforces")
    selector = ",".join(f"{k}={v}" for k, v in sorted(((ds.get("spec") or {}).get("selector") or {})
                                                       .get("matchLabels", {}).items()))
    pods = reader.list("v1", "pods", kube.namespace, label_selector=selector)
    bad: list[str] = []
    fixes: list[str] = []
    for pod in sorted(pods, key=lambda p: str((p.get("spec") or {}).get("nodeName") or "")):
        node = str((pod.get("spec") or {}).get("nodeName") or "?")
        statuses = {str(s.get("name")): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        status = statuses.get(POLICY_CONTAINER)
        if status is None or not status.get("ready"):
            state = next(iter((status or {}).get("state") or {}), "not started")
            reason = ((status or {}).get("state") or {}).get(state, {}).get("reason") if status else None
            bad.append(f"node {node}: {POLICY_CONTAINER} container of {pod['metadata']['name']} not ready "
                       f"({state}{', ' + reason if reason else ''}): NetworkPolicy is not enforced for its pods")
            fixes.append(f"kubectl -n {kube.namespace} logs {pod['metadata']['name']} -c {POLICY_CONTAINER}  "
                         f"# on {node}")
    evidence = [f"{kube.namespace}/{name}: NetworkPolicy on ({POLICY_CONTAINER} container), {len(pods)} pod(s)"]
    if bad:
        return fail([*evidence, *bad], "\n".join(fixes))
    return ok(*evidence)


CHECKS: list[Check] = [
    Check("cluster.network-policy", "NetworkPolicy objects are enforced", Scope.CLUSTER, NEEDS, network_policy,
          "the Terway DaemonSet's policy container: NetworkPolicy objects while it is absent; its readiness on "
          "every node while present"),
]
