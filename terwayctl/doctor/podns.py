"""`--probe-from pod/<namespace>/<name>`: the network namespace of a pod on this node.

The node's daemon keeps, per allocation, the pod's namespace and name and the netns path the runtime
gave the CNI ADD (its SQLite store, opened read-only here). A pod the store does not know is looked
up in the API server (when one is configured) to say on which node it runs instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from terwayctl.core.errors import InvalidInput
from terwayctl.kube.api import ObjectReader

POD_PREFIX = "pod/"
STORE_FILE = "daemon.sqlite"


def is_pod_ref(text: str | None) -> bool:
    return bool(text) and str(text).startswith(POD_PREFIX)


def parse_pod_ref(text: str) -> tuple[str, str]:
    """``pod/NS/NAME`` (or ``pod/NAME``: namespace default) -> (namespace, name)."""
    parts = text[len(POD_PREFIX):].split("/")
    if len(parts) == 1 and parts[0]:
        return "default", parts[0]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise InvalidInput(f"--probe-from {text!r} is not pod/<namespace>/<name>",
                       hint="e.g. --probe-from pod/default/web, or a netns name or path")


def _pod_node(connect: Callable[[], ObjectReader | None] | None, namespace: str, name: str) -> str | None:
    """The pod's spec.nodeName, '' when it has none, None when it cannot be told (no API server, no pod)."""
    if connect is None:
        return None
    from terwayctl.kube.errors import KubeError

    try:
        reader = connect()
        if reader is None:
            return None
        pod = reader.get("v1", "pods", name, namespace)
    except KubeError:
        return None
    return str((pod.get("spec") or {}).get("nodeName") or "")


def pod_netns(text: str, state_dir: Path, connect: Callable[[], ObjectReader | None] | None = None) -> str:
    """The netns path of the pod `text` names on this node (InvalidInput, exit 2, when there is none)."""
    namespace, name = parse_pod_ref(text)
    store_path = state_dir / STORE_FILE
    if not store_path.exists():
        raise InvalidInput(f"--probe-from {text}: no daemon store at {store_path}: doctor finds a pod's namespace "
                           "through the daemon of the node it runs on",
                           hint="run doctor on the pod's node; pass --state-dir (TERWAYCTL_STATE_DIR) if the "
                                "daemon keeps its store elsewhere")
    from terwayctl.node.store import Store

    store = Store(store_path, readonly=True)
    try:
        records = [r for r in store.allocations()
                   if r.owner is not None and (r.owner.pod_namespace, r.owner.pod_name) == (namespace, name)]
    finally:
        store.close()
    if not records:
        node = _pod_node(connect, namespace, name)
        where = (f"it runs on node {node}" if node else "it is not scheduled on a node" if node == ""
                 else "the API server does not know it either" if connect is not None else "")
        raise InvalidInput(f"--probe-from {text}: the daemon of this node holds no IP for pod {namespace}/{name}"
                           + (f": {where}" if where else ""),
                           hint="run doctor on the pod's node (e.g. 'terwayctl lab exec NODE -- terwayctl doctor "
                                f"--probe --probe-from {text} ...')")
    netns = records[0].owner.netns if records[0].owner is not None else ""
    if not netns or not Path(netns).exists():
        raise InvalidInput(f"--probe-from {text}: pod {namespace}/{name} holds {records[0].ip}, but its network "
                           f"namespace {netns or '(unknown)'} is not visible here",
                           hint="run doctor in the host's mount namespace (nsenter -t 1 -m) or pass the netns path")
    return netns
