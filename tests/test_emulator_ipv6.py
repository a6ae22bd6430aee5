"""The emulator's IPv6 (docs/emulator.md, "IPv6") driven by the real aliyun SDK over HTTP: the VPC's /56
and the vSwitches' /64s, AssignIpv6Addresses / UnassignIpv6Addresses, `Ipv6AddressCount` on
CreateNetworkInterface, `Ipv6Sets`, the per-ENI quota of the catalog, the ClientToken of a lost reply,
the IPv6 gateway and the per-address internet bandwidth; and the typed calls of the cloud layer."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from aliyunsdkecs.request.v20140526.AssignIpv6AddressesRequest import AssignIpv6AddressesRequest
from aliyunsdkecs.request.v20140526.AttachNetworkInterfaceRequest import AttachNetworkInterfaceRequest
from aliyunsdkecs.request.v20140526.CreateNetworkInterfaceRequest import CreateNetworkInterfaceRequest
from aliyunsdkecs.request.v20140526.DescribeNetworkInterfacesRequest import DescribeNetworkInterfacesRequest
from aliyunsdkecs.request.v20140526.UnassignIpv6AddressesRequest import UnassignIpv6AddressesRequest
from aliyunsdkvpc.request.v20160428.AllocateIpv6InternetBandwidthRequest import (
    AllocateIpv6InternetBandwidthRequest,
)
from aliyunsdkvpc.request.v20160428.CreateIpv6GatewayRequest import CreateIpv6GatewayRequest
from aliyunsdkvpc.request.v20160428.CreateVSwitchRequest import CreateVSwitchRequest
from aliyunsdkvpc.request.v20160428.DescribeIpv6AddressesRequest import DescribeIpv6AddressesRequest
from aliyunsdkvpc.request.v20160428.DescribeVpcsRequest import DescribeVpcsRequest
from aliyunsdkvpc.request.v20160428.DescribeVSwitchesRequest import DescribeVSwitchesRequest

from terwayctl.emulator import EniHook
from terwayctl.emulator.hooks import EniInfo
from tests.fixtures.emulator import EmulatorFactory, RunningEmulator, SdkCaller

ZONE = "cn-hangzhou-i"
SCENARIO: dict[str, Any] = {
    "region": "cn-hangzhou",
    "zones": [ZONE],
    "key_pairs": [{"access_key_id": "emulator", "access_key_secret": "emulator"}],
    "vpcs": [{"id": "vpc-v6", "cidr": "10.0.0.0/16", "ipv6": True}],
    "vswitches": [
        {"id": "vsw-v6", "zone": ZONE, "cidr": "10.0.32.0/19", "ipv6_cidr_block": 1},
        {"id": "vsw-v4", "zone": ZONE, "cidr": "10.0.64.0/19"},
        {"id": "vsw-nodes", "zone": ZONE, "cidr": "10.0.0.0/24", "ipv6_cidr_block": 0},
    ],
    "security_groups": [{"id": "sg-v6"}],
    "instances": [
        {"id": "i-dual", "type": "ecs.g7.large", "vswitch": "vsw-nodes", "primary_eni": "eni-dual"},  # 6 / 6
        {"id": "i-v4", "type": "ecs.g6.large", "vswitch": "vsw-nodes", "primary_eni": "eni-v4"},  # 6 / 1
    ],
}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, EniInfo]] = []

    def on_attach(self, instance_id: str, eni: EniInfo) -> None:
        self.events.append(("attach", eni))

    def on_detach(self, instance_id: str, eni: EniInfo) -> None:
        self.events.append(("detach", eni))

    def on_ips_changed(self, instance_id: str, eni: EniInfo) -> None:
        self.events.append(("ips", eni))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def v6(emulator_factory: EmulatorFactory, recorder: Recorder) -> RunningEmulator:
    hook: EniHook = recorder
    return emulator_factory(SCENARIO, hook=hook)


@pytest.fixture
def sdk(v6: RunningEmulator) -> Iterator[SdkCaller]:
    caller = SdkCaller(v6)
    yield caller
    caller.close()


def _create(sdk: SdkCaller, vswitch: str = "vsw-v6", ipv6: int = 0, token: str = "") -> dict[str, Any]:
    request = CreateNetworkInterfaceRequest()
    request.set_VSwitchId(vswitch)
    request.set_SecurityGroupIdss(["sg-v6"])
    if ipv6:
        request.set_Ipv6AddressCount(ipv6)
    if token:
        request.set_ClientToken(token)
    return sdk.call(request)


def _assign(eni: str, count: int = 0, addresses: list[str] | None = None, token: str = "") -> AssignIpv6AddressesRequest:
    request = AssignIpv6AddressesRequest()
    request.set_NetworkInterfaceId(eni)
    if count:
        request.set_Ipv6AddressCount(count)
    if addresses:
        request.set_Ipv6Addresss(addresses)
    if token:
        request.set_ClientToken(token)
    return request


def _ipv6_of(sdk: SdkCaller, eni: str) -> list[str]:
    request = DescribeNetworkInterfacesRequest()
    request.set_NetworkInterfaceIds([eni])
    found = sdk.call(request)["NetworkInterfaceSets"]["NetworkInterfaceSet"]
    return [s["Ipv6Address"] for s in found[0]["Ipv6Sets"]["Ipv6Set"]]


def _attach(sdk: SdkCaller, eni: str, instance: str) -> None:
    request = AttachNetworkInterfaceRequest()
    request.set_NetworkInterfaceId(eni)
    request.set_InstanceId(instance)
    sdk.call(request)


def test_vpc_and_vswitches_carry_their_ipv6_cidrs(sdk: SdkCaller) -> None:
    vpc = sdk.call(DescribeVpcsRequest())["Vpcs"]["Vpc"][0]
    assert vpc["Ipv6CidrBlock"] == "2001:db8::/56"
    found = {v["VSwitchId"]: v["Ipv6CidrBlock"] for v in sdk.call(DescribeVSwitchesRequest())["VSwitches"]["VSwitch"]}
    assert found == {"vsw-v6": "2001:db8:0:1::/64", "vsw-v4": "", "vsw-nodes": "2001:db8::/64"}
    created = CreateVSwitchRequest()
    created.set_VpcId("vpc-v6")
    created.set_ZoneId(ZONE)
    created.set_CidrBlock("10.0.96.0/19")
    created.set_Ipv6CidrBlock(7)
    new_id = sdk.call(created)["VSwitchId"]
    listed = DescribeVSwitchesRequest()
    listed.set_VSwitchId(new_id)
    assert sdk.call(listed)["VSwitches"]["VSwitch"][0]["Ipv6CidrBlock"] == "2001:db8:0:7::/64"


def test_assign_and_unassign_ipv6(sdk: SdkCaller, recorder: Recorder) -> None:
    eni = _create(sdk, ipv6=2)["NetworkInterfaceId"]
    first = _ipv6_of(sdk, eni)
    assert first == ["2001:db8:0:1::1", "2001:db8:0:1::2"]
    reply = sdk.call(_assign(eni, count=3))
    assert reply["NetworkInterfaceId"] == eni
    assert reply["Ipv6Sets"]["Ipv6Address"] == ["2001:db8:0:1::3", "2001:db8:0:1::4", "2001:db8:0:1::5"]
    assert sdk.call(_assign(eni, addresses=["2001:db8:0:1::99"]))["Ipv6Sets"]["Ipv6Address"] == ["2001:db8:0:1::99"]
    taken = sdk.error(_assign(eni, addresses=["2001:db8:0:1::99"]))
    assert taken.get_error_code() == "InvalidIpv6Address.Duplicated"
    outside = sdk.error(_assign(eni, addresses=["2001:db8:0:2::1"]))
    assert outside.get_error_code() == "InvalidIpv6Address.Mismatch"
    both = _assign(eni, count=1, addresses=["2001:db8:0:1::77"])
    assert sdk.error(both).get_error_code() == "InvalidParam.Ipv6Count"
    unassign = UnassignIpv6AddressesRequest()
    unassign.set_NetworkInterfaceId(eni)
    unassign.set_Ipv6Addresss(["2001:db8:0:1::3", "2001:db8:0:1::99"])
    sdk.call(unassign)
    assert _ipv6_of(sdk, eni) == ["2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1::4", "2001:db8:0:1::5"]
    again = sdk.error(unassign)
    assert again.get_error_code() == "InvalidIp.IpUnassigned"
    assert not recorder.events  # not attached: no datapath event


def test_a_vswitch_without_ipv6_refuses(sdk: SdkCaller) -> None:
    eni = _create(sdk, vswitch="vsw-v4")["NetworkInterfaceId"]
    refused = sdk.error(_assign(eni, count=1))
    assert refused.get_error_code() == "InvalidOperation.Ipv6NotSupported"
    create = CreateNetworkInterfaceRequest()
    create.set_VSwitchId("vsw-v4")
    create.set_SecurityGroupIdss(["sg-v6"])
    create.set_Ipv6AddressCount(1)
    assert sdk.error(create).get_error_code() == "InvalidOperation.Ipv6NotSupported"


def test_quota_per_eni_comes_from_the_instance_type(sdk: SdkCaller, recorder: Recorder) -> None:
    dual = _create(sdk, ipv6=1)["NetworkInterfaceId"]
    _attach(sdk, dual, "i-dual")  # ecs.g7.large: 6 IPv6 per ENI
    sdk.call(_assign(dual, count=5))
    full = sdk.error(_assign(dual, count=1))
    assert full.get_error_code() == "InvalidOperation.Ipv6CountExceeded"
    last = [info for kind, info in recorder.events if kind == "ips"][-1]
    assert len(last.ipv6_ips) == 6 and last.ipv6_gateway == "2001:db8:0:1:ffff:ffff:ffff:fffd"
    two = _create(sdk, ipv6=2)["NetworkInterfaceId"]
    request = AttachNetworkInterfaceRequest()
    request.set_NetworkInterfaceId(two)
    request.set_InstanceId("i-v4")  # ecs.g6.large: 1 IPv6 per ENI
    assert sdk.error(request).get_error_code() == "InvalidOperation.Ipv6CountExceeded"
    single = _create(sdk, ipv6=1)["NetworkInterfaceId"]
    _attach(sdk, single, "i-v4")
    assert sdk.error(_assign(single, count=1)).get_error_code() == "InvalidOperation.Ipv6CountExceeded"


def test_a_lost_assign_reply_answered_again_with_the_same_token(v6: RunningEmulator, sdk: SdkCaller) -> None:
    eni = _create(sdk)["NetworkInterfaceId"]
    v6.set_fault("AssignIpv6Addresses", failure_ratio=1.0, fail_after_commit=True)
    lost = sdk.error(_assign(eni, count=2, token="tok-v6"))
    assert lost.get_error_code() == "InternalError"
    v6.clear_faults()
    assert len(_ipv6_of(sdk, eni)) == 2  # the cloud did the work
    again = sdk.call(_assign(eni, count=2, token="tok-v6"))
    assert again["Ipv6Sets"]["Ipv6Address"] == _ipv6_of(sdk, eni)
    assert len(_ipv6_of(sdk, eni)) == 2
    assert sdk.error(_assign(eni, count=3, token="tok-v6")).get_error_code() == "IdempotentParameterMismatch"


def test_internet_bandwidth_through_the_ipv6_gateway(sdk: SdkCaller, recorder: Recorder) -> None:
    eni = _create(sdk, ipv6=1)["NetworkInterfaceId"]
    _attach(sdk, eni, "i-dual")
    address = _ipv6_of(sdk, eni)[0]
    lookup = DescribeIpv6AddressesRequest()
    lookup.set_Ipv6Address(address)
    described = sdk.call(lookup)["Ipv6Addresses"]["Ipv6Address"][0]
    assert described["NetworkType"] == "Private" and described["AssociatedInstanceId"] == eni
    gateway = CreateIpv6GatewayRequest()
    gateway.set_VpcId("vpc-v6")
    gateway_id = sdk.call(gateway)["Ipv6GatewayId"]
    bandwidth = AllocateIpv6InternetBandwidthRequest()
    bandwidth.set_Ipv6AddressId(described["Ipv6AddressId"])
    bandwidth.set_Ipv6GatewayId(gateway_id)
    bandwidth.set_Bandwidth(10)
    sdk.call(bandwidth)
    assert sdk.call(lookup)["Ipv6Addresses"]["Ipv6Address"][0]["NetworkType"] == "Public"
    assert recorder.events[-1][1].ipv6_internet == (address,)
    assert sdk.error(bandwidth).get_error_code() == "OperationFailed.Ipv6AddressHasBandwidth"


def test_the_cloud_layer_typed_calls(v6: RunningEmulator) -> None:
    from tests.fixtures.node import new_client

    with new_client(v6.url) as client:
        eni = client.create_network_interface(vswitch_id="vsw-v6", security_group_ids=["sg-v6"], ipv6_count=1)
        assert len(eni.ipv6_addresses) == 1
        got = client.assign_ipv6_addresses(eni.network_interface_id, count=9)  # an Available ENI holds 10
        assert len(got) == 9 and all(ipaddress.IPv6Address(a) in ipaddress.IPv6Network("2001:db8:0:1::/64")
                                      for a in got)
        client.unassign_ipv6_addresses(eni.network_interface_id, got)
        (after,) = client.describe_network_interfaces(network_interface_ids=[eni.network_interface_id])
        assert after.ipv6_addresses == eni.ipv6_addresses
        vsw = {v.vswitch_id: v.ipv6_cidr_block for v in client.describe_vswitches(vpc_id="vpc-v6")}
        assert vsw["vsw-v6"] == "2001:db8:0:1::/64" and vsw["vsw-v4"] == ""
