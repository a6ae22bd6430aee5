"""The lab's namespaces and links: the VPC router, the "internet", the nodes' base set-up, and the
router's NAT gateway in nftables. Everything happens inside the lab's own namespaces (netlink
through `terwayctl.kernel.netns`, nft through ``ip netns exec``); the root namespace is never changed.

    internet (twlab-<n>-inet)  203.0.113.10, .20, .254 on <n>-eth0
        |  203.0.113.0/24
    router (twlab-<n>-router)  <n>-wan: 203.0.113.1 (the NAT gateway's EIP)
        |  vr<eni>: vSwitch gateway /32, <ip>/32 routes per ENI address (terwayctl.lab.vpcsim)
    node (twlab-<n>-nodeN)     eth0: primary ENI, eni<id>: pod ENIs, cali<hash>: pods
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from terwayctl.core.errors import TerwayctlError
from terwayctl.kernel import netns
from terwayctl.lab import naming
from terwayctl.lab.model import INTERNET_CIDR, INTERNET_GATEWAY, INTERNET_HOSTS, METADATA_HOST, Topology
from terwayctl.lab.vpcsim import node_ifname, prepare_router

NODE_IFNAME = "eth0"


class LabNetworkError(TerwayctlError):
    """A namespace, link or nftables step of the lab failed."""


@dataclass(frozen=True)
class SnatRule:
    source_cidr: str
    snat_ip: str


# --- namespaces -------------------------------------------------------------------------------


def create_namespaces(names: Iterable[str]) -> None:
    for name in names:
        netns.create(name)


def lab_namespaces(name: str) -> list[str]:
    """Every namespace of the lab, found by prefix (also after a crash)."""
    return netns.list_named(naming.ns_prefix(name))


def delete_namespaces(names: Iterable[str]) -> list[str]:
    return [name for name in names if netns.delete(name)]


def namespace_pids(name: str) -> list[int]:
    """Processes living in a namespace (``ip netns pids``)."""
    done = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=10, check=False)
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def _lo_up(ns: str) -> None:
    with netns.iproute(ns) as nl:
        nl.link("set", index=nl.link_lookup(ifname="lo")[0], state="up")


# --- router and internet -----------------------------------------------------------------------


def setup_router(topology: Topology) -> None:
    """Router sysctls (`prepare_router`: forwarding, proxy ARP as the VPC's virtual router answers for
    the addresses of a vSwitch), and the wan link to the internet namespace with the NAT gateway's EIP.
    The VPC's source check is in nftables, `router_ruleset`: rp_filter would also drop the nodes' ARP
    requests for the gateway, which carry the node's eth0 address on a pod ENI.
    """
    router, inet = topology.router_ns, topology.internet_ns
    prepare_router(router)
    _lo_up(inet)
    wan, peer = naming.wan_link(topology.name), naming.inet_link(topology.name)
    prefix = ipaddress.IPv4Network(INTERNET_CIDR).prefixlen
    with netns.iproute(router) as nl:
        if not nl.link_lookup(ifname=wan):
            nl.link("add", ifname=wan, kind="veth", peer={"ifname": peer, "net_ns_fd": str(netns.path_of(inet))})
        index = nl.link_lookup(ifname=wan)[0]
        nl.addr("replace", index=index, address=topology.nat_eip, prefixlen=prefix)
        nl.link("set", index=index, state="up")
    with netns.iproute(inet) as nl:
        index = nl.link_lookup(ifname=peer)[0]
        for host in (*INTERNET_HOSTS, INTERNET_GATEWAY):
            nl.addr("replace", index=index, address=host, prefixlen=prefix)
        nl.link("set", index=index, state="up")


def setup_node(ns: str) -> None:
    """A fresh node namespace: lo up, forwarding on, reverse-path filtering off (as Terway wants)."""
    _lo_up(ns)
    for key, value in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"),
                       ("net.ipv4.conf.default.rp_filter", "0")):
        netns.write_sysctl(ns, key, value)


def add_metadata_address(ns: str) -> None:
    """100.100.100.200/32 on the node's ``lo``: the metadata service's address is local to the node
    namespace (the supervisor serves it there), as on ECS it answers only the instance itself."""
    with netns.iproute(ns) as nl:
        nl.addr("replace", index=nl.link_lookup(ifname="lo")[0], address=METADATA_HOST, prefixlen=32)


def configure_primary(ns: str, eni_id: str, address: str, cidr: str, gateway: str) -> None:
    """The node's primary ENI (wired by vpcsim as ``eni<id>``) becomes ``eth0`` with the node's
    address, and the node's default route goes through the vSwitch gateway."""
    prefix = ipaddress.IPv4Network(cidr).prefixlen
    with netns.iproute(ns) as nl:
        found = nl.link_lookup(ifname=node_ifname(eni_id)) or nl.link_lookup(ifname=NODE_IFNAME)
        if not found:
            raise LabNetworkError(f"the primary ENI {eni_id} did not appear in {ns}")
        index = found[0]
        nl.link("set", index=index, state="down")
        nl.link("set", index=index, ifname=NODE_IFNAME)
        nl.addr("replace", index=index, address=address, prefixlen=prefix)
        nl.link("set", index=index, state="up")
        nl.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index, flags=4)  # RTNH_F_ONLINK


