"""Exclusive-ENI mode (`terwayctl daemon --mode eni`) end to end: one whole ENI per pod, moved into
the pod namespace, and back to the node on DEL (docs/node.md). Root; skipped otherwise."""

from __future__ import annotations

from ipaddress import IPv4Address

from terwayctl.kernel import netns as nsmod
from terwayctl.node.config import PoolMode
from tests.fixtures.netns import ping
from tests.fixtures.node import ENI_CONF, Lab, wait_for

EXCLUSIVE_CONF = {**ENI_CONF, "min_pool_size": 0, "max_pool_size": 5}


def _links(ns: str) -> dict[str, str]:
    """ifname -> MAC of every link in `ns`."""
    with nsmod.iproute(ns) as nl:
        return {str(m.get_attr("IFLA_IFNAME")): str(m.get_attr("IFLA_ADDRESS")) for m in nl.link("dump")}


def test_eni_mode_pod_gets_its_own_eni_pings_across_nodes_and_gives_it_back(vpc_lab: Lab) -> None:
    one, two = vpc_lab.node(0), vpc_lab.node(1)
    daemon = one.start(PoolMode.ENI, EXCLUSIVE_CONF)
    two.start()
    a, b = one.pod("db-0"), two.pod("web-0")
    ra = one.cni("ADD", a)
    assert ra.code == 0, ra.out
    rb = two.cni("ADD", b)
    assert rb.code == 0, rb.out
    # its own ENI, attached to the node's instance, whose primary IP is the pod's IP
    enis = [ni for ni in vpc_lab.clients[0].describe_network_interfaces(instance_id=one.instance_id)
            if ni.type != "Primary"]
    owned = [ni for ni in enis if ni.primary_ip == ra.ip]
    assert len(owned) == 1, enis
    eni = owned[0]
    assert eni.status == "InUse" and eni.instance_id == one.instance_id
    assert list(eni.private_ips) in ([ra.ip], [])  # no secondary IPs in eni mode
    pod_links = _links(a.ns)
    assert sorted(pod_links) == ["eth0", "lo"]
    assert pod_links["eth0"].lower() == eni.mac_address.lower()  # the ENI itself, moved into the pod
    assert eni.mac_address.lower() not in {m.lower() for m in _links(one.ns).values()}
    prefix = int(ra.out["ips"][0]["address"].split("/")[1])
    gateway = IPv4Address(ra.out["ips"][0]["gateway"])
    assert prefix == 19 and gateway == IPv4Address("10.0.63.253")  # the pod vSwitch's, not 169.254.1.1
    assert ping(a.ns, gateway)  # the vSwitch gateway, on the router
    assert wait_for(lambda: rb.ip in set().union(*vpc_lab.vpc.routes().values()), timeout=5)
    assert ping(a.ns, IPv4Address(rb.ip))  # a pod on the other node, through the VPC router
    assert ping(b.ns, IPv4Address(ra.ip))
    assert one.cni("ADD", a).ip == ra.ip  # a repeated ADD converges on the same ENI
    assert one.ipam_check().returncode == 0, one.ipam_check().stdout

    assert one.cni("DEL", a).code == 0
    assert one.cni("DEL", a).code == 0  # idempotent
    assert sorted(_links(a.ns)) == ["lo"]
    assert eni.mac_address.lower() in {m.lower() for m in _links(one.ns).values()}  # back on the node
    assert daemon.store is not None and daemon.store.allocations() == []
    assert daemon.pool is not None and ra.ip in daemon.pool.idle  # the ENI is idle in the pool again
    again = one.pod("db-1")
    rc = one.cni("ADD", again)
    assert rc.code == 0 and rc.ip == ra.ip, rc.out  # the pooled ENI serves the next pod
    assert one.cni("DEL", again).code == 0 and two.cni("DEL", b).code == 0
    check = one.ipam_check()
    assert check.returncode == 0, check.stdout + check.stderr
