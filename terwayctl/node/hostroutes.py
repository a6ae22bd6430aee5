"""What an exclusive-ENI pod reaches through its veth to the node (docs/datapath.md, "Services from
exclusive-ENI pods"): eni_conf `service_cidr` and the node's own IP (the primary ENI's primary IP).

Without a service CIDR no such veth is built (the pod then reaches services only if something
else routes them) and the daemon says so once at start.
"""

from __future__ import annotations

import ipaddress
import logging
from ipaddress import IPv4Address, IPv4Network

from terwayctl.core.errors import InvalidInput
from terwayctl.node.cloudapi import EniCloud

log = logging.getLogger("terwayctl.node")

META_KEY = "exclusive_host_routes"
"""store meta: the CIDRs routed through exclusive-ENI pods' veths, comma-separated ('' : none);
`ipam check` reads it to know whether such pods must have a veth"""


def service_cidrs(value: object, origin: str = "eni_conf") -> tuple[str, ...]:
    """eni_conf `service_cidr`: one CIDR or a comma-separated list; the IPv4 ones, normalised."""
    if value in (None, ""):
        return ()
    if not isinstance(value, str):
        raise InvalidInput(f"{origin}: service_cidr must be a CIDR such as 10.96.0.0/12, got {value!r}")
    found: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            network = ipaddress.ip_network(part, strict=False)
        except ValueError as exc:
            raise InvalidInput(f"{origin}: service_cidr {part!r} is not a CIDR: {exc}",
                               hint="e.g. 10.96.0.0/12 (the cluster's --service-cluster-ip-range)") from None
        if isinstance(network, IPv4Network):
            found.append(str(network))
    return tuple(found)


def node_ip(cloud: EniCloud, instance_id: str) -> str | None:
    """The primary IP of the instance's primary ENI, or None when the cloud lists none."""
    for ni in cloud.describe_network_interfaces(instance_id=instance_id):
        if ni.type == "Primary" and ni.primary_ip:
            return str(ni.primary_ip)
    return None


def exclusive_host_routes(
    cloud: EniCloud, instance_id: str, cidrs: tuple[str, ...]
) -> tuple[tuple[IPv4Network, ...], IPv4Address | None]:
    """The service CIDRs and the node's IP /32, and the node's IP (the source of the node's routes
    to its pods); ((), None) without a service CIDR (logged)."""
    if not cidrs:
        log.warning("eni_conf has no service_cidr: exclusive-ENI pods get no veth to the node and reach "
                    "services only if the VPC routes them")
        return (), None
    routes = [IPv4Network(c) for c in cidrs]
    ip = node_ip(cloud, instance_id)
    if ip is None:
        log.warning("no primary ENI found for %s: exclusive-ENI pods reach the node through the VPC", instance_id)
    else:
        routes.append(IPv4Network(f"{ip}/32"))
    log.info("exclusive-ENI pods reach %s through a veth to the node", ", ".join(map(str, routes)))
    return tuple(routes), (IPv4Address(ip) if ip is not None else None)