# --- nftables ----------------------------------------------------------------------------------


def nft(ns: str, script: str) -> None:
    """Load an nft script inside `ns` (never in the root namespace)."""
    if not ns.startswith(naming.NS_PREFIX):
        raise LabNetworkError(f"refusing to run nft outside a lab namespace: {ns!r}")
    done = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script, capture_output=True,
                          text=True, timeout=20, check=False)
    if done.returncode != 0:
        raise LabNetworkError(f"nft in {ns} failed: {done.stderr.strip()}", hint="is nftables (nft) installed?")


def nft_list(ns: str, family: str, table: str) -> str:
    """The table's rules as `nft list table` prints them; "" when the table does not exist."""
    done = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "table", family, table], capture_output=True,
                          text=True, timeout=20, check=False)
    return done.stdout if done.returncode == 0 else ""


def router_ruleset(table: str, wan: str, rules: Sequence[SnatRule]) -> str:
    """The router's rules, replacing the table atomically:

    - the VPC's source check: a packet whose source address is not routed back through the ENI
      it arrives on is dropped (a pod's packet leaving through the wrong ENI, e.g. its policy rule
      is gone and it takes the node's eth0);
    - the NAT gateway: sources with an SNAT entry are translated to its SNAT IP on the way to the
      internet; every other source is dropped there (no entry, no internet).
    """
    accepts = "".join(f'    oifname "{wan}" ip saddr {r.source_cidr} accept\n' for r in rules)
    snats = "".join(f'    oifname "{wan}" ip saddr {r.source_cidr} snat to {r.snat_ip}\n' for r in rules)
    return (
        f"table ip {table} {{}}\n"
        f"delete table ip {table}\n"
        f"table ip {table} {{\n"
        f"  chain prerouting {{\n    type filter hook prerouting priority raw; policy accept;\n"
        f'    iifname != "{wan}" fib saddr . iif oif missing counter drop comment "VPC source check"\n  }}\n'
        f"  chain forward {{\n    type filter hook forward priority filter; policy accept;\n"
        f"{accepts}"
        f'    oifname "{wan}" counter drop comment "no SNAT entry for this source"\n  }}\n'
        f"  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n"
        f"{snats}  }}\n"
        f"}}\n"
    )


def apply_router_nat(topology: Topology, rules: Sequence[SnatRule]) -> None:
    nft(topology.router_ns, router_ruleset(naming.nft_table(topology.name), naming.wan_link(topology.name), rules))
