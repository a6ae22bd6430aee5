"""A VPC on one machine: the emulator's ENIs as real interfaces between a "VPC router" namespace
and node namespaces (docs/node.md, "The emulator's datapath").

`VpcRouter` is an `EniHook` for `terwayctl.emulator.Emulator(hook=...)`. It maps instance ids to
node namespaces and, for each ENI the emulator attaches to an instance:

- creates a veth pair: the router end ``vr`` + the last 12 characters of the ENI id in the router
  namespace, the node end ``eni`` + the same 12 characters in the node namespace (a Linux ifname has
  at most 15 bytes). The node end carries the ENI's MAC and is left DOWN, as a hot-plugged NIC is:
  the daemon finds it by MAC (never by name), brings it up and gives it its route table;
- puts the vSwitch gateway on the router end as a /32 (the same gateway address may sit on many
  router ends: one per ENI of that vSwitch), so the node's ``default via <gateway> onlink`` resolves;
- installs ``<ip>/32 dev vr...`` plus a permanent neighbour ``<ip> lladdr <ENI MAC>`` in the router
  namespace for every private IP of the ENI (primary and secondary), which is how the VPC delivers a
  pod's address to the ENI that holds it, across nodes.

Secondary IPs are assigned after the attach: the emulator calls `on_ips_changed` after every
Assign/UnassignPrivateIpAddresses of an attached ENI, and the per-IP routes follow (`sync` does the
same for a list of ENIs, e.g. to repair after a restart).
On detach the router end is deleted, which removes the node end, the routes and the neighbours.

The vSwitches' route tables: a vSwitch whose route table (its custom table, else the VPC's system
table) has no 0.0.0.0/0 route to a NAT gateway reaches no internet; `apply_route_tables` drops its
sources on the way out (``route_table_ruleset``), whatever the SNAT entries say.

`VpcRouter` satisfies the emulator's `EniHook` Protocol (terwayctl/emulator/hooks.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from terwayctl.emulator.hooks import EniInfo
from terwayctl.kernel import netns
from terwayctl.kernel.netlink import NUD_PERMANENT, RT_SCOPE_LINK, RT_TABLE_MAIN, Netlink, is_absent
from terwayctl.kernel.netns import Namespace
from terwayctl.lab import naming, vpcsim6

log = logging.getLogger("terwayctl.lab.vpcsim")

NODE_PREFIX = "eni"
ROUTER_PREFIX = "vr"
SUFFIX_CHARS = 12


@dataclass(frozen=True)
class EniAddresses:
    """One ENI's current private IPs, for `VpcRouter.sync`."""

    eni_id: str
    private_ips: tuple[str, ...]


def node_ifname(eni_id: str) -> str:
    """The node-side name of an emulated ENI: ``eni`` + the id's last 12 characters."""
    return NODE_PREFIX + eni_id[-SUFFIX_CHARS:]


def router_ifname(eni_id: str) -> str:
    return ROUTER_PREFIX + eni_id[-SUFFIX_CHARS:]


def prepare_router(router_ns: Namespace) -> None:
    """Make `router_ns` the VPC's router: lo up, forwarding on, reverse-path filtering off, and proxy
    ARP, because the VPC answers ARP for every address of a vSwitch (an exclusive-ENI pod has the
    vSwitch's prefix on its eth0 and ARPs for its neighbours there)."""
    with netns.iproute(router_ns) as nl:
        lo = nl.link_lookup(ifname="lo")
        if lo:
            nl.link("set", index=lo[0], state="up")
    netns.write_sysctls(
        router_ns,
        [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
            ("net.ipv4.conf.all.proxy_arp", "1"),
        ],
    )


@dataclass(frozen=True)
class Unrouted:
    """A vSwitch whose route table sends 0.0.0.0/0 to no NAT gateway: its pods reach no internet."""

    vswitch_id: str
    cidr: str
    route_table_id: str


