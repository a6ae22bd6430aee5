"""Reconciliation of the store with the cloud and the kernel: at start-up and every sync period.

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

Intents (intents.py) left by a crash are settled at start-up by this pass, before the socket opens:
it reads the cloud, so whatever the interrupted call did (an ENI created or attached, IPs assigned
or unassigned, an ENI detached or deleted) is adopted or released, and the intents are cleared.

`resync` is the same repair while the daemon runs (the pool worker calls it every
ip_pool_sync_period, and at once for `ipam check --repair`): leaked Available ENIs of this node
deleted, attached ENIs the store lacks adopted, ENIs gone from the instance dropped (their pods'
datapath torn down), cloud IPs the store lacks adopted idle, store IPs the cloud does not hold
dropped: an idle one at once, an allocated one is logged as an error (the pod uses an address the
VPC may give to another ENI: duplicate-address risk) and dropped after its DEL, never handed out
again. The pool then shrinks to max_pool_size / grows to min_pool_size. ENI mode (exclusive ENIs)
runs the leak sweep and the intents only.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from terwayctl.cloud.models import NetworkInterface
from terwayctl.kernel import netns
from terwayctl.kernel.datapath import DatapathMode, PodNetwork, inspect_node, teardown_pod
from terwayctl.node.cloudapi import EniCloud
from terwayctl.node.config import ENI_CREATOR_TAG, DaemonConfig, PoolMode
from terwayctl.node.intents import Ledger
from terwayctl.node.links import links_by_mac, prepare_eni, wait_for_link
from terwayctl.node.pool import Eni, Pool, VSwitchInfo
from terwayctl.node.store import EniRecord, IpRecord, Store

log = logging.getLogger("terwayctl.node.reconcile")


@dataclass
class Repairs:
    """What reconciliation changed, for the log and `daemon status`."""

    resolved_intents: list[str] = field(default_factory=list)
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
    left = store.intents()
    for intent in left:
        log.warning("intent #%d %s %s (daemon pid %d, %s) has no known outcome: settled by reading the cloud",
                    intent.id, intent.action, intent.eni_id or "-", intent.pid,
                    time.strftime("%H:%M:%SZ", time.gmtime(intent.created)))
    _delete_leaked(Ledger(cloud, store, instance), cloud, config, repairs)
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
    for intent in left:
        store.end_intent(intent.id)
        repairs.resolved_intents.append(f"{intent.action} {intent.eni_id or '-'}")
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


def _delete_leaked(ledger: Ledger, cloud: EniCloud, config: DaemonConfig, repairs: Repairs) -> None:
    """Delete the Available ENIs this node created (tag terway.node=<instance>): a crash, or a lost
    reply, between create and attach, or an ENI detached behind the daemon's back."""
    instance = config.identity.instance_id
    vswitches = config.pool.vswitches_for(config.identity.zone_id, config.identity.vswitch_id)
    for vswitch_id in vswitches:
        for ni in cloud.describe_network_interfaces(vswitch_id=vswitch_id, status="Available"):
            if (ENI_CREATOR_TAG, instance) in ni.tags:
                try:
                    ledger.delete_network_interface(ni.network_interface_id)
                except Exception as exc:  # noqa: BLE001 - the next pass tries again
                    log.warning("cannot delete leaked ENI %s: %s", ni.network_interface_id, exc)
                    continue
                log.warning("deleted ENI %s: Available, created by this node, unknown to the store",
                            ni.network_interface_id)
                repairs.deleted_leaked_enis.append(ni.network_interface_id)


