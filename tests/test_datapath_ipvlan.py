"""ipvlan detection and the logged fallback to veth on kernels without ipvlan."""

from __future__ import annotations

import logging
import secrets
from ipaddress import IPv4Address

import pytest

from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath import DatapathMode, PodNetwork, ipvlan_supported, setup_pod, teardown_pod
from terwayctl.kernel.datapath import ipvlan as ipvlan_module
from terwayctl.kernel.datapath.ipvlan import kernel_version
from tests.fixtures.netns import ENI, GATEWAY, World, ping
from tests.test_datapath_veth import ip_json


def test_kernel_version_parsing() -> None:
    assert kernel_version("6.18.44-fc-v669") == (6, 18)
    assert kernel_version("4.19.0") == (4, 19)
    assert kernel_version("garbage") == (0, 0)


def test_detection_is_cached_and_leaves_no_namespace(netns: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe's scratch namespace is removed. Its name is pinned to one this test owns, so other
    runs' namespaces on the machine never matter."""
    del netns  # for the root skip
    ours = secrets.token_hex(4)
    monkeypatch.setattr(ipvlan_module.secrets, "token_hex", lambda n=None: ours)
    first = ipvlan_supported(refresh=True)
    assert ipvlan_supported() is first
    assert f"twprobe-{ours}" not in nsmod.list_named("twprobe-")


def test_detection_is_false_on_this_kernel(netns: object) -> None:
    del netns
    if ipvlan_supported():
        pytest.skip("this kernel has ipvlan; the fallback cannot be observed here")
    assert ipvlan_supported() is False


def test_ipvlan_falls_back_to_veth_and_says_so(datapath_world: World, caplog: pytest.LogCaptureFixture) -> None:
    if ipvlan_supported():
        pytest.skip("this kernel has ipvlan; see test_ipvlan_mode_where_supported")
    w = datapath_world
    pod = w.pod()
    spec = PodNetwork.for_pod(
        "default", "web", pod_ip="192.168.40.9", prefix=19, gateway=GATEWAY, eni_ifname=ENI, mode=DatapathMode.IPVLAN
    )
    with caplog.at_level(logging.WARNING, logger="terwayctl.kernel.datapath"):
        att = setup_pod(w.node, pod, "eth0", spec)
    assert att.mode is DatapathMode.VETH and att.host_ifname == spec.host_ifname
    assert any("ipvlan is not supported" in r.getMessage() and "falling back to veth" in r.getMessage() for r in caplog.records)
    w.route_pod(spec.pod_ip)
    assert ping(pod, GATEWAY)
    teardown_pod(w.node, pod, "eth0", spec)
    assert {link["ifname"] for link in ip_json(pod, "link", "show")} == {"lo"}


def test_ipvlan_mode_where_supported(datapath_world: World) -> None:
    if not ipvlan_supported():
        pytest.skip("this kernel has no ipvlan (ip link add type ipvlan: Unknown device type)")
    w = datapath_world
    pod = w.pod()
    spec = PodNetwork.for_pod(
        "default", "web", pod_ip="192.168.40.9", prefix=19, gateway=GATEWAY, eni_ifname=ENI, mode=DatapathMode.IPVLAN
    )
    att = setup_pod(w.node, pod, "eth0", spec)
    assert att.mode is DatapathMode.IPVLAN
    assert [a["local"] for a in ip_json(pod, "-4", "addr", "show", "dev", "eth0")[0]["addr_info"]] == ["192.168.40.9"]  # type: ignore[index]
    assert IPv4Address("192.168.40.9") == att.pod_ip
    teardown_pod(w.node, pod, "eth0", spec)
    assert {link["ifname"] for link in ip_json(pod, "link", "show")} == {"lo"}
