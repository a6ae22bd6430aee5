"""Pods as kubelet makes them: a network namespace, then the node's CNI plugin executed with the CNI
variables and the first plugin config of the node's 10-terway.conflist on stdin (runtimeConfig with
the bandwidth capability), run in the node's namespace. `lab exec` runs commands in any namespace.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terwayctl.core.bandwidth import parse_k8s_quantity_bits
from terwayctl.core.errors import InvalidInput, NotFound
from terwayctl.kernel import netns
from terwayctl.lab import naming
from terwayctl.lab.lifecycle import LabError
from terwayctl.lab.model import Topology
from terwayctl.lab.state import LabDir, PodRecord, cloud_env

BURST_BITS = 2**31 - 1  # what kubelet passes as the burst of the bandwidth capability
CNI_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class PodSpec:
    name: str
    node: str
    namespace: str = "default"
    annotations: Mapping[str, str] = field(default_factory=dict)
    bandwidth_in: str | None = None  # Kubernetes quantity, bits per second ("10M")
    bandwidth_out: str | None = None
    owner: str = ""  # KIND/NAME of the pod's controller in the lab's API server (--kube), e.g. StatefulSet/web


@dataclass(frozen=True)
class CniOutcome:
    code: int
    result: dict[str, Any]
    stderr: str


def parse_annotations(items: Sequence[str]) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--annotation must be KEY=VALUE, got {item!r}",
                               hint="e.g. --annotation k8s.aliyun.com/ingress-bandwidth=10M")
        result[key.strip()] = value.strip()
    return result


OWNER_API_VERSIONS = {"statefulset": "apps/v1", "replicaset": "apps/v1", "daemonset": "apps/v1",
                      "deployment": "apps/v1", "job": "batch/v1", "cloneset": "apps.kruise.io/v1alpha1"}


def parse_owner(owner: str) -> dict[str, str]:
    """`--owner KIND/NAME` (kubectl's TYPE/NAME spelling, e.g. StatefulSet/web) as the Pod's controller
    ownerReference (apiVersion from the kind; any other kind gets apps/v1)."""
    kind, sep, name = owner.partition("/")
    if not sep or not kind.strip() or not name.strip() or "/" in name:
        raise InvalidInput(f"--owner must be KIND/NAME, got {owner!r}",
                           hint="e.g. --owner StatefulSet/web (a Deployment's pod: --owner ReplicaSet/web-5d8f)")
    kind, name = kind.strip(), name.strip()
    return {"apiVersion": OWNER_API_VERSIONS.get(kind.lower(), "apps/v1"), "kind": kind, "name": name}


def runtime_config(spec: PodSpec) -> dict[str, Any]:
    bandwidth: dict[str, int] = {}
    for direction, value in (("ingress", spec.bandwidth_in), ("egress", spec.bandwidth_out)):
        if value is not None:
            bandwidth[f"{direction}Rate"] = parse_k8s_quantity_bits(value)
            bandwidth[f"{direction}Burst"] = BURST_BITS
    return {"bandwidth": bandwidth} if bandwidth else {}


def add(lab_name: str, spec: PodSpec) -> PodRecord:
    """CNI ADD for a new pod on `spec.node`; the pod's namespace is removed again when it fails."""
    lab = LabDir(lab_name)
    topology = lab.topology()
    naming.check_pod_name(spec.name)
    node = topology.node(spec.node)
    owners = [parse_owner(spec.owner)] if spec.owner else []
    if owners and not topology.kube:
        raise InvalidInput(f"--owner needs the lab's API server: lab {lab_name} was started without --kube",
                           hint="the daemon reads the pod's ownerReferences there: terwayctl lab up --kube")
    config = runtime_config(spec)
    record = PodRecord(spec.name, node.name, naming.pod_ns(lab_name, spec.name), secrets.token_hex(32),
                       spec.namespace, annotations=dict(spec.annotations),
                       bandwidth=dict(config.get("bandwidth", {})))
    with lab.locked() as state:
        if spec.name in state.pods:
            raise InvalidInput(f"pod {spec.name} already exists on {state.pods[spec.name].node}",
                               hint=f"delete it first: terwayctl lab pod del {spec.name} --lab {lab_name}")
        state.pods[spec.name] = record
        if spec.annotations:
            _set_annotations(lab.annotations(node.name), f"{spec.namespace}/{spec.name}", spec.annotations)
    try:
        _kube_pod(lab, topology, record, owners=owners)  # --kube: the Pod exists before ADD, as kubelet's would
        netns.create(record.ns)
        with netns.iproute(record.ns) as nl:
            nl.link("set", index=nl.link_lookup(ifname="lo")[0], state="up")
        outcome = run_cni(lab, topology, record, "ADD", config)
        if outcome.code != 0:
            raise LabError(f"CNI ADD of {spec.name} on {node.name} failed: {_cni_error(outcome)}",
                           hint=f"see {lab.node_dir(node.name) / 'daemon.log'}")
        record.ip = str(outcome.result["ips"][0]["address"]).split("/")[0]
    except BaseException:
        netns.delete(record.ns)
        with contextlib.suppress(Exception):  # the ADD's error is the one to report
            _kube_pod(lab, topology, record, delete=True)
        with lab.locked() as state:
            state.pods.pop(spec.name, None)
        raise
    _kube_pod(lab, topology, record)
    with lab.locked() as state:
        state.pods[spec.name] = record
    return record


def _kube_pod(lab: LabDir, topology: Topology, record: PodRecord, *, delete: bool = False,
              owners: Sequence[Mapping[str, str]] = ()) -> None:
    """Mirror a lab pod in the lab's API server (`lab up --kube`): created before ADD (with `owners` as
    its ownerReferences), its podIP after, deleted after DEL. The daemons' pod GC releases the IPs of
    pods missing there."""
    if not topology.kube:
        return
    from terwayctl.lab.control import ask

    if delete:
        ask(lab.control_socket, "kube_pod_delete", name=record.name, namespace=record.namespace)
    else:
        ask(lab.control_socket, "kube_pod_put", name=record.name, namespace=record.namespace, node=record.node,
            annotations=record.annotations, ip=record.ip, owners=[dict(o) for o in owners])


def delete(lab_name: str, name: str) -> PodRecord:
    """CNI DEL, then the pod's namespace; unknown pods are an error (exit 2)."""
    lab = LabDir(lab_name)
    topology = lab.topology()
    record = lab.read_state().pods.get(name)
    if record is None:
        raise NotFound(f"lab {lab_name} has no pod {name!r}", hint=f"see: terwayctl lab pods --name {lab_name}")
    outcome = run_cni(lab, topology, record, "DEL", {})
    if outcome.code != 0:
        raise LabError(f"CNI DEL of {name} failed: {_cni_error(outcome)}",
                       hint="the daemon keeps the IP until DEL succeeds; see 'terwayctl lab status'")
    netns.delete(record.ns)
    _kube_pod(lab, topology, record, delete=True)
    with lab.locked() as state:
        state.pods.pop(name, None)
    return record


def lease_of(lab_name: str, record: PodRecord) -> dict[str, Any] | None:
    """The lease the node's daemon keeps for a deleted pod's IP (a StatefulSet pod: docs/node.md,
    "Stable IPs for StatefulSet pods"), from its `daemon status`; None when the IP was released."""
    from terwayctl.node.client import DaemonUnavailable, ask_status

    try:
        doc = ask_status(LabDir(lab_name).node_socket(record.node), timeout=3)
    except DaemonUnavailable:
        return None
    pod = f"{record.namespace}/{record.name}"
    return next((dict(x) for x in doc.get("leases") or [] if x.get("ip") == record.ip and x.get("pod") == pod), None)


def pods(lab_name: str) -> list[PodRecord]:
    lab = LabDir(lab_name)
    lab.topology()
    return sorted(lab.read_state().pods.values(), key=lambda p: (p.node, p.name))


def run_cni(lab: LabDir, topology: Topology, pod: PodRecord, verb: str, config: Mapping[str, Any]) -> CniOutcome:
    """Execute the node's plugin as kubelet/containerd does (in the node's namespace)."""
    conflist = json.loads(lab.conflist(pod.node).read_text())
    netconf: dict[str, Any] = {"cniVersion": conflist["cniVersion"], "name": conflist["name"],
                               **conflist["plugins"][0]}
    if config:
        netconf["runtimeConfig"] = dict(config)
    args = (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};"
            f"K8S_POD_INFRA_CONTAINER_ID={pod.container_id}")
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "CNI_COMMAND": verb, "CNI_CONTAINERID": pod.container_id, "CNI_NETNS": str(netns.path_of(pod.ns)),
        "CNI_IFNAME": "eth0", "CNI_PATH": str(lab.node_bin(pod.node)), "CNI_ARGS": args,
    }
    node = topology.node(pod.node)
    plugin = lab.node_bin(pod.node) / str(netconf["type"])
    done = subprocess.run(netns.command(node.ns, [str(plugin)]), input=json.dumps(netconf).encode(), env=env,
                          capture_output=True, timeout=CNI_TIMEOUT_S, check=False)
    text = done.stdout.decode(errors="replace").strip()
    try:
        result = json.loads(text) if text else {}
    except ValueError:
        result = {"msg": text}
    return CniOutcome(done.returncode, result if isinstance(result, dict) else {}, done.stderr.decode(errors="replace"))