def resync(
    pool: Pool,
    config: DaemonConfig,
    cloud: EniCloud,
    store: Store,
    vswitches: Callable[[Iterable[str]], dict[str, VSwitchInfo]],
    on_lost: Callable[[IpRecord, EniRecord], None],
) -> Repairs:
    """The periodic repair (see the module doc); runs on the pool worker, between refills, so no
    call of this daemon is in flight. `on_lost` tears down the datapath of an allocation whose ENI
    left the instance."""
    repairs = Repairs()
    instance = config.identity.instance_id
    pending = store.intents()
    _delete_leaked(pool.ledger, cloud, config, repairs)
    if config.mode is PoolMode.ENIIP:
        _resync_eniip(pool, config, cloud, store, vswitches, on_lost, repairs)
    for intent in pending:
        store.end_intent(intent.id)
        repairs.resolved_intents.append(f"{intent.action} {intent.eni_id or '-'}")
    now = time.time()
    store.set_meta("resync_at", f"{now:.3f}")
    store.set_meta("resync_next", f"{now + config.pool.sync_period:.3f}")
    store.set_meta("resync_repairs", repairs.summary())
    level = logging.WARNING if any(vars(repairs).values()) else logging.DEBUG
    log.log(level, "resync instance=%s: %s", instance, repairs.summary())
    return repairs


def _resync_eniip(
    pool: Pool,
    config: DaemonConfig,
    cloud: EniCloud,
    store: Store,
    vswitches: Callable[[Iterable[str]], dict[str, VSwitchInfo]],
    on_lost: Callable[[IpRecord, EniRecord], None],
    repairs: Repairs,
) -> None:
    in_cloud = {ni.network_interface_id: ni for ni in attached_enis(cloud, config.identity.instance_id)}
    stored = {e.eni_id: e for e in store.enis()}
    records = store.ips()
    with pool.cond:
        known = dict(pool.enis)
    for eni_id, eni_record in stored.items():
        if eni_id in in_cloud:
            continue
        for record in records:
            if record.eni_id == eni_id and record.owner is not None:
                log.error("ENI %s left the instance behind the daemon's back: pod %s/%s loses %s",
                          eni_id, record.owner.pod_namespace, record.owner.pod_name, record.ip)
                with contextlib.suppress(Exception):
                    on_lost(record, eni_record)
        pool.drop_eni(eni_id)
        store.remove_eni(eni_id)
        repairs.dropped_enis.append(eni_id)
    infos = vswitches(ni.vswitch_id for ni in in_cloud.values() if ni.network_interface_id not in stored)
    for eni_id, ni in in_cloud.items():
        cloud_ips = pod_ips_of(ni, PoolMode.ENIIP)
        eni = known.get(eni_id)
        if eni is None or eni_id not in stored:
            info = infos.get(ni.vswitch_id)
            if info is None:
                continue
            new = EniRecord(
                eni_id=eni_id, mac=ni.mac_address.lower(), vswitch_id=ni.vswitch_id, cidr=info.cidr,
                gateway=info.gateway, primary_ip=ni.primary_ip, ip_limit=pool.limits.ip_limit,
            )
            try:
                ifname = wait_for_link(config.node_ns, new.mac, 5.0)
                prepare_eni(config.node_ns, ifname, new.gateway, config.mtu)
            except Exception as exc:  # noqa: BLE001 - next pass
                log.warning("cannot adopt ENI %s yet: %s", eni_id, exc)
                continue
            store.add_eni(new, cloud_ips)
            pool.adopt_eni(Eni(new, ifname), cloud_ips)
            log.warning("adopted ENI %s (%d IPs): attached to the instance, unknown to the store", eni_id,
                        len(cloud_ips))
            repairs.adopted_enis.append(eni_id)
            continue
        in_store = {r.ip: r for r in records if r.eni_id == eni_id}
        missing = sorted(cloud_ips - set(in_store))
        if missing:
            store.add_idle(eni_id, missing)
            repairs.adopted_ips += missing
        unknown_to_pool = sorted(cloud_ips - eni.ips)
        if unknown_to_pool:
            pool.adopt_ips(eni, unknown_to_pool)
        gone = sorted(set(in_store) - cloud_ips)
        if gone:
            for ip in gone:
                owner = in_store[ip].owner
                if owner is not None:
                    log.error("%s of pod %s/%s (container %s) is no longer assigned to %s in the cloud: "
                              "duplicate-address risk (the VPC may give it to another ENI); it is dropped "
                              "after the pod's DEL", ip, owner.pod_namespace, owner.pod_name,
                              owner.container_id[:12], eni_id)
            pool.forget(eni_id, gone)
            store.remove_idle(gone)
            repairs.dropped_ips += gone


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
