"""Exclusive-ENI mode: the ENI moves into the pod and back."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath import (
    DatapathError,
    DatapathMode,
    PodNetwork,
    setup_pod,
    tc,
    teardown_pod,
)
from tests.fixtures.netns import EXCLUSIVE_ENI, EXCLUSIVE_GATEWAY, World, ping
from tests.test_datapath_veth import ip_json

POD_IP = IPv4Address("192.168.64.5")


def _spec() -> PodNetwork:
    return PodNetwork.for_pod(
        "default",
        "db-0",
        pod_ip=POD_IP,
        prefix=19,
        gateway=EXCLUSIVE_GATEWAY,
        eni_ifname=EXCLUSIVE_ENI,
        mode=DatapathMode.EXCLUSIVE_ENI,
    )


def _links(ns: str) -> set[str]:
    return {str(link["ifname"]) for link in ip_json(ns, "link", "show")}


def test_exclusive_eni_moves_in_and_back(datapath_world: World) -> None:
    w = datapath_world
    pod = w.pod()
    spec = _spec()
    with nsmod.iproute(w.node) as nl:
        mac = nl.link("get", index=nl.link_lookup(ifname=EXCLUSIVE_ENI)[0])[0].get_attr("IFLA_ADDRESS")

    att = setup_pod(w.node, pod, "eth0", spec)
    assert att.mode is DatapathMode.EXCLUSIVE_ENI and att.pod_mac == mac and att.host_ifname is None
    assert EXCLUSIVE_ENI not in _links(w.node)
    assert _links(pod) == {"lo", "eth0"}
    addrs = ip_json(pod, "-4", "addr", "show", "dev", "eth0")[0]["addr_info"]
    assert [(a["local"], a["prefixlen"]) for a in addrs] == [(str(POD_IP), 19)]  # type: ignore[index]
    default = [r for r in ip_json(pod, "-4", "route", "show") if r["dst"] == "default"]
    assert default == [
        {"dst": "default", "gateway": str(EXCLUSIVE_GATEWAY), "dev": "eth0", "protocol": "static", "flags": ["onlink"]}
    ]
    assert ping(pod, EXCLUSIVE_GATEWAY)

    assert setup_pod(w.node, pod, "eth0", spec) == att  # a repeated ADD converges

    teardown_pod(w.node, pod, "eth0", spec)
    assert _links(pod) == {"lo"}
    back = [link for link in ip_json(w.node, "link", "show", EXCLUSIVE_ENI)]
    assert len(back) == 1 and back[0]["address"] == mac and "UP" in back[0]["flags"]  # type: ignore[operator]
    assert ip_json(w.node, "-4", "addr", "show", "dev", EXCLUSIVE_ENI) == []  # moving flushed the pod address
    teardown_pod(w.node, pod, "eth0", spec)  # nothing left to do: still fine


def test_exclusive_eni_failure_moves_it_back(datapath_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = datapath_world
    pod = w.pod()

    def broken(*args: object, **kwargs: object) -> None:
        raise DatapathError("tc broke")

    monkeypatch.setattr(tc, "shape", broken)
    with pytest.raises(DatapathError, match="tc broke"):
        setup_pod(w.node, pod, "eth0", _spec())
    assert EXCLUSIVE_ENI in _links(w.node)
    assert _links(pod) == {"lo"}
