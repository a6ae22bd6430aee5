"""Objects the tests seed: nodes, eni-config, the terway DaemonSet, pods, and an emulator scenario."""

from __future__ import annotations

import json
from typing import Any

ENI_CONF = {
    "version": "1",
    "max_pool_size": 5,
    "min_pool_size": 0,
    "vswitches": {"cn-hangzhou-i": ["vsw-podi"], "cn-hangzhou-j": ["vsw-podj"]},
    "security_groups": ["sg-terway"],
    "service_cidr": "172.21.0.0/20",
    "vswitch_selection_policy": "ordered",
    "eni_tags": {"owner": "terway"},
}


def eni_conf_text(conf: dict[str, Any] | None = None) -> str:
    return json.dumps(conf or ENI_CONF, indent=2)


def configmap(name: str, eni_conf: str, namespace: str = "kube-system", **extra: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"eni_conf": eni_conf, **extra}}


def node(name: str, instance_type: str, zone: str, max_pods: int = 110, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"node.kubernetes.io/instance-type": instance_type,
                                               "topology.kubernetes.io/zone": zone, **labels}},
        "status": {"capacity": {"pods": str(max_pods), "cpu": "4"}, "allocatable": {"pods": str(max_pods)}},
    }


def daemonset(name: str = "terway-eniip", namespace: str = "kube-system") -> dict[str, Any]:
    labels = {"app": "terway-eniip"}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"hostNetwork": True,
                                       "containers": [{"name": "terway", "image": "terway:v1"}]}}},
    }


def pod(name: str, node_name: str, namespace: str = "default", host_network: bool = False,
        phase: str = "Running") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": node_name, "hostNetwork": host_network,
                     "containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": phase}}


SCENARIO: dict[str, Any] = {
    "region": "cn-hangzhou",
    "zones": ["cn-hangzhou-i", "cn-hangzhou-j", "cn-hangzhou-k"],
    "key_pairs": [{"access_key_id": "emulator", "access_key_secret": "emulator"}],
    "vpcs": [{"id": "vpc-cluster", "cidr": "192.168.0.0/16"}, {"id": "vpc-other", "cidr": "10.0.0.0/8"}],
    "vswitches": [
        {"id": "vsw-nodei", "vpc": "vpc-cluster", "zone": "cn-hangzhou-i", "cidr": "192.168.0.0/19"},
        {"id": "vsw-podi", "vpc": "vpc-cluster", "zone": "cn-hangzhou-i", "cidr": "192.168.32.0/19"},
        {"id": "vsw-podj", "vpc": "vpc-cluster", "zone": "cn-hangzhou-j", "cidr": "192.168.96.0/19"},
        {"id": "vsw-newi", "vpc": "vpc-cluster", "zone": "cn-hangzhou-i", "cidr": "192.168.128.0/19"},
        {"id": "vsw-newj", "vpc": "vpc-cluster", "zone": "cn-hangzhou-j", "cidr": "192.168.160.0/19"},
        {"id": "vsw-tinyi", "vpc": "vpc-cluster", "zone": "cn-hangzhou-i", "cidr": "192.168.200.0/28"},
        {"id": "vsw-podk", "vpc": "vpc-cluster", "zone": "cn-hangzhou-k", "cidr": "192.168.192.0/22"},
        {"id": "vsw-otheri", "vpc": "vpc-other", "zone": "cn-hangzhou-i", "cidr": "10.1.0.0/19"},
    ],
    "security_groups": [{"id": "sg-terway", "vpc": "vpc-cluster"}],
}


def seed_cluster(kube: Any, *, daemonset_name: str | None = "terway-eniip") -> None:
    """Three nodes (two in zone i, one in j), eni-config with one pod vSwitch per zone, the DaemonSet."""
    kube.create(node("node-1", "ecs.g7.xlarge", "cn-hangzhou-i"))
    kube.create(node("node-2", "ecs.g6.xlarge", "cn-hangzhou-i"))
    kube.create(node("node-3", "ecs.g7.4xlarge", "cn-hangzhou-j"))
    kube.create(configmap("eni-config", eni_conf_text(), **{"10-terway.conf": '{"cniVersion": "0.4.0"}'}))
    if daemonset_name:
        kube.create(daemonset(daemonset_name))