def _cni_error(outcome: CniOutcome) -> str:
    msg = outcome.result.get("msg") or outcome.stderr.strip() or "no output"
    code = outcome.result.get("code", outcome.code)
    details = outcome.result.get("details")
    return f"code {code}: {msg}" + (f" ({details})" if details else "")


def _set_annotations(path: Path, key: str, annotations: Mapping[str, str]) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = dict(annotations)
    path.write_text(json.dumps(data, indent=2))


# --- exec -----------------------------------------------------------------------------------------


def lab_env(lab_name: str) -> dict[str, str]:
    """`lab env`: what points terwayctl on the host at the lab: the emulator (TERWAYCTL_ENDPOINT), its
    credentials and region, and, for `lab up --kube`, KUBECONFIG (the API server on 127.0.0.1)."""
    lab = LabDir(lab_name)
    topology = lab.topology()
    url = str(lab.ready().get("url", ""))
    if not url:
        raise LabError(f"the supervisor of lab {lab_name} is not serving", hint="'terwayctl lab status'")
    result = {k: v for k, v in cloud_env(url, topology.region).items()
              if k.startswith(("TERWAYCTL_", "ALIBABA_CLOUD_")) and k != naming.LAB_DIR_ENV}
    if topology.kube:
        result["KUBECONFIG"] = str(lab.kubeconfig)
    return result



