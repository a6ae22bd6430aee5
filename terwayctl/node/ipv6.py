"""Dual stack (eni_conf `ip_stack: dual`): each pod gets one IPv4 and one IPv6 address of its ENI
(docs/node.md, "Dual stack").

Only for a node that is eligible: its instance type carries as many IPv6 as IPv4 addresses per ENI
(DescribeInstanceTypes' EniIpv6AddressQuantity == EniPrivateIpAddressQuantity, the catalog when the
API does not say), in eniip mode with the veth datapath. Any other node runs IPv4 only and says why
(log, `daemon status`, doctor). A pod vSwitch without an IPv6 CIDR is refused for a dual-stack node.

The IPv4 pool stays as it is. Next to it the store holds the ENIs' IPv6 addresses (`ipv6`), each
paired with at most one pod IPv4 of the same ENI (`ip4`); a pair lasts as long as the IPv4 is on the
ENI, so a pod that gets an IPv4 gets the same IPv6 every time. After every AssignPrivateIpAddresses
batch (and a new ENI) the pool worker asks for as many IPv6 addresses as the ENI has pod IPv4s
(AssignIpv6Addresses, at most 10 per call), before the IPv4s are handed out; an ADD that still finds
no free IPv6 on its ENI asks for one itself. AssignIpv6Addresses and UnassignIpv6Addresses go
through the intent log as the IPv4 calls do (intents.py): a ClientToken for Assign (a lost reply is
asked again with the same token, then DescribeNetworkInterfaces adopts what the cloud shows), a read
of the cloud before Unassign is sent again. Reconciliation (start and every sync period) adopts the
IPv6 addresses the cloud shows on the node's ENIs, drops the ones it does not, pairs and tops up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from terwayctl.cloud.api import Ipv6EniApi
from terwayctl.cloud.models import NetworkInterface
from terwayctl.kernel.datapath import DatapathMode, PodNetwork
from terwayctl.node.cloudapi import EniCloud, error_code
from terwayctl.node.intents import IP_UNASSIGNED, RESOLVE_ATTEMPTS, Ledger, Unresolved, ambiguous
from terwayctl.node.store import Store

log = logging.getLogger("terwayctl.node.ipv6")

MAX_PER_CALL = 10
POD_GATEWAY6 = "fe80::1"
IPV6_COUNT_EXCEEDED = "InvalidOperation.Ipv6CountExceeded"
SCHEMA = """
CREATE TABLE IF NOT EXISTS eni_ipv6 (
    eni_id  TEXT PRIMARY KEY REFERENCES enis(eni_id) ON DELETE CASCADE,
    cidr    TEXT NOT NULL,
    gateway TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ipv6 (
    ip6    TEXT PRIMARY KEY,
    eni_id TEXT NOT NULL REFERENCES enis(eni_id) ON DELETE CASCADE,
    ip4    TEXT UNIQUE REFERENCES ips(ip) ON DELETE SET NULL
);
"""
STATUS_KEY = "ip_stack"
"""store meta: the stack the daemon runs and why (read by `ipam check` and doctor)"""


def normal(address: str) -> str:
    return ipaddress.IPv6Address(address).compressed


def gateway_of(cidr: str) -> str:
    """The vSwitch's IPv6 gateway: the third address from the end of its /64 (as upstream Terway
    derives a vSwitch gateway, DeriveGatewayIP index -3)."""
    return str(ipaddress.IPv6Network(cidr).broadcast_address - 2)


@dataclasses.dataclass(frozen=True)
class StackDecision:
    """What the daemon runs: `dual` or `ipv4`, asked for `wanted`, and why."""

    wanted: str
    running: str
    reason: str

    @property
    def dual(self) -> bool:
        return self.running == "dual"

    def as_dict(self) -> dict[str, str]:
        return {"wanted": self.wanted, "running": self.running, "reason": self.reason}


def decide(
    wanted: str, *, instance_type: str, ipv4_per_eni: int | None, ipv6_per_eni: int | None, eniip: bool, veth: bool
) -> StackDecision:
    """Dual stack only where it can hold: as many IPv6 as IPv4 addresses per ENI, eniip mode, veth."""
    if wanted != "dual":
        return StackDecision(wanted, "ipv4", "eni_conf ip_stack is ipv4")
    if not eniip:
        return StackDecision(wanted, "ipv4", "dual stack is built for eniip mode (shared ENIs) only")
    if not veth:
        return StackDecision(wanted, "ipv4", "dual stack is built for the veth datapath only")
    if not ipv6_per_eni or ipv6_per_eni != ipv4_per_eni:
        return StackDecision(
            wanted, "ipv4",
            f"instance type {instance_type} is not dual-stack eligible: {ipv6_per_eni or 0} IPv6 and "
            f"{ipv4_per_eni} IPv4 addresses per ENI (dual stack needs as many IPv6 as IPv4)",
        )
    return StackDecision(wanted, "dual", f"instance type {instance_type}: {ipv6_per_eni} IPv4 and IPv6 per ENI")


def ipv6_quota(cloud: EniCloud, type_name: str) -> tuple[int | None, int | None]:
    """(IPv4, IPv6) addresses per ENI of an instance type: DescribeInstanceTypes, else the catalog."""
    ips: int | None = None
    ips6: int | None = None
    with contextlib.suppress(Exception):
        for item in cloud.describe_instance_types([type_name]):
            if item.instance_type_id == type_name:
                ips, ips6 = item.eni_private_ip_quantity, item.eni_ipv6_quantity
    if ips is None or ips6 is None:
        from terwayctl.data import embedded_catalog

        row = embedded_catalog().by_name().get(type_name)
        if row is not None:
            ips = ips if ips is not None else row.eni_private_ip_quantity
            ips6 = ips6 if ips6 is not None else row.eni_ipv6_quantity
    return ips, ips6


def refuse_vswitches(cloud: EniCloud, ids: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(vSwitch -> IPv6 /64, refused vSwitch -> reason) of the pod vSwitches of a dual-stack node."""
    usable: dict[str, str] = {}
    refused: dict[str, str] = {}
    for vsw_id in dict.fromkeys(ids):
        for vsw in cloud.describe_vswitches(vswitch_ids=[vsw_id]):
            if vsw.ipv6_cidr_block:
                usable[vsw.vswitch_id] = vsw.ipv6_cidr_block
            else:
                refused[vsw.vswitch_id] = (f"vSwitch {vsw.vswitch_id} has no IPv6 CIDR block: refused for this "
                                           "dual-stack node (enable IPv6 on the vSwitch or remove it from eni_conf)")
    return usable, refused


