"""The emulator driven by the real aliyun SDK (AcsClient + request classes) over HTTP on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
from aliyunsdkecs.request.v20140526.AssignPrivateIpAddressesRequest import AssignPrivateIpAddressesRequest
from aliyunsdkecs.request.v20140526.AttachNetworkInterfaceRequest import AttachNetworkInterfaceRequest
from aliyunsdkecs.request.v20140526.CreateNetworkInterfaceRequest import CreateNetworkInterfaceRequest
from aliyunsdkecs.request.v20140526.DeleteNetworkInterfaceRequest import DeleteNetworkInterfaceRequest
from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import DescribeInstancesRequest
from aliyunsdkecs.request.v20140526.DescribeInstanceTypesRequest import DescribeInstanceTypesRequest
from aliyunsdkecs.request.v20140526.DescribeNetworkInterfacesRequest import DescribeNetworkInterfacesRequest
from aliyunsdkecs.request.v20140526.DetachNetworkInterfaceRequest import DetachNetworkInterfaceRequest
from aliyunsdkecs.request.v20140526.UnassignPrivateIpAddressesRequest import UnassignPrivateIpAddressesRequest
from aliyunsdkvpc.request.v20160428.DescribeEipAddressesRequest import DescribeEipAddressesRequest
from aliyunsdkvpc.request.v20160428.DescribeNatGatewaysRequest import DescribeNatGatewaysRequest
from aliyunsdkvpc.request.v20160428.DescribeSnatTableEntriesRequest import DescribeSnatTableEntriesRequest
from aliyunsdkvpc.request.v20160428.DescribeVpcsRequest import DescribeVpcsRequest
from aliyunsdkvpc.request.v20160428.DescribeVSwitchesRequest import DescribeVSwitchesRequest

from tests.fixtures.emulator import SdkCaller

POD_VSW = "vsw-emupodi"
SG = "sg-emudefault"


def create_eni(sdk: SdkCaller, vswitch: str = POD_VSW, count: int = 0, token: str | None = None,
               **extra: Any) -> dict[str, Any]:
    request = CreateNetworkInterfaceRequest()
    request.set_VSwitchId(vswitch)
    request.set_SecurityGroupIdss([SG])
    if count:
        request.set_SecondaryPrivateIpAddressCount(count)
    if token:
        request.set_ClientToken(token)
    for key, value in extra.items():
        request.add_query_param(key, value)
    return sdk.call(request)


def attach(instance: str, eni: str) -> AttachNetworkInterfaceRequest:
    request = AttachNetworkInterfaceRequest()
    request.set_InstanceId(instance)
    request.set_NetworkInterfaceId(eni)
    return request


def detach(instance: str, eni: str) -> DetachNetworkInterfaceRequest:
    request = DetachNetworkInterfaceRequest()
    request.set_InstanceId(instance)
    request.set_NetworkInterfaceId(eni)
    return request


def delete(eni: str) -> DeleteNetworkInterfaceRequest:
    request = DeleteNetworkInterfaceRequest()
    request.set_NetworkInterfaceId(eni)
    return request


def assign(eni: str, count: int = 0, addresses: list[str] | None = None) -> AssignPrivateIpAddressesRequest:
    request = AssignPrivateIpAddressesRequest()
    request.set_NetworkInterfaceId(eni)
    if count:
        request.set_SecondaryPrivateIpAddressCount(count)
    if addresses:
        request.set_PrivateIpAddresss(addresses)
    return request


def unassign(eni: str, addresses: list[str]) -> UnassignPrivateIpAddressesRequest:
    request = UnassignPrivateIpAddressesRequest()
    request.set_NetworkInterfaceId(eni)
    request.set_PrivateIpAddresss(addresses)
    return request


def describe_eni(sdk: SdkCaller, eni: str) -> dict[str, Any]:
    request = DescribeNetworkInterfacesRequest()
    request.set_NetworkInterfaceIds([eni])
    found: list[dict[str, Any]] = sdk.call(request)["NetworkInterfaceSets"]["NetworkInterfaceSet"]
    assert len(found) == 1
    return found[0]


def vswitch(sdk: SdkCaller, vswitch_id: str) -> dict[str, Any]:
    request = DescribeVSwitchesRequest()
    request.set_VSwitchId(vswitch_id)
    found: dict[str, Any] = sdk.call(request)["VSwitches"]["VSwitch"][0]
    return found


# --- reads ------------------------------------------------------------------------------------------


def test_describe_instance_types_filters_and_token_paging(sdk: SdkCaller) -> None:
    request = DescribeInstanceTypesRequest()
    request.set_InstanceTypess(["ecs.g7.xlarge", "ecs.g7.4xlarge", "ecs.nope"])
    reply = sdk.call(request)
    rows = {t["InstanceTypeId"]: t for t in reply["InstanceTypes"]["InstanceType"]}
    assert set(rows) == {"ecs.g7.xlarge", "ecs.g7.4xlarge"}
    assert rows["ecs.g7.4xlarge"]["EniQuantity"] == 8
    assert rows["ecs.g7.4xlarge"]["EniPrivateIpAddressQuantity"] == 30
    assert rows["ecs.g7.xlarge"].items() >= {
        "InstanceTypeFamily": "ecs.g7", "CpuCoreCount": 4, "MemorySize": 16.0, "EniIpv6AddressQuantity": 15,
        "EniTotalQuantity": 20, "EniTrunkSupported": True,
    }.items()
    assert reply["NextToken"] == ""

    seen: list[str] = []
    token = None
    for _ in range(10):
        request = DescribeInstanceTypesRequest()
        request.set_InstanceTypeFamily("ecs.g7")
        request.set_MaxResults(3)
        if token:
            request.set_NextToken(token)
        reply = sdk.call(request)
        seen += [t["InstanceTypeId"] for t in reply["InstanceTypes"]["InstanceType"]]
        token = reply["NextToken"]
        if not token:
            break
    assert len(seen) == len(set(seen)) > 3
    assert all(name.startswith("ecs.g7.") for name in seen)


def test_describe_instances_default_world_and_paging(sdk: SdkCaller) -> None:
    reply = sdk.call(DescribeInstancesRequest())
    assert reply["TotalCount"] == 3 and reply["PageNumber"] == 1 and reply["PageSize"] == 10
    first = reply["Instances"]["Instance"][0]
    assert first["InstanceId"] == "i-emunode1" and first["InstanceType"] == "ecs.g7.xlarge"
    assert first["ZoneId"] == "cn-hangzhou-i"
    assert first["VpcAttributes"]["VpcId"] == "vpc-emudefault"
    assert first["VpcAttributes"]["VSwitchId"] == "vsw-emunodei"
    assert first["VpcAttributes"]["PrivateIpAddress"]["IpAddress"] == ["192.168.0.1"]
    primary = first["NetworkInterfaces"]["NetworkInterface"][0]
    assert primary["Type"] == "Primary" and primary["NetworkInterfaceId"] == "eni-emunode1"
    assert first["EipAddress"]["IpAddress"] == "203.0.113.11"

    request = DescribeInstancesRequest()
    request.set_PageSize(2)
    request.set_PageNumber(2)
    page2 = sdk.call(request)
    assert [i["InstanceId"] for i in page2["Instances"]["Instance"]] == ["i-emunode3"]

    request = DescribeInstancesRequest()
    request.set_InstanceIds('["i-emunode2", "i-emunode3"]')
    request.set_ZoneId("cn-hangzhou-i")
    assert [i["InstanceId"] for i in sdk.call(request)["Instances"]["Instance"]] == ["i-emunode2"]


def test_describe_vpc_side(sdk: SdkCaller) -> None:
    vpcs = sdk.call(DescribeVpcsRequest())
    assert vpcs["TotalCount"] == 1
    vpc = vpcs["Vpcs"]["Vpc"][0]
    assert vpc["VpcId"] == "vpc-emudefault" and vpc["CidrBlock"] == "192.168.0.0/16"
    assert vpc["VSwitchIds"]["VSwitchId"] == ["vsw-emunodei", "vsw-emupodi", "vsw-emunodej", "vsw-emupodj"]

    request = DescribeVSwitchesRequest()
    request.set_ZoneId("cn-hangzhou-j")
    switches = sdk.call(request)["VSwitches"]["VSwitch"]
    assert [(v["VSwitchId"], v["CidrBlock"]) for v in switches] == [
        ("vsw-emunodej", "192.168.64.0/19"), ("vsw-emupodj", "192.168.96.0/19")]
    # a /19 has 8192 addresses, 4 reserved, and node 3's primary address is taken
    assert switches[0]["AvailableIpAddressCount"] == 8192 - 4 - 1
    assert switches[1]["AvailableIpAddressCount"] == 8192 - 4

    nats = sdk.call(DescribeNatGatewaysRequest())["NatGateways"]["NatGateway"]
    assert nats[0]["NatGatewayId"] == "ngw-emudefault"
    assert nats[0]["SnatTableIds"]["SnatTableId"] == ["stb-emudefault"]
    assert nats[0]["IpLists"]["IpList"][0]["IpAddress"] == "203.0.113.10"

    request = DescribeSnatTableEntriesRequest()
    request.set_SnatTableId("stb-emudefault")
    entries = sdk.call(request)["SnatTableEntries"]["SnatTableEntry"]
    assert {e["SourceVSwitchId"] for e in entries} == {"vsw-emunodei", "vsw-emunodej"}
    assert {e["SourceCIDR"] for e in entries} == {"192.168.0.0/19", "192.168.64.0/19"}
    request = DescribeSnatTableEntriesRequest()
    request.set_SnatTableId("stb-emudefault")
    request.set_SourceVSwitchId(POD_VSW)
    assert sdk.call(request)["SnatTableEntries"]["SnatTableEntry"] == []
    request = DescribeSnatTableEntriesRequest()
    request.set_SnatTableId("stb-emudefault")
    request.set_SourceCIDR("192.168.0.0/19")
    assert [e["SnatEntryId"] for e in sdk.call(request)["SnatTableEntries"]["SnatTableEntry"]] == ["snat-emunodei"]

    request = DescribeEipAddressesRequest()
    request.set_AssociatedInstanceId("i-emunode1")
    request.set_AssociatedInstanceType("EcsInstance")
    eips = sdk.call(request)["EipAddresses"]["EipAddress"]
    assert [(e["AllocationId"], e["IpAddress"], e["Status"]) for e in eips] == [
        ("eip-emunode1", "203.0.113.11", "InUse")]


# --- ENI lifecycle ----------------------------------------------------------------------------------


def test_eni_lifecycle_and_ip_accounting(sdk: SdkCaller) -> None:
    before = vswitch(sdk, POD_VSW)["AvailableIpAddressCount"]
    created = create_eni(sdk, count=2, Description="pods", **{"Tag.1.Key": "creator", "Tag.1.Value": "terway"})
    eni = created["NetworkInterfaceId"]
    assert created["Status"] == "Available" and created["Type"] == "Secondary"
    assert created["PrivateIpAddress"] == "192.168.32.1"  # the first address, 192.168.32.0, is reserved
    assert [s["Primary"] for s in created["PrivateIpSets"]["PrivateIpSet"]] == [True, False, False]
    assert created["SecurityGroupIds"]["SecurityGroupId"] == [SG]
    assert vswitch(sdk, POD_VSW)["AvailableIpAddressCount"] == before - 3

    sdk.call(attach("i-emunode1", eni))
    described = describe_eni(sdk, eni)
    assert described["Status"] == "InUse" and described["InstanceId"] == "i-emunode1"
    assert described["Tags"]["Tag"] == [{"TagKey": "creator", "TagValue": "terway"}]
    request = DescribeNetworkInterfacesRequest()
    request.set_InstanceId("i-emunode1")
    assert {s["Type"] for s in sdk.call(request)["NetworkInterfaceSets"]["NetworkInterfaceSet"]} == {
        "Primary", "Secondary"}

    assigned = sdk.call(assign(eni, count=3))["AssignedPrivateIpAddressesSet"]
    assert assigned["PrivateIpSet"]["PrivateIpAddress"] == ["192.168.32.4", "192.168.32.5", "192.168.32.6"]
    assigned = sdk.call(assign(eni, addresses=["192.168.32.100"]))["AssignedPrivateIpAddressesSet"]
    assert assigned["PrivateIpSet"]["PrivateIpAddress"] == ["192.168.32.100"]
    sdk.call(unassign(eni, ["192.168.32.5", "192.168.32.100"]))
    ips = [s["PrivateIpAddress"] for s in describe_eni(sdk, eni)["PrivateIpSets"]["PrivateIpSet"]]
    assert ips == ["192.168.32.1", "192.168.32.2", "192.168.32.3", "192.168.32.4", "192.168.32.6"]

    sdk.call(detach("i-emunode1", eni))
    assert describe_eni(sdk, eni)["Status"] == "Available"
    sdk.call(delete(eni))
    assert sdk.error(delete(eni)).get_error_code() == "InvalidEniId.NotFound"
    assert vswitch(sdk, POD_VSW)["AvailableIpAddressCount"] == before


def test_describe_network_interfaces_paging_both_ways(sdk: SdkCaller) -> None:
    for _ in range(4):
        create_eni(sdk)
    request = DescribeNetworkInterfacesRequest()
    request.set_Status("Available")
    request.set_PageSize(3)
    request.set_PageNumber(2)
    page = sdk.call(request)
    assert page["TotalCount"] == 4 and len(page["NetworkInterfaceSets"]["NetworkInterfaceSet"]) == 1

    ids: list[str] = []
    token = None
    for _ in range(5):
        request = DescribeNetworkInterfacesRequest()
        request.set_VSwitchId(POD_VSW)
        request.set_MaxResults(3)
        if token:
            request.set_NextToken(token)
        reply = sdk.call(request)
        ids += [s["NetworkInterfaceId"] for s in reply["NetworkInterfaceSets"]["NetworkInterfaceSet"]]
        token = reply["NextToken"]
        if not token:
            break
    assert len(ids) == len(set(ids)) == 4


def test_client_token_is_idempotent(sdk: SdkCaller) -> None:
    first = create_eni(sdk, count=1, token="token-1")
    again = create_eni(sdk, count=1, token="token-1")
    assert again["NetworkInterfaceId"] == first["NetworkInterfaceId"]
    assert again["RequestId"] != first["RequestId"]
    request = DescribeNetworkInterfacesRequest()
    request.set_VSwitchId(POD_VSW)
    assert sdk.call(request)["TotalCount"] == 1
    request = CreateNetworkInterfaceRequest()
    request.set_VSwitchId(POD_VSW)
    request.set_SecurityGroupId(SG)
    request.set_SecondaryPrivateIpAddressCount(5)
    request.set_ClientToken("token-1")
    assert sdk.error(request).get_error_code() == "IdempotentParameterMismatch"

    eni = first["NetworkInterfaceId"]
    request = assign(eni, count=2)
    request.set_ClientToken("assign-1")
    one = sdk.call(request)
    request = assign(eni, count=2)
    request.set_ClientToken("assign-1")
    assert sdk.call(request)["AssignedPrivateIpAddressesSet"] == one["AssignedPrivateIpAddressesSet"]
    assert len(describe_eni(sdk, eni)["PrivateIpSets"]["PrivateIpSet"]) == 4


def test_lost_reply_then_retry_with_the_same_token(emulator: Any, sdk: SdkCaller) -> None:
    emulator.set_fault("CreateNetworkInterface", failure_ratio=1.0, failure_code="InternalError",
                       fail_after_commit=True)
    error = sdk.error(_create_request(token="lost-1"))
    assert (error.get_error_code(), error.get_http_status()) == ("InternalError", 500)
    emulator.clear_faults()
    eni = sdk.call(_create_request(token="lost-1"))["NetworkInterfaceId"]
    request = DescribeNetworkInterfacesRequest()
    request.set_VSwitchId(POD_VSW)
    reply = sdk.call(request)
    assert [s["NetworkInterfaceId"] for s in reply["NetworkInterfaceSets"]["NetworkInterfaceSet"]] == [eni]


def _create_request(token: str) -> CreateNetworkInterfaceRequest:
    request = CreateNetworkInterfaceRequest()
    request.set_VSwitchId(POD_VSW)
    request.set_SecurityGroupId(SG)
    request.set_ClientToken(token)
    return request


# --- errors -----------------------------------------------------------------------------------------


def _code(sdk: SdkCaller, request: Any) -> tuple[str, int]:
    error = sdk.error(request)
    return error.get_error_code(), error.get_http_status()


def test_unknown_ids_and_missing_parameters(sdk: SdkCaller) -> None:
    assert _code(sdk, attach("i-emunode1", "eni-nope")) == ("InvalidEniId.NotFound", 404)
    eni = create_eni(sdk)["NetworkInterfaceId"]
    assert _code(sdk, attach("i-nope", eni)) == ("InvalidInstanceId.NotFound", 404)
    request = CreateNetworkInterfaceRequest()
    request.set_SecurityGroupId(SG)
    assert _code(sdk, request) == ("MissingVSwitchId", 400)
    request.set_VSwitchId("vsw-nope")
    assert _code(sdk, request) == ("InvalidVSwitchId.NotFound", 404)
    request = CreateNetworkInterfaceRequest()
    request.set_VSwitchId(POD_VSW)
    assert _code(sdk, request) == ("MissingSecurityGroupId", 400)
    request.set_SecurityGroupId("sg-nope")
    assert _code(sdk, request) == ("InvalidSecurityGroupId.NotFound", 404)
    assert _code(sdk, AttachNetworkInterfaceRequest()) == ("MissingNetworkInterfaceId", 400)


def test_eni_state_errors(sdk: SdkCaller) -> None:
    eni = create_eni(sdk)["NetworkInterfaceId"]
    sdk.call(attach("i-emunode1", eni))
    assert _code(sdk, attach("i-emunode2", eni)) == ("InvalidOperation.InvalidEniState", 400)
    assert _code(sdk, delete(eni)) == ("InvalidOperation.InvalidEniState", 400)
    assert _code(sdk, detach("i-emunode2", eni)) == ("InvalidOperation.InvalidEniState", 400)
    assert _code(sdk, detach("i-emunode1", "eni-emunode1")) == ("InvalidOperation.DetachPrimaryEniNotAllowed", 403)
    other_zone = create_eni(sdk, vswitch="vsw-emupodj")["NetworkInterfaceId"]
    assert _code(sdk, attach("i-emunode1", other_zone)) == ("InvalidOperation.ZoneMismatch", 400)
    assert _code(sdk, unassign(eni, ["192.168.32.200"])) == ("InvalidIp.IpUnassigned", 400)
    primary = describe_eni(sdk, eni)["PrivateIpAddress"]
    assert _code(sdk, unassign(eni, [primary])) == ("InvalidOperation.DeletePrimaryIp", 403)


def test_eni_quota_per_instance(sdk: SdkCaller) -> None:
    # ecs.g6.xlarge: EniQuantity 3, the primary ENI included
    enis = [create_eni(sdk)["NetworkInterfaceId"] for _ in range(3)]
    sdk.call(attach("i-emunode2", enis[0]))
    sdk.call(attach("i-emunode2", enis[1]))
    assert _code(sdk, attach("i-emunode2", enis[2])) == ("EniPerInstanceLimitExceeded", 403)
    sdk.call(detach("i-emunode2", enis[1]))
    sdk.call(attach("i-emunode2", enis[2]))


def test_ip_quota_per_eni(sdk: SdkCaller) -> None:
    # ecs.g6.xlarge: 10 private addresses per ENI, the primary included; at most 10 per call
    eni = create_eni(sdk)["NetworkInterfaceId"]
    sdk.call(attach("i-emunode2", eni))
    assert _code(sdk, assign(eni, count=11)) == ("InvalidParam.IpCount", 400)
    assert _code(sdk, assign(eni, count=10)) == ("InvalidOperation.Ipv4CountExceeded", 403)
    sdk.call(assign(eni, count=9))
    assert _code(sdk, assign(eni, count=1)) == ("InvalidOperation.Ipv4CountExceeded", 403)
    assert len(describe_eni(sdk, eni)["PrivateIpSets"]["PrivateIpSet"]) == 10
    # an unattached ENI with more addresses than the type takes cannot be attached
    big = create_eni(sdk, count=12)["NetworkInterfaceId"]
    assert _code(sdk, attach("i-emunode2", big)) == ("InvalidOperation.Ipv4CountExceeded", 403)


SMALL = {
    "region": "cn-hangzhou",
    "zones": ["cn-hangzhou-i"],
    "vpcs": [{"id": "vpc-small", "cidr": "10.0.0.0/16"}],
    "vswitches": [
        {"id": "vsw-node", "zone": "cn-hangzhou-i", "cidr": "10.0.0.0/24"},
        {"id": "vsw-tiny", "zone": "cn-hangzhou-i", "cidr": "10.0.1.0/29"},
    ],
    "security_groups": [{"id": "sg-small"}],
    "instances": [{"id": "i-small", "type": "ecs.g7.4xlarge", "vswitch": "vsw-node", "primary_ip": "10.0.0.10"}],
}


@pytest.fixture
def small(emulator_factory: Any) -> Any:
    caller = SdkCaller(emulator_factory(SMALL))
    yield caller
    caller.close()


def test_reserved_addresses_and_ip_not_enough(small: SdkCaller) -> None:
    # 10.0.1.0/29: 8 addresses; .0 and .5-.7 reserved, so .1-.4 are usable
    assert vswitch(small, "vsw-tiny")["AvailableIpAddressCount"] == 4
    request = CreateNetworkInterfaceRequest()
    request.set_VSwitchId("vsw-tiny")
    request.set_SecurityGroupId("sg-small")
    request.set_PrimaryIpAddress("10.0.1.5")
    assert _code(small, request) == ("InvalidPrivateIpAddress.Mismatch", 400)
    eni = create_eni_in(small, count=2)
    ips = [s["PrivateIpAddress"] for s in describe_eni(small, eni)["PrivateIpSets"]["PrivateIpSet"]]
    assert ips == ["10.0.1.1", "10.0.1.2", "10.0.1.3"]
    small.call(assign(eni, count=1))
    assert vswitch(small, "vsw-tiny")["AvailableIpAddressCount"] == 0
    assert _code(small, assign(eni, count=1)) == ("InvalidVSwitchId.IpNotEnough", 403)
    request = CreateNetworkInterfaceRequest()
    request.set_VSwitchId("vsw-tiny")
    request.set_SecurityGroupId("sg-small")
    assert _code(small, request) == ("InvalidVSwitchId.IpNotEnough", 403)
    small.call(unassign(eni, ["10.0.1.2"]))
    assert small.call(assign(eni, count=1))["AssignedPrivateIpAddressesSet"]["PrivateIpSet"]["PrivateIpAddress"] == [
        "10.0.1.2"]
    request = DescribeInstancesRequest()
    inst = small.call(request)["Instances"]["Instance"][0]
    assert inst["VpcAttributes"]["PrivateIpAddress"]["IpAddress"] == ["10.0.0.10"]


def create_eni_in(caller: SdkCaller, count: int) -> str:
    request = CreateNetworkInterfaceRequest()
    request.set_VSwitchId("vsw-tiny")
    request.set_SecurityGroupId("sg-small")
    request.set_SecondaryPrivateIpAddressCount(count)
    eni: str = caller.call(request)["NetworkInterfaceId"]
    return eni
