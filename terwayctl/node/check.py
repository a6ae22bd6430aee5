"""`ipam check`: compare the daemon's store, the node's kernel and the cloud; list every mismatch.

Read-only: the store is opened read-only (WAL lets a running daemon keep writing), the kernel is
read with `inspect_node`, the cloud with DescribeNetworkInterfaces of the instance.

The store is read twice, before and after the cloud, and a difference counts only when both reads
show it and no intent (a cloud call of the daemon in flight, intents.py) of either read is about
that ENI: a refill or a shrink under way is never reported. Each mismatch says what reconciliation
does about it (`repair`) and the report says when the daemon's next pass runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from terwayctl.cloud.models import NetworkInterface
from terwayctl.core.errors import NotFound
from terwayctl.kernel import netns
from terwayctl.kernel.datapath import DatapathMode, inspect_node
from terwayctl.node.cloudapi import EniCloud
from terwayctl.node.config import ENI_CREATOR_TAG, PoolMode
from terwayctl.node.hostroutes import META_KEY as HOST_ROUTES_KEY
from terwayctl.node.reconcile import attached_enis, pod_ips_of
from terwayctl.node.store import EniRecord, Intent, IpRecord, Lease, Store

REPAIRS = {
    "eni-not-in-cloud": "reconcile drops it with its IPs (the datapath of its pods torn down)",
    "eni-not-in-store": "reconcile adopts it, its IPs idle",
    "eni-leaked": "reconcile deletes it",
    "ip-not-in-cloud": "reconcile drops it",
    "ip-not-in-cloud-allocated": "reconcile drops it after the pod's DEL; duplicate-address risk: "
                                 "recreate the pod",
    "ip-not-in-store": "reconcile adopts it idle (the pool then shrinks to max_pool_size)",
    "allocation-without-veth": "kept: the runtime retries the ADD (same IP) or sends DEL",
    "veth-mismatch": "none: DEL the pod",
    "allocation-without-rules": "kept: the runtime retries the ADD (same IP) or sends DEL",
    "kernel-leftover": "torn down at the daemon's next start",
    "ipv6-not-in-cloud": "reconcile drops it (dual stack, node/ipv6.py)",
    "ipv6-not-in-store": "reconcile adopts it and pairs it with a pod IPv4 of the ENI",
}


@dataclass(frozen=True)
class Mismatch:
    kind: str
    subject: str
    detail: str
    repair: str = ""


@dataclass(frozen=True)
class CheckReport:
    enis: int
    ips: int
    allocations: int
    mismatches: list[Mismatch] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    """the daemon's cloud calls under way (intents), whose differences are not reported"""
    next_repair: str = ""
    """when the daemon's next reconciliation runs"""
    leases: list[str] = field(default_factory=list)
    """IPs kept for StatefulSet pods after their DEL (leases.py): in the store and the cloud, held by
    no pod, and neither idle nor leaked"""

    @property
    def ok(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True)
class _Snapshot:
    enis: dict[str, EniRecord]
    records: list[IpRecord]
    intents: list[Intent]
    leases: list[Lease] = field(default_factory=list)


def _read(store_path: Path) -> tuple[_Snapshot, str]:
    with Store(store_path, readonly=True) as store:
        try:
            intents, when = store.intents(), store.meta("resync_next") or ""
        except Exception:  # noqa: BLE001 - the store of an older daemon: no intent log
            intents, when = [], ""
        try:
            leases = store.leases()
        except Exception:  # noqa: BLE001 - the store of an older daemon: no leases
            leases = []
        snap = _Snapshot({e.eni_id: e for e in store.enis()}, store.ips(), intents, leases)
    return snap, when


def _cloud_mismatches(snap: _Snapshot, cloud_enis: dict[str, NetworkInterface], leaked: list[NetworkInterface],
                      mode: PoolMode) -> list[Mismatch]:
    enis, records = snap.enis, snap.records
    found: list[Mismatch] = []
    for eni_id in sorted(set(enis) - set(cloud_enis)):
        found.append(Mismatch("eni-not-in-cloud", eni_id, "the store holds an ENI the instance does not have"))
    for eni_id in sorted(set(cloud_enis) - set(enis)):
        found.append(Mismatch("eni-not-in-store", eni_id, "attached to the instance but unknown to the daemon"))
    for ni in leaked:
        found.append(Mismatch("eni-leaked", ni.network_interface_id,
                              f"Available in {ni.vswitch_id}, created by this node ({ENI_CREATOR_TAG}), not attached"))
    cloud_ips = {ip: eni_id for eni_id, ni in cloud_enis.items() if eni_id in enis for ip in pod_ips_of(ni, mode)}
    store_ips = {r.ip: r for r in records}
    for ip in sorted(set(store_ips) - set(cloud_ips)):
        if store_ips[ip].eni_id in cloud_enis:
            owner = store_ips[ip].owner
            held = f", held by pod {owner.pod_namespace}/{owner.pod_name}" if owner else ""
            found.append(Mismatch("ip-not-in-cloud", ip, f"the store lists it on {store_ips[ip].eni_id}{held}",
                                  REPAIRS["ip-not-in-cloud-allocated" if owner else "ip-not-in-cloud"]))
    for ip in sorted(set(cloud_ips) - set(store_ips)):
        found.append(Mismatch("ip-not-in-store", ip, f"assigned to {cloud_ips[ip]} but unknown to the daemon"))
    return found


