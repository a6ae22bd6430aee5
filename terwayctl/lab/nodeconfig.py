"""`lab up --kube --node-config NODE[=FILE]`: a per-node ConfigMap, as a node pool with its own settings has.

Terway merges the ``eni_conf`` of the ConfigMap named by a Node's ``terway-config`` label over the one of
``eni-config`` (RFC 7396: a zone listed there replaces that zone's list). For each NODE this creates
ConfigMap ``eni-config-<NODE>`` in kube-system whose eni_conf lists the node's zone with the lab's pod
vSwitches of that zone, with FILE's eni_conf (JSON/YAML or a ConfigMap, as ``--config``) merged over it,
labels the Node ``terway-config=eni-config-<NODE>``, and restarts the node's terway pod (the lab's
supervisor restarts its daemon), so the daemon reads the override as on a cluster node.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from terwayctl.core.errors import InvalidInput, TerwayctlError
from terwayctl.lab.model import Topology
from terwayctl.lab.state import LabDir

NAMESPACE = "kube-system"
LABEL = "terway-config"  # terwayctl.kube.reads.LABEL_TERWAY_CONFIG
RESTART_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class NodeConfig:
    """One --node-config: the node and the eni_conf its ConfigMap adds (before the zone's vSwitches)."""

    node: str
    eni_conf: Mapping[str, Any]

    @property
    def configmap(self) -> str:
        return f"eni-config-{self.node}"


def parse(values: Sequence[str], kube: bool, nodes: int) -> list[NodeConfig]:
    """`NODE` or `NODE=FILE` values of --node-config, checked before the lab is built (exit 2 on bad input)."""
    from terwayctl.lab.model import load_eni_conf_file

    if values and not kube:
        raise InvalidInput("--node-config needs --kube (the per-node ConfigMap lives in the lab's API server)",
                           hint="terwayctl lab up --kube --node-config node2")
    found: dict[str, NodeConfig] = {}
    for value in values:
        node, equals, file = value.partition("=")
        names = [f"node{i}" for i in range(1, nodes + 1)]
        if node not in names:
            raise InvalidInput(f"--node-config {value!r}: {node!r} is not a node of the lab ({', '.join(names)})",
                               hint="--node-config NODE or NODE=FILE, e.g. --node-config node2=big.yaml")
        if node in found:
            raise InvalidInput(f"--node-config names {node} twice", hint="one --node-config per node")
        if equals and not file:
            raise InvalidInput(f"--node-config {value!r} names no file after '='", hint=f"--node-config {node}=FILE")
        conf = load_eni_conf_file(file) if file else {}
        found[node] = NodeConfig(node, conf)
    return list(found.values())


def eni_conf_for(topology: Topology, config: NodeConfig) -> dict[str, Any]:
    """The override: the node's zone with the lab's pod vSwitches of that zone, FILE's eni_conf over it."""
    zone = topology.node(config.node).zone
    conf: dict[str, Any] = {"vswitches": {zone: [v.id for v in topology.pod_vswitches() if v.zone == zone]}}
    conf.update(config.eni_conf)
    return conf


def apply(lab_name: str, configs: Sequence[NodeConfig], timeout: float = RESTART_TIMEOUT_S) -> None:
    """Create the ConfigMaps, label the Nodes and restart their terway pods (waits until they are ready)."""
    from terwayctl.kube.client import connect
    from terwayctl.kube.errors import KubeNotFound
    from terwayctl.kube.reads import find_terway_daemonset
    from terwayctl.kube.rollout import restart_pods_on_nodes

    if not configs:
        return
    lab = LabDir(lab_name)
    topology = lab.topology()
    with connect(str(lab.kubeconfig)) as kube:
        for config in configs:
            data = {"eni_conf": json.dumps(eni_conf_for(topology, config), indent=2) + "\n"}
            cm = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": config.configmap, "namespace": NAMESPACE}, "data": data}
            try:
                kube.get("v1", "configmaps", config.configmap, NAMESPACE)
                kube.replace("v1", "configmaps", cm)
            except KubeNotFound:
                kube.request("POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps", what="configmaps", body=cm)
            kube.patch("v1", "nodes", config.node, {"metadata": {"labels": {LABEL: config.configmap}}})
        daemonset = find_terway_daemonset(kube, NAMESPACE)
        if daemonset is None:
            raise TerwayctlError(f"lab {lab_name}: no terway DaemonSet in {NAMESPACE}")
        result = restart_pods_on_nodes(kube, NAMESPACE, daemonset.name, [c.node for c in configs],
                                       timeout=timeout, poll=0.1)
    if not result.complete:
        raise TerwayctlError(f"the terway pods of {', '.join(c.node for c in configs)} did not become ready with "
                             f"their ConfigMap within {timeout:g}s", hint=f"see {lab.path}/<node>/daemon.log")

