"""Start-up reconciliation of the store with the cloud and the kernel.

The cloud is the truth for what the node holds (ENIs attached to the instance, their IPs); the
store is the truth for who owns an IP; the kernel must show exactly the allocations.

- an ENI attached to the instance that the store does not know: adopted, its IPs idle;
- a store ENI the cloud no longer shows attached: dropped with its IPs (allocations torn down);
- an IP on a known ENI that the store lacks: added idle; a store IP the ENI no longer has:
  dropped (its allocation torn down);
- an ENI this daemon created (tag terway.node=<instance>) left Available by a crash between
  create and attach: deleted;
- kernel leftovers (pod veths, 512/2048 rules) for IPs without an allocation: torn down.

An allocation whose datapath is missing (a crash in the middle of an ADD) is kept: the runtime
retries that ADD (same container: same IP) or sends DEL; GC releases it otherwise.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from terwayctl.cloud.models import NetworkInterface
from terwayctl.kernel import netns
from terwayctl.kernel.datapath import DatapathMode, PodNetwork, inspect_node, teardown_pod
from terwayctl.node.cloudapi import EniCloud
from terwayctl.node.config import ENI_CREATOR_TAG, DaemonConfig, PoolMode
from terwayctl.node.links import links_by_mac, prepare_eni, wait_for_link
from terwayctl.node.pool import Eni, VSwitchInfo
from terwayctl.node.store import EniRecord, IpRecord, Store

log = logging.getLogger("terwayctl.node.reconcile")


@dataclass
class Repairs:
    """What reconciliation changed, for the log and `daemon status`."""

    adopted_enis: list[str] = field(default_factory=list)
    dropped_enis: list[str] = field(default_factory=list)
    adopted_ips: list[str] = field(default_factory=list)
    dropped_ips: list[str] = field(default_factory=list)
    deleted_leaked_enis: list[str] = field(default_factory=list)
    kernel_leftovers: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{name}={len(value)}" for name, value in vars(self).items() if value]
        return " ".join(parts) or "nothing to repair"


def attached_enis(cloud: EniCloud, instance_id: str) -> list[NetworkInterface]:
    """The instance's secondary ENIs as the cloud sees them (InUse or still Attaching)."""
    return [
        ni
        for ni in cloud.describe_network_interfaces(instance_id=instance_id)
        if ni.type != "Primary" and ni.status in ("InUse", "Attaching")
    ]


def pod_ips_of(ni: NetworkInterface, mode: PoolMode) -> set[str]:
    return {ni.primary_ip} if mode is PoolMode.ENI else set(ni.private_ips)


def teardown_record(config: DaemonConfig, record: IpRecord, eni: EniRecord | None) -> None:
    """Remove the datapath of one allocation; absent pieces are fine."""
    if record.owner is None:
        return
    spec = spec_for_teardown(record, eni)
    pod = record.owner.netns or None
    teardown_pod(config.node_ns, pod if pod and netns.exists(pod) else None, record.owner.ifname or "eth0", spec)


def spec_for_teardown(record: IpRecord, eni: EniRecord | None) -> PodNetwork:
    prefix = int(eni.cidr.split("/")[1]) if eni else 32
    gateway = eni.gateway if eni else record.ip
    if record.mode == DatapathMode.EXCLUSIVE_ENI.value:
        return PodNetwork(
            pod_ip=IPv4Address(record.ip), prefix=prefix, gateway=IPv4Address(gateway),
            eni_ifname=record.host_ifname or "eth0", host_ifname=record.host_ifname or "eth0",
            mode=DatapathMode.EXCLUSIVE_ENI,
        )
    return PodNetwork(
        pod_ip=IPv4Address(record.ip), prefix=prefix, gateway=IPv4Address(gateway),
        eni_ifname="eth0", host_ifname=record.host_ifname or "cali00000000000",
    )