def ensure_schema(store: Store) -> None:
    with store._tx() as conn:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)


def tables_exist(store: Store) -> bool:
    with store._lock:
        return store._conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'ipv6'").fetchone() is not None


def _rows(store: Store, sql: str, args: Sequence[object] = ()) -> list[Any]:
    with store._lock:
        return list(store._conn.execute(sql, args).fetchall())


def pairs(store: Store) -> dict[str, str]:
    """IPv4 -> its IPv6, for every paired address (empty on a store without the tables)."""
    if not tables_exist(store):
        return {}
    return {str(r[0]): str(r[1]) for r in _rows(store, "SELECT ip4, ip6 FROM ipv6 WHERE ip4 IS NOT NULL")}


def addresses(store: Store) -> dict[str, set[str]]:
    """ENI -> its IPv6 addresses in the store."""
    if not tables_exist(store):
        return {}
    found: dict[str, set[str]] = {}
    for r in _rows(store, "SELECT eni_id, ip6 FROM ipv6"):
        found.setdefault(str(r[0]), set()).add(str(r[1]))
    return found


class DualStack:
    """The IPv6 half of the pool of a dual-stack node."""

    def __init__(
        self,
        cloud: EniCloud,
        store: Store,
        ledger: Ledger,
        vswitch_cidrs: Mapping[str, str],
        decision: StackDecision,
        refused: Mapping[str, str],
    ) -> None:
        if not hasattr(cloud, "assign_ipv6_addresses") or not hasattr(cloud, "unassign_ipv6_addresses"):
            raise TypeError("the cloud client has no IPv6 calls")
        self.cloud = cloud
        self.v6cloud: Ipv6EniApi = cloud  # type: ignore[assignment]
        self.store = store
        self.ledger = ledger
        self.vswitch_cidrs = dict(vswitch_cidrs)
        self.decision = decision
        self.refused = dict(refused)
        self.last_error = ""
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        ensure_schema(store)

    def _lock(self, eni_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(eni_id, threading.Lock())

    # --- reads ---------------------------------------------------------------------------------------

    def gateway6(self, eni_id: str) -> str | None:
        rows = _rows(self.store, "SELECT gateway FROM eni_ipv6 WHERE eni_id = ?", (eni_id,))
        return str(rows[0][0]) if rows else None

    def pair_of(self, ip4: str) -> str | None:
        rows = _rows(self.store, "SELECT ip6 FROM ipv6 WHERE ip4 = ?", (ip4,))
        return str(rows[0][0]) if rows else None

    def with_ipv6(self, spec: PodNetwork, ip4: str, eni_id: str) -> PodNetwork:
        """The spec with the pod's IPv6 when it has one (veth mode only)."""
        if spec.mode is not DatapathMode.VETH:
            return spec
        ip6, gateway = self.pair_of(ip4), self.gateway6(eni_id)
        if ip6 is None or gateway is None:
            return spec
        return dataclasses.replace(spec, pod_ip6=ipaddress.IPv6Address(ip6), gateway6=ipaddress.IPv6Address(gateway))

    def status(self) -> dict[str, object]:
        counts = _rows(self.store, "SELECT COUNT(*), COUNT(ip4) FROM ipv6")[0]
        return {**self.decision.as_dict(), "ipv6": int(counts[0]), "ipv6_paired": int(counts[1]),
                "refused_vswitches": dict(self.refused), "last_error": self.last_error}

    # --- the ENI's IPv6 ------------------------------------------------------------------------------

    def register(self, eni_id: str, vswitch_id: str) -> bool:
        """Record the ENI's IPv6 /64 and gateway; False when its vSwitch has none."""
        cidr = self.vswitch_cidrs.get(vswitch_id)
        if cidr is None:
            return False
        with self.store._tx() as conn:
            conn.execute("INSERT OR IGNORE INTO eni_ipv6 VALUES (?, ?, ?)", (eni_id, cidr, gateway_of(cidr)))
        return True

    def _deficit(self, eni_id: str) -> int:
        row = _rows(self.store,
                    "SELECT (SELECT COUNT(*) FROM ips WHERE eni_id = ?), (SELECT COUNT(*) FROM ipv6 WHERE eni_id = ?)",
                    (eni_id, eni_id))[0]
        return max(0, int(row[0]) - int(row[1]))

    def fill(self, eni_id: str, vswitch_id: str, extra: int = 0) -> None:
        """Give the ENI as many IPv6 as pod IPv4 addresses (+ `extra`), 10 per call; then pair."""
        if not self.register(eni_id, vswitch_id):
            raise Ipv6Unavailable(self.refused.get(vswitch_id) or f"vSwitch {vswitch_id} has no IPv6 CIDR block")
        with self._lock(eni_id):
            need = self._deficit(eni_id) + extra
            while need > 0:
                batch = min(need, MAX_PER_CALL)
                try:
                    self.assign(eni_id, batch)
                except Exception as exc:
                    self.last_error = f"{error_code(exc) or type(exc).__name__}: {exc}"
                    raise
                need -= batch
            self._pair(eni_id)

    def after_assign(self, eni_id: str, vswitch_id: str) -> None:
        """The pool worker's hook after IPv4 addresses joined an ENI (before they are handed out)."""
        try:
            self.fill(eni_id, vswitch_id)
        except Exception as exc:  # noqa: BLE001 - the ADD that needs one asks again and reports it
            log.warning("IPv6 for ENI %s: %s", eni_id, exc)

    def _pair(self, eni_id: str) -> None:
        with self.store._tx() as conn:
            free6 = [r[0] for r in conn.execute("SELECT ip6 FROM ipv6 WHERE eni_id = ? AND ip4 IS NULL ORDER BY ip6",
                                                (eni_id,))]
            lone4 = [r[0] for r in conn.execute(
                "SELECT ip FROM ips WHERE eni_id = ? AND ip NOT IN (SELECT ip4 FROM ipv6 WHERE ip4 IS NOT NULL)"
                " ORDER BY ip", (eni_id,))]
            conn.executemany("UPDATE ipv6 SET ip4 = ? WHERE ip6 = ?", list(zip(lone4, free6, strict=False)))

    def take(self, eni_id: str, vswitch_id: str, ip4: str) -> str:
        """The pod IPv6 that goes with `ip4` (paired now, asked for when the ENI has none free)."""
        found = self.pair_of(ip4)
        if found is not None:
            return found
        self.fill(eni_id, vswitch_id)
        found = self.pair_of(ip4)
        if found is None:
            raise Ipv6Unavailable(f"no IPv6 address for {ip4} on ENI {eni_id}: {self.last_error or 'none assigned'}")
        return found

    # --- intent-logged calls ---------------------------------------------------------------------------

    def assign(self, eni_id: str, count: int) -> list[str]:
        """AssignIpv6Addresses of `count` (<= 10) on `eni_id`, behind an intent; the new addresses
        are in the store (unpaired) with the intent's resolution."""
        token = self.ledger.new_token()
        intent = self.store.begin_intent("AssignIpv6Addresses", {"count": count}, eni_id=eni_id, client_token=token)
        known = {str(r[0]) for r in _rows(self.store, "SELECT ip6 FROM ipv6 WHERE eni_id = ?", (eni_id,))}

        def call() -> list[str]:
            return self.v6cloud.assign_ipv6_addresses(eni_id, count=count, client_token=token)

        try:
            got = [normal(a) for a in self.ledger._with_token(intent, "AssignIpv6Addresses", call)]
        except Unresolved:
            ni = self.ledger.describe(eni_id)
            if ni is None:
                self.store.end_intent(intent)
                raise
            got = sorted({normal(a) for a in ni.ipv6_addresses} - known)
            log.warning("AssignIpv6Addresses on %s: no reply; the cloud shows %d new IPv6 address(es), adopted",
                        eni_id, len(got))
        with self.store._tx() as conn:
            conn.executemany("INSERT OR IGNORE INTO ipv6 (ip6, eni_id) VALUES (?, ?)", [(a, eni_id) for a in got])
            conn.execute("DELETE FROM intents WHERE id = ?", (intent,))
        return got

    def unassign(self, eni_id: str, ips6: Sequence[str]) -> list[str]:
        """UnassignIpv6Addresses (<= 10), behind an intent; the addresses the cloud no longer holds
        leave the store with its resolution. InvalidIp.IpUnassigned or a lost reply: the cloud is read."""
        intent = self.store.begin_intent("UnassignIpv6Addresses", {"ips": list(ips6)}, eni_id=eni_id)
        wanted = list(ips6)
        error: Exception | None = None
        for _attempt in range(RESOLVE_ATTEMPTS):
            try:
                self.v6cloud.unassign_ipv6_addresses(eni_id, wanted)
                wanted = []
                break
            except Exception as exc:  # noqa: BLE001 - classified below
                if error_code(exc) != IP_UNASSIGNED and not ambiguous(exc):
                    error = exc
                    break
                error = exc
            ni = self.ledger.describe(eni_id)
            held = {normal(a) for a in ni.ipv6_addresses} if ni is not None else set()
            wanted = [a for a in ips6 if normal(a) in held]
            if not wanted:
                break
        gone = [a for a in ips6 if a not in wanted]
        with self.store._tx() as conn:
            conn.executemany("DELETE FROM ipv6 WHERE ip6 = ?", [(normal(a),) for a in gone])
            conn.execute("DELETE FROM intents WHERE id = ?", (intent,))
        if wanted and error is not None:
            raise error
        return gone

    # --- reconciliation ---------------------------------------------------------------------------------

    def sync(self, enis: Iterable[tuple[str, str]], describe: Callable[[str], NetworkInterface | None]) -> dict[str, int]:
        """For each (ENI, vSwitch) of the pool: adopt the IPv6 addresses the cloud shows, drop those it
        does not (a paired one stays for its pod's DEL only when that pod still runs: it is dropped
        and logged), top up and pair. Returns what changed."""
        summary = {"adopted_ipv6": 0, "dropped_ipv6": 0}
        for eni_id, vswitch_id in enis:
            if not self.register(eni_id, vswitch_id):
                continue
            ni = describe(eni_id)
            if ni is None:
                continue
            cloud = {normal(a) for a in ni.ipv6_addresses}
            with self._lock(eni_id), self.store._tx() as conn:
                have = {str(r[0]) for r in conn.execute("SELECT ip6 FROM ipv6 WHERE eni_id = ?", (eni_id,))}
                for a in sorted(cloud - have):
                    conn.execute("INSERT OR IGNORE INTO ipv6 (ip6, eni_id) VALUES (?, ?)", (a, eni_id))
                for a in sorted(have - cloud):
                    conn.execute("DELETE FROM ipv6 WHERE ip6 = ?", (a,))
                summary["adopted_ipv6"] += len(cloud - have)
                summary["dropped_ipv6"] += len(have - cloud)
            try:
                self.fill(eni_id, vswitch_id)
            except Exception as exc:  # noqa: BLE001 - reported in status; the next pass retries
                log.warning("IPv6 top-up of ENI %s failed: %s", eni_id, exc)
        if any(summary.values()):
            log.warning("IPv6 resync: %s", ", ".join(f"{k}={v}" for k, v in summary.items() if v))
        return summary


def start_dual(daemon: Any, ip_limit: int) -> tuple[StackDecision, DualStack | None, dict[str, Any]]:
    """At start of a daemon whose eni_conf says ip_stack dual: decide (eligibility), log and record
    the decision, refuse the pod vSwitches without an IPv6 CIDR. Returns the decision, the
    DualStack (None when the node runs IPv4 only) and the vSwitches the pool may create ENIs on."""
    config = daemon.config
    type_name = config.identity.instance_type
    if not type_name:
        found = daemon.cloud.describe_instances(instance_ids=[config.identity.instance_id])
        type_name = found[0].instance_type if found else ""
    ips4, ips6 = ipv6_quota(daemon.cloud, type_name)
    choice = daemon.datapath_choice
    decision = decide(config.ip_stack, instance_type=type_name, ipv4_per_eni=ips4 or ip_limit, ipv6_per_eni=ips6,
                      eniip=config.mode.value == "eniip", veth=choice is None or choice.mode == "veth")
    pool_vswitches: dict[str, Any] = daemon._vswitches
    dual: DualStack | None = None
    if decision.dual:
        wanted = config.pool.vswitches_for(config.identity.zone_id, config.identity.vswitch_id)
        usable, refused = refuse_vswitches(daemon.cloud, wanted)
        for reason in refused.values():
            log.error("%s", reason)
        pool_vswitches = {k: v for k, v in daemon._vswitches.items() if k not in refused}
        ledger = Ledger(daemon.cloud, daemon.store, config.identity.instance_id)
        dual = DualStack(daemon.cloud, daemon.store, ledger, usable, decision, refused)
        log.info("ip_stack dual: running dual stack (%s)", decision.reason)
    else:
        log.warning("ip_stack dual asked for, running IPv4 only: %s", decision.reason)
    daemon.store.set_meta(STATUS_KEY, json.dumps(decision.as_dict()))
    return decision, dual, pool_vswitches


class Ipv6Unavailable(Exception):
    """A dual-stack pod cannot get its IPv6 address now."""


def audit(
    store_path: Any, node_ns: str, cloud_enis: Mapping[str, NetworkInterface], allocated: Iterable[str],
    busy: Iterable[str],
) -> list[tuple[str, str, str]]:
    """`ipam check` of the IPv6 half (a dual-stack node's store only): (kind, subject, detail) for an
    IPv6 address in the store but not on its ENI in the cloud or the other way round (ENIs with a call
    under way are skipped), an allocation whose IPv6 lacks its 512/2048 rules or host route, and IPv6
    rules no allocation explains."""
    from terwayctl.kernel import netns
    from terwayctl.kernel.datapath import v6
    from terwayctl.kernel.datapath.conn import NodeConn
    from terwayctl.kernel.datapath.model import FROM_POD_PRIORITY, TO_POD_PRIORITY

    with Store(store_path, readonly=True) as store:
        if not tables_exist(store):
            return []
        held = addresses(store)
        paired = pairs(store)
    skip = set(busy)
    found: list[tuple[str, str, str]] = []
    for eni_id, ni in sorted(cloud_enis.items()):
        if eni_id in skip or (eni_id not in held and not ni.ipv6_addresses):
            continue
        cloud = {normal(a) for a in ni.ipv6_addresses}
        mine = held.get(eni_id, set())
        found += [("ipv6-not-in-cloud", a, f"the store lists it on {eni_id}") for a in sorted(mine - cloud)]
        found += [("ipv6-not-in-store", a, f"assigned to {eni_id} but unknown to the daemon")
                  for a in sorted(cloud - mine)]
    if not netns.exists(node_ns):
        return found
    wanted = {paired[ip4]: ip4 for ip4 in allocated if ip4 in paired}
    with NodeConn(node_ns) as conn:
        rules, routes = v6.rules6(conn), v6.routes6(conn)
    from_rules = {a for r in rules if r.u32(v6.FRA_PRIORITY) == FROM_POD_PRIORITY
                  and (a := v6.ip6(r, v6.FRA_SRC)) is not None}
    to_rules = {a for r in rules if r.u32(v6.FRA_PRIORITY) == TO_POD_PRIORITY and (a := v6.ip6(r, v6.FRA_DST)) is not None}
    for ip6, ip4 in sorted(wanted.items()):
        if ip6 not in from_rules or ip6 not in to_rules:
            found.append(("allocation-without-rules", ip6, f"the IPv6 of {ip4}: the 512/2048 ip -6 rules are missing"))
        if v6.pod_route_device6(routes, ipaddress.IPv6Address(ip6)) is None:
            found.append(("allocation-without-veth", ip6, f"the IPv6 of {ip4}: no host veth routes it"))
    for ip6 in sorted((from_rules | to_rules) - set(wanted)):
        found.append(("kernel-leftover", ip6, "ip -6 rules: no allocation holds this IPv6 address"))
    return found


def add_to_result(result: dict[str, object], ip6: str) -> dict[str, object]:
    """ADD's result with the pod's IPv6 next to its IPv4 (same interface) and the IPv6 default route."""
    ips = list(result.get("ips", []))  # type: ignore[call-overload]
    interface = ips[0].get("interface") if ips and isinstance(ips[0], dict) else None
    entry: dict[str, object] = {"address": f"{ip6}/128", "gateway": POD_GATEWAY6}
    if interface is not None:
        entry = {"interface": interface, **entry}
    routes = list(result.get("routes", []))  # type: ignore[call-overload]
    return {**result, "ips": [*ips, entry], "routes": [*routes, {"dst": "::/0", "gw": POD_GATEWAY6}]}