def _eni_of(m: Mismatch, snap: _Snapshot, cloud_enis: dict[str, NetworkInterface]) -> str:
    if m.kind.startswith("eni-"):
        return m.subject
    for record in snap.records:
        if record.ip == m.subject:
            return record.eni_id
    for eni_id, ni in cloud_enis.items():
        if m.subject in ni.private_ips:
            return eni_id
    return ""


def check(store_path: Path, node_ns: str, cloud: EniCloud, instance_id: str, mode: PoolMode) -> CheckReport:
    if not store_path.exists():
        raise NotFound(f"no daemon store at {store_path}", hint="pass --state-dir of the daemon")
    before, _ = _read(store_path)
    cloud_enis = {ni.network_interface_id: ni for ni in attached_enis(cloud, instance_id)}
    leaked = [
        ni for ni in cloud.describe_network_interfaces(status="Available")
        if (ENI_CREATOR_TAG, instance_id) in ni.tags
    ]
    after, next_resync = _read(store_path)
    busy = {i.eni_id for i in before.intents + after.intents if i.eni_id}
    creating = any(i.action == "CreateNetworkInterface" for i in before.intents + after.intents)
    seen_before = {(m.kind, m.subject) for m in _cloud_mismatches(before, cloud_enis, leaked, mode)}
    found: list[Mismatch] = []
    for m in _cloud_mismatches(after, cloud_enis, leaked, mode):
        if (m.kind, m.subject) not in seen_before or _eni_of(m, after, cloud_enis) in busy:
            continue  # a call of the daemon in flight explains it
        if m.kind == "eni-leaked" and creating:
            continue
        found.append(m if m.repair else Mismatch(m.kind, m.subject, m.detail, REPAIRS.get(m.kind, "")))
    enis, records = after.enis, after.records

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
    if netns.exists(node_ns):
        found += _exclusive_mismatches(store_path, node_ns, allocated, leftovers=mode is PoolMode.ENI)
    if mode is PoolMode.ENIIP:  # a dual-stack node's IPv6 half (nothing on an IPv4 node's store)
        from terwayctl.node.ipv6 import audit

        found += [Mismatch(kind, subject, detail)
                  for kind, subject, detail in audit(store_path, node_ns, cloud_enis, allocated, busy)]
    found = [m if m.repair else Mismatch(m.kind, m.subject, m.detail, REPAIRS.get(m.kind, "")) for m in found]
    in_flight = [f"{i.action} {i.eni_id or '-'} (pid {i.pid})" for i in after.intents]
    when = ""
    if next_resync:
        at = float(next_resync)
        when = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(at))} (in {max(0.0, at - time.time()):.0f}s)"
    leases = [f"{lease.ip} {lease.pod_namespace}/{lease.pod_name} ({lease.reason}, until "
              f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(lease.expires))})" for lease in after.leases]
    return CheckReport(enis=len(enis), ips=len(records), allocations=len(allocated), mismatches=found,
                       in_flight=in_flight, next_repair=when, leases=leases)


def _exclusive_mismatches(store_path: Path, node_ns: str, allocated: dict[str, IpRecord], *,
                          leftovers: bool) -> list[Mismatch]:
    """Exclusive-ENI allocations: each pod's veth to the node for services (when the daemon builds
    them: its store says which CIDRs it routes through them); in eni mode (`leftovers`) also no
    such veth without an allocation."""
    with Store(store_path, readonly=True) as store:
        try:
            routes = store.meta(HOST_ROUTES_KEY) or ""
        except Exception:  # noqa: BLE001 - the store of an older daemon
            routes = ""
    state = inspect_node(node_ns)
    routed = {str(ip): v.name for v in state.veths for ip in v.pod_ips}
    found: list[Mismatch] = []
    for ip, record in sorted(allocated.items()):
        owner = record.owner
        assert owner is not None
        if record.mode != DatapathMode.EXCLUSIVE_ENI.value:
            continue
        if routes and ip not in routed:
            found.append(Mismatch("allocation-without-veth", ip,
                                  f"{owner.pod_namespace}/{owner.pod_name} ({owner.container_id[:12]}): no veth "
                                  f"to the node routes it (services {routes})"))
    for ip in sorted(set(routed) - set(allocated) if leftovers else ()):
        found.append(Mismatch("kernel-leftover", ip, f"{routed[ip]}: no allocation holds this IP"))
    return found


def request_repair(store_path: Path, timeout: float, clock: float | None = None) -> float:
    """Ask the running daemon to reconcile now (it polls its store every second); wait for the pass
    to end. The time the pass ended; NotFound when no daemon answered within `timeout`."""
    from terwayctl.node.pool import REPAIR_KEY

    if not store_path.exists():
        raise NotFound(f"no daemon store at {store_path}", hint="pass --state-dir of the daemon")
    asked = clock if clock is not None else time.time()
    with Store(store_path) as store:
        store.set_meta(REPAIR_KEY, f"{asked:.3f}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = float(store.meta("resync_at") or 0)
            if done >= asked:
                return done
            time.sleep(0.1)
    raise NotFound(f"the daemon did not reconcile within {timeout:g}s",
                   hint="is 'terwayctl daemon' running with this --state-dir? it reconciles at start too")
