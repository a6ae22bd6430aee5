"""IPv6 in the lab's VPC router (docs/lab.md, "IPv6"): the twin of vpcsim.py's per-ENI routes, and an
IPv6 "internet" reachable only through the VPC's IPv6 gateway, per address with internet bandwidth.

For an ENI on a vSwitch with an IPv6 /64 the router end ``vr...`` gets the vSwitch's IPv6 gateway as
a /128 (no DAD) and, for every IPv6 address of the ENI, ``<addr>/128 dev vr...`` plus a permanent
neighbour ``<addr> lladdr <ENI MAC>``: the VPC routes IPv6 between vSwitches and nodes as it routes
IPv4.

The internet (`connect_internet`): a namespace behind a veth ``igw6`` of the router, the host at
``2001:db8:ffff:ffff::2``. The router reaches it through table `INTERNET_TABLE` only, and only for
sources that the rule ``from <addr> lookup 6000`` (priority 100) names; packets from the internet
pass only to such an address (``iif igw6 to <addr> lookup main`` at 105, ``iif igw6 prohibit`` at
110). A rule exists exactly for the IPv6 addresses the emulator shows with internet bandwidth
(AllocateIpv6InternetBandwidth through the VPC's IPv6 gateway): no bandwidth, no IPv6 internet, as
in Alibaba Cloud.
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
from collections.abc import Iterable

from terwayctl.emulator.hooks import EniInfo
from terwayctl.kernel import netns
from terwayctl.kernel.netlink import (
    NUD_PERMANENT,
    RT_SCOPE_LINK,
    RT_TABLE_MAIN,
    Netlink,
    is_absent,
    is_exists,
)
from terwayctl.kernel.netns import Namespace

AF_INET6 = 10
IFA_F_NODAD = 0x02
INTERNET_LINK = "igw6"
INTERNET_TABLE = 6000
INTERNET_NET = ipaddress.IPv6Network("2001:db8:ffff:ffff::/64")
INTERNET_ROUTER = ipaddress.IPv6Address("2001:db8:ffff:ffff::1")
INTERNET_HOST = ipaddress.IPv6Address("2001:db8:ffff:ffff::2")
ALLOW_PRIORITY, INBOUND_PRIORITY, DENY_PRIORITY = 100, 105, 110


def prepare(router_ns: Namespace) -> None:
    netns.write_sysctls(router_ns, [("net/ipv6/conf/all/forwarding", "1"), ("net/ipv6/conf/default/accept_dad", "0")])


def wire(nl: Netlink, router_ns: Namespace, rname: str, index: int, eni: EniInfo) -> None:
    """The vSwitch's IPv6 gateway on the router end of the ENI."""
    if not eni.ipv6_gateway:
        return
    prepare(router_ns)
    netns.write_sysctls(router_ns, [(f"net/ipv6/conf/{rname}/accept_dad", "0"),
                                    (f"net/ipv6/conf/{rname}/disable_ipv6", "0")])
    try:
        nl.addr("add", index=index, family=AF_INET6, address=eni.ipv6_gateway, prefixlen=128, flags=IFA_F_NODAD)
    except Exception as exc:
        if not is_exists(exc):
            raise


def routed(nl: Netlink, index: int) -> set[str]:
    return {
        ipaddress.IPv6Address(str(m.get_attr("RTA_DST"))).compressed
        for m in nl.route("dump", family=AF_INET6)
        if m.get_attr("RTA_TABLE") == RT_TABLE_MAIN and m["dst_len"] == 128 and m.get_attr("RTA_OIF") == index
        and m.get_attr("RTA_DST") is not None
    }


def set_routes(nl: Netlink, index: int, mac: str, ips6: Iterable[str]) -> None:
    """``<addr>/128 dev vr...`` and a permanent neighbour for each IPv6 address of the ENI."""
    wanted = {ipaddress.IPv6Address(a).compressed for a in ips6}
    current = routed(nl, index)
    for address in sorted(wanted - current):
        nl.neigh("replace", family=AF_INET6, dst=address, lladdr=mac, ifindex=index, state=NUD_PERMANENT)
        nl.route("replace", family=AF_INET6, dst=f"{address}/128", oif=index, scope=RT_SCOPE_LINK,
                 table=RT_TABLE_MAIN)
    for address in sorted(current - wanted):
        _absent_ok(nl, "route", dst=f"{address}/128", oif=index, table=RT_TABLE_MAIN)
        _absent_ok(nl, "neigh", dst=address, ifindex=index)


