"""ENI links in the node namespace: found by MAC, brought up, given their policy route table."""

from __future__ import annotations

import time
from collections.abc import Callable
from ipaddress import IPv4Address

from terwayctl.kernel import netns
from terwayctl.kernel.datapath import DatapathError, ensure_eni_table
from terwayctl.kernel.netns import Namespace


def links_by_mac(node_ns: Namespace) -> dict[str, str]:
    """MAC (lower case) -> link name for every link of the namespace."""
    with netns.iproute(node_ns) as nl:
        return {
            str(m.get_attr("IFLA_ADDRESS")).lower(): str(m.get_attr("IFLA_IFNAME"))
            for m in nl.link("dump")
            if m.get_attr("IFLA_ADDRESS")
        }


def wait_for_link(
    node_ns: Namespace,
    mac: str,
    timeout: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """The name of the link with `mac`, waiting up to `timeout` s for it to appear (hot-plug)."""
    deadline = clock() + timeout
    delay = 0.02
    while True:
        name = links_by_mac(node_ns).get(mac.lower())
        if name is not None:
            return name
        if clock() >= deadline:
            raise DatapathError(
                f"no interface with MAC {mac} appeared in the node namespace within {timeout:g}s",
                hint="the ENI is attached in the cloud but the kernel does not show it; check the instance",
            )
        sleep(delay)
        delay = min(delay * 2, 0.5)


def prepare_eni(node_ns: Namespace, ifname: str, gateway: str, mtu: int) -> int:
    """Bring the ENI up and give it ``default via <gateway> onlink`` in table 1000 + ifindex."""
    with netns.iproute(node_ns) as nl:
        found = nl.link_lookup(ifname=ifname)
        if not found:
            raise DatapathError(f"ENI {ifname} not found in the node namespace {node_ns}")
        index = int(found[0])
        if nl.link("get", index=index)[0].get_attr("IFLA_MTU") != mtu:
            nl.link("set", index=index, mtu=mtu)
        nl.link("set", index=index, state="up")
    return ensure_eni_table(node_ns, ifname, IPv4Address(gateway))
