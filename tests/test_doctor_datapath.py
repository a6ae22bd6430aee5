"""doctor `node.datapath-mode`: the datapath the daemon reports in its STATUS (unit tests with a fake
node reader; the daemon side of the document is tested in tests/test_daemon_settings.py)."""

from __future__ import annotations

from typing import Any

from terwayctl.doctor import Status
from terwayctl.doctor.readers import DaemonNotAnswering, DaemonStatus
from tests.fixtures.doctor import FakeNode, RunOne

CHECK = "node.datapath-mode"


def _node(mode: str, datapath: dict[str, Any] | None) -> FakeNode:
    detail: dict[str, Any] = {"mode": mode}
    if datapath is not None:
        detail["datapath"] = datapath
    return FakeNode(status=DaemonStatus(True, mode, (), detail))


def test_veth_and_ipvlan_in_use_are_reported(run_one: RunOne) -> None:
    veth = run_one(CHECK, node=_node("eniip", {"mode": "veth", "reason": "eniip_virtual_type is veth (the default)",
                                               "fallback": False}))
    assert veth.status is Status.OK
    assert veth.evidence == ("datapath veth: eniip_virtual_type is veth (the default) (the daemon's STATUS, kernel "
                             "6.1.0-test)",)
    ipvlan = run_one(CHECK, node=_node("eniip", {"mode": "ipvlan", "reason": "eniip_virtual_type is ipvlan and the "
                                                 "kernel supports it", "fallback": False}))
    assert ipvlan.status is Status.OK and ipvlan.evidence[0].startswith("datapath ipvlan: ")


def test_the_veth_fallback_warns_with_its_reason(run_one: RunOne) -> None:
    reason = "eniip_virtual_type is ipvlan, but this kernel (5.4.0) cannot create ipvlan links (no ipvlan module?): " \
             "using veth"
    found = run_one(CHECK, node=_node("eniip", {"mode": "veth", "reason": reason, "fallback": True}))
    assert found.status is Status.WARN
    assert reason in found.evidence[0]
    assert found.fix is not None and "modprobe ipvlan" in found.fix


def test_exclusive_eni_pods_and_their_routes_to_the_node(run_one: RunOne) -> None:
    routes = {"mode": "exclusive-eni", "reason": "eni mode: each pod gets a whole ENI", "fallback": False,
              "exclusive_host_routes": ["10.96.0.0/12", "10.0.0.1/32"]}
    found = run_one(CHECK, node=_node("eni", routes))
    assert found.status is Status.OK
    assert found.evidence[-1] == "exclusive-ENI pods reach 10.96.0.0/12, 10.0.0.1/32 through a veth to the node"
    bare = run_one(CHECK, node=_node("eni", {**routes, "exclusive_host_routes": []}))
    assert bare.status is Status.WARN and "no service_cidr" in bare.evidence[-1]


def test_a_silent_or_older_daemon_is_a_skip(run_one: RunOne) -> None:
    assert run_one(CHECK, node=FakeNode(status=DaemonNotAnswering("refused"))).status is Status.SKIP
    assert run_one(CHECK, node=_node("eniip", None)).status is Status.SKIP