def _absent_ok(nl: Netlink, what: str, **kwargs: object) -> None:
    try:
        if what == "route":
            nl.route("del", family=AF_INET6, **kwargs)
        else:
            nl.neigh("del", family=AF_INET6, **kwargs)
    except Exception as exc:
        if not is_absent(exc):
            raise


def _ip(ns: Namespace, *args: str) -> None:
    subprocess.run(netns.command(str(ns), ["ip", *args]), check=True, capture_output=True, timeout=10)


def connect_internet(router_ns: Namespace, internet_ns: Namespace) -> ipaddress.IPv6Address:
    """Wire the IPv6 internet (a namespace) behind the router's IPv6 gateway; the host's address."""
    prepare(router_ns)
    netns.write_sysctls(internet_ns, [("net/ipv6/conf/default/accept_dad", "0"), ("net/ipv6/conf/all/accept_dad", "0")])
    with netns.iproute(router_ns) as nl:
        if not nl.link_lookup(ifname=INTERNET_LINK):
            nl.link("add", ifname=INTERNET_LINK, kind="veth",
                    peer={"ifname": "eth0", "net_ns_fd": str(netns.path_of(internet_ns))})
    netns.write_sysctls(router_ns, [(f"net/ipv6/conf/{INTERNET_LINK}/accept_dad", "0")])
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip(router_ns, "-6", "addr", "add", f"{INTERNET_ROUTER}/64", "dev", INTERNET_LINK, "nodad", "noprefixroute")
    _ip(router_ns, "link", "set", INTERNET_LINK, "up")
    _ip(router_ns, "-6", "route", "replace", str(INTERNET_NET), "dev", INTERNET_LINK, "table", str(INTERNET_TABLE))
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip(router_ns, "-6", "rule", "add", "iif", INTERNET_LINK, "prohibit", "pref", str(DENY_PRIORITY))
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip(internet_ns, "-6", "addr", "add", f"{INTERNET_HOST}/64", "dev", "eth0", "nodad")
    _ip(internet_ns, "link", "set", "lo", "up")
    _ip(internet_ns, "link", "set", "eth0", "up")
    _ip(internet_ns, "-6", "route", "replace", "default", "via", str(INTERNET_ROUTER), "dev", "eth0")
    return INTERNET_HOST


def _rules(router_ns: Namespace) -> set[str]:
    out = subprocess.run(netns.command(str(router_ns), ["ip", "-6", "rule", "show", "pref", str(ALLOW_PRIORITY)]),
                         capture_output=True, text=True, timeout=10, check=False).stdout
    found = set()
    for line in out.splitlines():
        parts = line.split()
        if "from" in parts:
            found.add(ipaddress.IPv6Address(parts[parts.index("from") + 1]).compressed)
    return found


def set_internet(router_ns: Namespace, allowed: Iterable[str], managed: Iterable[str]) -> None:
    """Exactly the addresses of `allowed` (among the `managed` ones of an ENI) reach the internet."""
    want = {ipaddress.IPv6Address(a).compressed for a in allowed}
    scope = {ipaddress.IPv6Address(a).compressed for a in managed} | want
    have = _rules(router_ns) & scope
    for address in sorted(want - have):
        _ip(router_ns, "-6", "rule", "add", "from", address, "lookup", str(INTERNET_TABLE), "pref", str(ALLOW_PRIORITY))
        _ip(router_ns, "-6", "rule", "add", "iif", INTERNET_LINK, "to", address, "lookup", "main",
            "pref", str(INBOUND_PRIORITY))
    for address in sorted(have - want):
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip(router_ns, "-6", "rule", "del", "from", address, "pref", str(ALLOW_PRIORITY))
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip(router_ns, "-6", "rule", "del", "iif", INTERNET_LINK, "to", address, "pref", str(INBOUND_PRIORITY))
