"""`ipam check`: compare the daemon's store, the node's kernel and the cloud; list every mismatch.

Read-only: the store is opened read-only (WAL lets a running daemon keep writing), the kernel is
read with `inspect_node`, the cloud with DescribeNetworkInterfaces of the instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from terwayctl.core.errors import NotFound
from terwayctl.kernel import netns
from terwayctl.kernel.datapath import DatapathMode, inspect_node
from terwayctl.node.cloudapi import EniCloud
from terwayctl.node.config import PoolMode
from terwayctl.node.reconcile import attached_enis, pod_ips_of
from terwayctl.node.store import Store


@dataclass(frozen=True)
class Mismatch:
    kind: str
    subject: str
    detail: str


@dataclass(frozen=True)
class CheckReport:
    enis: int
    ips: int
    allocations: int
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def check(store_path: Path, node_ns: str, cloud: EniCloud, instance_id: str, mode: PoolMode) -> CheckReport:
    if not store_path.exists():
        raise NotFound(f"no daemon store at {store_path}", hint="pass --state-dir of the daemon")
    with Store(store_path, readonly=True) as store:
        enis = {e.eni_id: e for e in store.enis()}
        records = store.ips()
    found: list[Mismatch] = []
    cloud_enis = {ni.network_interface_id: ni for ni in attached_enis(cloud, instance_id)}
    for eni_id in sorted(set(enis) - set(cloud_enis)):
        found.append(Mismatch("eni-not-in-cloud", eni_id, "the store holds an ENI the instance does not have"))
    for eni_id in sorted(set(cloud_enis) - set(enis)):
        found.append(Mismatch("eni-not-in-store", eni_id, "attached to the instance but unknown to the daemon"))
    cloud_ips = {ip: eni_id for eni_id, ni in cloud_enis.items() if eni_id in enis for ip in pod_ips_of(ni, mode)}
    store_ips = {r.ip: r for r in records}
    for ip in sorted(set(store_ips) - set(cloud_ips)):
        if store_ips[ip].eni_id in cloud_enis:
            found.append(Mismatch("ip-not-in-cloud", ip, f"the store lists it on {store_ips[ip].eni_id}"))
    for ip in sorted(set(cloud_ips) - set(store_ips)):
        found.append(Mismatch("ip-not-in-store", ip, f"assigned to {cloud_ips[ip]} but unknown to the daemon"))

    allocated = {r.ip: r for r in records if r.owner is not None}
    if netns.exists(node_ns) and mode is PoolMode.ENIIP:
        state = inspect_node(node_ns)
        routed = {str(ip): v.name for v in state.veths for ip in v.pod_ips}
        from_rules = {str(r.src) for r in state.rules if r.src is not None}
        to_rules = {str(r.dst) for r in state.rules if r.dst is not None}
        for ip, record in sorted(allocated.items()):
            owner = record.owner
            assert owner is not None
            who = f"{owner.pod_namespace}/{owner.pod_name} ({owner.container_id[:12]})"
            if record.mode == DatapathMode.EXCLUSIVE_ENI.value:
                continue
            if ip not in routed:
                found.append(Mismatch("allocation-without-veth", ip, f"{who}: no host veth routes it"))
            elif record.host_ifname and routed[ip] != record.host_ifname:
                found.append(Mismatch("veth-mismatch", ip, f"{who}: routed to {routed[ip]}, store says "
                                      f"{record.host_ifname}"))
            if ip not in from_rules or ip not in to_rules:
                found.append(Mismatch("allocation-without-rules", ip, f"{who}: the 512/2048 ip rules are missing"))
        for ip in sorted((set(routed) | from_rules | to_rules) - set(allocated)):
            where = routed.get(ip, "ip rules")
            found.append(Mismatch("kernel-leftover", ip, f"{where}: no allocation holds this IP"))
        for veth in state.veths:
            if not veth.pod_ips and veth.name not in {r.host_ifname for r in allocated.values()}:
                found.append(Mismatch("kernel-leftover", veth.name, "a pod veth without a route or allocation"))
    return CheckReport(enis=len(enis), ips=len(records), allocations=len(allocated), mismatches=found)
