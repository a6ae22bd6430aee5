"""The exclusive-ENI device plugin as the cluster sees it: each node's allocatable `aliyun/eni`.

In exclusive-ENI mode (terway-eni) the daemon registers the device plugin `aliyun/eni` with kubelet
(terwayctl/node/deviceplugin.py), so the scheduler never places more pods that need an ENI than
the node has ENIs for them: EniQuantity - 1 under the eni_conf caps, as `capacity --cluster`
counts. A node without the resource, or with another count, is a scheduling risk.
"""

from __future__ import annotations

from terwayctl.core import defaults
from terwayctl.core.cluster_capacity import FLAG_ENI_DEVICES, NodeRecord, cluster_capacity
from terwayctl.core.eniconf import eni_caps_from_conf, merged_eni_conf
from terwayctl.core.errors import TerwayctlError
from terwayctl.doctor.context import Context
from terwayctl.doctor.model import Check, CheckSkipped, Need, Scope, Verdict, fail, ok

NEEDS = frozenset({Need.CLUSTER})


def eni_devices(ctx: Context) -> Verdict:
    from terwayctl.data import embedded_catalog
    from terwayctl.kube.reads import list_nodes

    kube = ctx.kube
    ds = kube.terway_daemonset()
    if ds is None:
        raise CheckSkipped(f"no {defaults.DAEMONSET_ENIIP} or {defaults.DAEMONSET_ENI} DaemonSet in {kube.namespace}")
    if ds.mode != "eni":
        raise CheckSkipped(f"{ds.namespace}/{ds.name} runs shared ENIs ({ds.mode}): the aliyun/eni device plugin "
                           "runs in exclusive-ENI mode only")
    reader = getattr(kube, "reader", None)
    if reader is None:
        raise CheckSkipped("the cluster reader cannot read the nodes' allocatable resources")
    nodes = list_nodes(reader)
    if not nodes:
        raise CheckSkipped("the cluster has no nodes")
    default_text = (kube.config_map(defaults.ENI_CONFIG_NAME) or {}).get(defaults.ENI_CONF_KEY) or "{}"
    records = []
    for node in nodes:
        override = (kube.config_map(node.terway_config) or {}).get(defaults.ENI_CONF_KEY) if node.terway_config \
            else None
        try:
            caps = eni_caps_from_conf(merged_eni_conf(default_text, override), f"eni_conf of node {node.name}")
        except TerwayctlError:
            caps = eni_caps_from_conf({}, "")
        records.append(NodeRecord(name=node.name, instance_type=node.instance_type, zone=node.zone,
                                  max_pods=node.capacity_pods, allocatable_pods=node.allocatable_pods, pods=0,
                                  host_network_pods=0, caps=caps, allocatable_enis=node.allocatable_enis))
    catalog = embedded_catalog()
    types = catalog.by_name()
    rows = cluster_capacity(records, types, "eni", {n: catalog.source for n in types})
    evidence: list[str] = []
    bad: list[str] = []
    for row in rows:
        if row.ip_capacity is None:
            evidence.append(f"{row.name}: instance type {row.instance_type or '?'} unknown to the catalog")
        elif FLAG_ENI_DEVICES in row.flags:
            bad.append(row.name)
            evidence.extend(f"{row.name}: {p}" for p in row.problems if "aliyun/eni" in p)
        else:
            evidence.append(f"{row.name} ({row.instance_type}): allocatable aliyun/eni {row.allocatable_enis} = "
                            f"{row.ip_capacity} ENIs for pods")
    if bad:
        return fail(evidence, f"kubectl -n {ds.namespace} logs the {ds.name} pod on {', '.join(bad)} (look for "
                              "'device plugin'); the daemon needs the host's /var/lib/kubelet/device-plugins "
                              "mounted (terwayctl render --set mode=eni) and re-registers after a kubelet restart")
    return ok(*evidence)


CHECKS: list[Check] = [
    Check("cluster.eni-devices", "Nodes advertise their exclusive ENIs (aliyun/eni)", Scope.CLUSTER, NEEDS,
          eni_devices, "exclusive-ENI mode: each node's allocatable aliyun/eni against EniQuantity - 1 under eni_conf "
          "caps (as capacity --cluster)"),
]