def route_table_ruleset(table: str, wan: str, unrouted: Sequence[Unrouted]) -> str:
    """The router's table for the route tables, replaced atomically: packets to the internet from a
    vSwitch without a default route to the NAT gateway are dropped (a separate table: a drop in any
    forward chain wins over the NAT gateway's accepts)."""
    drops = "".join(f'    oifname "{wan}" ip saddr {u.cidr} counter drop comment "{u.vswitch_id}: route table '
                    f'{u.route_table_id} has no 0.0.0.0/0 route to a NAT gateway"\n' for u in unrouted)
    return (f"table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n"
            f"  chain forward {{\n    type filter hook forward priority filter; policy accept;\n{drops}  }}\n}}\n")


def apply_route_tables(router_ns: Namespace, lab_name: str, unrouted: Sequence[Unrouted]) -> None:
    """Make the router's route-table drops match `unrouted` (inside the lab's router namespace only)."""
    if not str(router_ns).startswith(naming.NS_PREFIX):
        raise ValueError(f"refusing to run nft outside a lab namespace: {router_ns!r}")
    script = route_table_ruleset(f"{naming.nft_table(lab_name)}_routes", naming.wan_link(lab_name), unrouted)
    done = subprocess.run(["ip", "netns", "exec", str(router_ns), "nft", "-f", "-"], input=script,
                          capture_output=True, text=True, timeout=20, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"nft in {router_ns} failed: {done.stderr.strip()}")