def exec_command(lab_name: str, target: str, command: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment that run `command` inside a node, a pod, the router or the internet.

    In a node the environment reaches the lab's cloud (TERWAYCTL_ENDPOINT through the node's proxy,
    credentials, region) and the node's daemon (TERWAY_DAEMON_SOCKET), so ``terwayctl daemon status``
    or ``terwayctl ipam check`` work there as on a real node.
    """
    if not command:
        raise InvalidInput("no command given", hint=f"e.g. terwayctl lab exec {target} -- ip addr")
    lab = LabDir(lab_name)
    topology = lab.topology()
    url = str(lab.ready().get("url", ""))
    state = lab.read_state()
    if target in ("router", "internet", "inet"):
        ns = topology.router_ns if target == "router" else topology.internet_ns
        env = cloud_env(url, topology.region)
    elif any(n.name == target for n in topology.nodes):
        node = topology.node(target)
        ns, env = node.ns, lab.node_env(topology, node, url)
    elif target in state.pods:
        ns, env = state.pods[target].ns, {**cloud_env(url, topology.region), "TERWAYCTL_LAB": lab_name}
    else:
        names = ["router", "internet", *(n.name for n in topology.nodes), *sorted(state.pods)]
        raise NotFound(f"lab {lab_name} has no node or pod {target!r}", hint=f"one of: {', '.join(names)}")
    return netns.command(ns, list(command)), env