def reconcile(
    config: DaemonConfig,
    cloud: EniCloud,
    store: Store,
    vswitches: Callable[[Iterable[str]], dict[str, VSwitchInfo]],
    ip_limit: int,
) -> tuple[list[Eni], list[str], Repairs]:
    """Repair store, kernel and cloud; return the pool's ENIs, the allocated IPs and the repairs."""
    repairs = Repairs()
    mode = config.mode
    instance = config.identity.instance_id
    _delete_leaked(cloud, config, repairs)
    in_cloud = {ni.network_interface_id: ni for ni in attached_enis(cloud, instance)}
    stored = {e.eni_id: e for e in store.enis()}
    records = store.ips()
    by_ip = {r.ip: r for r in records}
    infos = vswitches(ni.vswitch_id for ni in in_cloud.values())

    for eni_id, eni in stored.items():
        if eni_id not in in_cloud:
            for record in records:
                if record.eni_id == eni_id:
                    teardown_record(config, record, eni)
            store.remove_eni(eni_id)
            repairs.dropped_enis.append(eni_id)

    macs = links_by_mac(config.node_ns)
    enis: list[Eni] = []
    for eni_id, ni in in_cloud.items():
        info = infos[ni.vswitch_id]
        eni_record = stored.get(eni_id) or EniRecord(
            eni_id=eni_id, mac=ni.mac_address.lower(), vswitch_id=ni.vswitch_id, cidr=info.cidr,
            gateway=info.gateway, primary_ip=ni.primary_ip, ip_limit=1 if mode is PoolMode.ENI else ip_limit,
        )
        cloud_ips = pod_ips_of(ni, mode)
        if eni_id not in stored:
            store.add_eni(eni_record, cloud_ips)
            repairs.adopted_enis.append(eni_id)
        else:
            known = {r.ip for r in records if r.eni_id == eni_id}
            missing = cloud_ips - known
            if missing:
                store.add_idle(eni_id, missing)
                repairs.adopted_ips += sorted(missing)
            gone = known - cloud_ips
            for ip in sorted(gone):
                teardown_record(config, by_ip[ip], eni_record)
            if gone:
                store.remove_ips(gone)
                repairs.dropped_ips += sorted(gone)
        ifname = _eni_link(config, eni_record, macs, by_ip)
        enis.append(Eni(eni_record, ifname, set(cloud_ips)))

    allocations = store.allocations()
    _clean_kernel(config, {r.ip for r in allocations}, {r.host_ifname for r in allocations}, repairs)
    log.info("reconciled: %s", repairs.summary())
    return enis, [r.ip for r in allocations], repairs


def _eni_link(config: DaemonConfig, record: EniRecord, macs: dict[str, str], by_ip: dict[str, IpRecord]) -> str:
    ifname = macs.get(record.mac.lower())
    if config.mode is PoolMode.ENI:
        held = by_ip.get(record.primary_ip)
        if ifname is None and held is not None and held.owner is not None:
            return held.host_ifname  # the link lives in the pod
        return ifname or wait_for_link(config.node_ns, record.mac, 5.0)
    if ifname is None:
        ifname = wait_for_link(config.node_ns, record.mac, 5.0)
    prepare_eni(config.node_ns, ifname, record.gateway, config.mtu)
    return ifname


def _delete_leaked(cloud: EniCloud, config: DaemonConfig, repairs: Repairs) -> None:
    instance = config.identity.instance_id
    vswitches = config.pool.vswitches_for(config.identity.zone_id, config.identity.vswitch_id)
    for vswitch_id in vswitches:
        for ni in cloud.describe_network_interfaces(vswitch_id=vswitch_id, status="Available"):
            if (ENI_CREATOR_TAG, instance) in ni.tags:
                with contextlib.suppress(Exception):
                    cloud.delete_network_interface(ni.network_interface_id)
                    repairs.deleted_leaked_enis.append(ni.network_interface_id)


def _clean_kernel(config: DaemonConfig, allocated: set[str], hosts: set[str], repairs: Repairs) -> None:
    if config.mode is PoolMode.ENI:
        return
    state = inspect_node(config.node_ns)
    leftovers: dict[str, str] = {}
    for veth in state.veths:
        ips = {str(ip) for ip in veth.pod_ips}
        if not ips:
            if veth.name not in hosts:
                _delete_link(config, veth.name)
                repairs.kernel_leftovers.append(veth.name)
            continue
        for ip in ips - allocated:
            leftovers[ip] = veth.name
    for rule in state.rules:
        address = rule.src or rule.dst
        if address is not None and str(address) not in allocated:
            leftovers.setdefault(str(address), "cali00000000000")
    for ip, host in sorted(leftovers.items()):
        spec = PodNetwork(pod_ip=IPv4Address(ip), prefix=32, gateway=IPv4Address(ip), eni_ifname="eth0",
                          host_ifname=host)
        teardown_pod(config.node_ns, None, "eth0", spec)
        repairs.kernel_leftovers.append(f"{ip} ({host})")


def _delete_link(config: DaemonConfig, name: str) -> None:
    with netns.iproute(config.node_ns) as nl:
        found = nl.link_lookup(ifname=name)
        if found:
            with contextlib.suppress(Exception):
                nl.link("del", index=found[0])