class VpcRouter:
    """The emulator's datapath: an EniHook that wires attached ENIs into namespaces."""

    def __init__(self, router_ns: Namespace, nodes: Mapping[str, Namespace] | None = None) -> None:
        self.router_ns = router_ns
        self._nodes: dict[str, Namespace] = dict(nodes or {})
        self._lock = threading.Lock()
        self._enis: dict[str, str] = {}  # eni id -> MAC, for ENIs wired here
        self._internet6: dict[str, set[str]] = {}  # eni id -> its IPv6 addresses with internet bandwidth

    def add_node(self, instance_id: str, node_ns: Namespace) -> None:
        with self._lock:
            self._nodes[instance_id] = node_ns

    # --- EniHook ---------------------------------------------------------------------------------

    def on_attach(self, instance_id: str, eni: EniInfo) -> None:
        node = self._nodes.get(instance_id)
        if node is None:
            log.info("ENI %s attached to %s, which has no node namespace here; ignored", eni.eni_id, instance_id)
            return
        with self._lock:
            self._wire(node, eni)
            if eni.ipv6_cidr:  # a hot-plugged NIC of a dual-stack vSwitch: no DAD delay on its link-local
                netns.write_sysctls(node, [(f"net/ipv6/conf/{node_ifname(eni.eni_id)}/accept_dad", "0")])
            self._enis[eni.eni_id] = eni.mac
            self._set_routes(eni.eni_id, eni.mac, (eni.primary_ip, *eni.private_ips))
            self._set_ipv6(eni)
        log.info("ENI %s (%s) wired into %s as %s", eni.eni_id, eni.mac, node, node_ifname(eni.eni_id))

    def on_detach(self, instance_id: str, eni: EniInfo) -> None:
        with self._lock:
            self._enis.pop(eni.eni_id, None)
            if self._internet6.get(eni.eni_id):
                vpcsim6.set_internet(self.router_ns, (), self._internet6.pop(eni.eni_id))
            with netns.iproute(self.router_ns) as nl:
                found = nl.link_lookup(ifname=router_ifname(eni.eni_id))
                if found:
                    with contextlib.suppress(Exception):
                        nl.link("del", index=found[0])
        log.info("ENI %s unwired (detached from %s)", eni.eni_id, instance_id)

    def on_ips_changed(self, instance_id: str, eni: EniInfo) -> None:
        """Route the ENI's current addresses, after the emulator assigned or unassigned some."""
        self.sync([EniAddresses(eni.eni_id, (eni.primary_ip, *eni.private_ips))])
        if eni.ipv6_cidr:
            with self._lock:
                if eni.eni_id in self._enis:
                    self._set_ipv6(eni)

    def _set_ipv6(self, eni: EniInfo) -> None:
        """The ENI's IPv6: the gateway on the router end, a /128 per address, the internet rules."""
        if not eni.ipv6_cidr:
            return
        with netns.iproute(self.router_ns) as nl:
            found = nl.link_lookup(ifname=router_ifname(eni.eni_id))
            if not found:
                return
            index = int(found[0])
            vpcsim6.wire(nl, self.router_ns, router_ifname(eni.eni_id), index, eni)
            vpcsim6.set_routes(nl, index, self._enis.get(eni.eni_id, eni.mac), eni.ipv6_ips)
        before = self._internet6.get(eni.eni_id, set())
        vpcsim6.set_internet(self.router_ns, eni.ipv6_internet, before | set(eni.ipv6_ips))
        self._internet6[eni.eni_id] = set(eni.ipv6_internet)

    # --- IP changes --------------------------------------------------------------------------------

    def sync(self, enis: Iterable[EniAddresses]) -> None:
        """Make the router's /32 routes of each wired ENI match its current private IPs."""
        with self._lock:
            for item in enis:
                mac = self._enis.get(item.eni_id)
                if mac is not None:
                    self._set_routes(item.eni_id, mac, item.private_ips)

    def routes(self) -> dict[str, set[str]]:
        """ENI id -> the IPs the router sends to it (for tests and status)."""
        with self._lock, netns.iproute(self.router_ns) as nl:
            return {eni_id: _routed(nl, eni_id) for eni_id in self._enis}

    # --- netlink ---------------------------------------------------------------------------------

    def _wire(self, node: Namespace, eni: EniInfo) -> None:
        rname, nname = router_ifname(eni.eni_id), node_ifname(eni.eni_id)
        with netns.iproute(self.router_ns) as nl:
            if not nl.link_lookup(ifname=rname):
                peer = {"ifname": nname, "address": eni.mac, "net_ns_fd": str(netns.path_of(node))}
                nl.link("add", ifname=rname, kind="veth", peer=peer)
            index = nl.link_lookup(ifname=rname)[0]
            try:
                nl.addr("add", index=index, address=eni.gateway, prefixlen=32)
            except Exception as exc:
                if "exists" not in str(exc).lower():
                    raise
            nl.link("set", index=index, state="up")
        netns.write_sysctl(self.router_ns, f"net/ipv4/conf/{rname}/rp_filter", "0")

    def _set_routes(self, eni_id: str, mac: str, ips: Iterable[str]) -> None:
        wanted = {str(ipaddress.IPv4Address(ip)) for ip in ips if ip}
        with netns.iproute(self.router_ns) as nl:
            found = nl.link_lookup(ifname=router_ifname(eni_id))
            if not found:
                return
            index = int(found[0])
            current = _routed(nl, eni_id)
            for ip in sorted(wanted - current):
                nl.neigh("replace", dst=ip, lladdr=mac, ifindex=index, state=NUD_PERMANENT)
                nl.route("replace", dst=f"{ip}/32", oif=index, scope=RT_SCOPE_LINK, table=RT_TABLE_MAIN)
            for ip in sorted(current - wanted):
                _absent_ok(nl.route, "del", dst=f"{ip}/32", oif=index, table=RT_TABLE_MAIN)
                _absent_ok(nl.neigh, "del", dst=ip, ifindex=index)


def _absent_ok(call: Callable[..., object], *args: object, **kwargs: object) -> None:
    try:
        call(*args, **kwargs)
    except Exception as exc:
        if not is_absent(exc):
            raise


def _routed(nl: Netlink, eni_id: str) -> set[str]:
    found = nl.link_lookup(ifname=router_ifname(eni_id))
    if not found:
        return set()
    index = int(found[0])
    return {
        str(m.get_attr("RTA_DST"))
        for m in nl.route("dump", family=2)
        if m.get_attr("RTA_TABLE") == RT_TABLE_MAIN and m["dst_len"] == 32 and m.get_attr("RTA_OIF") == index
    }
