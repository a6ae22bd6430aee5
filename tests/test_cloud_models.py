"""Parsing the API's JSON into the frozen dataclasses; endpoint parsing; the VPC layout logic."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from terwayctl.cloud.catalog import fetch_catalog
from terwayctl.cloud.models import (
    InstanceTypeInfo,
    Vpc,
    VSwitch,
    instance_from_api,
    instance_type_from_api,
    nat_gateway_from_api,
    network_interface_from_api,
)
from terwayctl.cloud.session import ExistingVSwitch, describe_vpc_layout, parse_endpoint
from terwayctl.core.catalog import InstanceType
from terwayctl.core.errors import InvalidInput, NotFound

G7 = {
    "InstanceTypeId": "ecs.g7.4xlarge",
    "InstanceTypeFamily": "ecs.g7",
    "CpuCoreCount": 16,
    "MemorySize": 64.0,
    "EniQuantity": 8,
    "EniPrivateIpAddressQuantity": 30,
    "EniIpv6AddressQuantity": 30,
    "EniTotalQuantity": 264,
    "EniTrunkSupported": True,
}


def test_instance_type_to_catalog_record() -> None:
    info = instance_type_from_api(G7)
    assert info.to_instance_type() == InstanceType(
        name="ecs.g7.4xlarge", family="ecs.g7", vcpu=16, memory_gib=64.0, eni_quantity=8,
        eni_private_ip_quantity=30, eni_ipv6_quantity=30, eni_total_quantity=264, eni_trunk_supported=True,
    )


def test_instance_type_missing_fields_stay_unknown() -> None:
    info = instance_type_from_api({"InstanceTypeId": "ecs.t5-lc2m1.nano", "EniQuantity": "2"})
    assert info.family == "ecs.t5-lc2m1"
    assert info.eni_quantity == 2
    assert info.eni_private_ip_quantity is None and info.eni_trunk_supported is None


def test_network_interface_primary_first() -> None:
    eni = network_interface_from_api({
        "NetworkInterfaceId": "eni-1", "Status": "InUse", "Type": "Secondary", "PrivateIpAddress": "192.168.32.5",
        "PrivateIpSets": {"PrivateIpSet": [{"PrivateIpAddress": "192.168.32.9", "Primary": False},
                                           {"PrivateIpAddress": "192.168.32.5", "Primary": True}]},
        "Ipv6Sets": {"Ipv6Set": []}, "SecurityGroupIds": {"SecurityGroupId": ["sg-1"]},
        "Tags": {"Tag": [{"TagKey": "creator", "TagValue": "terway"}]},
    })
    assert eni.private_ips == ("192.168.32.5", "192.168.32.9")
    assert eni.secondary_ips == ("192.168.32.9",)
    assert eni.security_group_ids == ("sg-1",) and eni.tags == (("creator", "terway"),)


def test_instance_and_nat_shapes() -> None:
    inst = instance_from_api({
        "InstanceId": "i-1", "InstanceType": "ecs.g7.large", "ZoneId": "cn-hangzhou-i", "Status": "Running",
        "VpcAttributes": {"VpcId": "vpc-1", "VSwitchId": "vsw-1", "PrivateIpAddress": {"IpAddress": ["192.168.0.10"]}},
        "NetworkInterfaces": {"NetworkInterface": [{"NetworkInterfaceId": "eni-p", "Type": "Primary"}]},
    })
    assert inst.private_ips == ("192.168.0.10",) and inst.network_interface_ids == ("eni-p",)
    nat = nat_gateway_from_api({
        "NatGatewayId": "ngw-1", "VpcId": "vpc-1", "SnatTableIds": {"SnatTableId": ["stb-1"]},
        "IpLists": {"IpList": [{"IpAddress": "203.0.113.7"}]}, "NatGatewayPrivateInfo": {"VswitchId": "vsw-1"},
    })
    assert nat.snat_table_ids == ("stb-1",) and nat.ip_addresses == ("203.0.113.7",) and nat.vswitch_id == "vsw-1"


@pytest.mark.parametrize(
    ("url", "host", "protocol"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8080", "http"),
        ("https://vpc.example.com", "vpc.example.com", "https"),
        ("ecs-vpc.cn-hangzhou.aliyuncs.com", "ecs-vpc.cn-hangzhou.aliyuncs.com", "https"),
        ("http://127.0.0.1:8080/", "127.0.0.1:8080", "http"),
        ("http://[::1]:9000", "[::1]:9000", "http"),
    ],
)
def test_parse_endpoint(url: str, host: str, protocol: str) -> None:
    endpoint = parse_endpoint(url)
    assert (endpoint.host, endpoint.protocol) == (host, protocol)


@pytest.mark.parametrize("url", ["ftp://x", "http://", "http://h/path", "http://u:p@h", "http://h:99999"])
def test_parse_endpoint_rejects(url: str) -> None:
    with pytest.raises(InvalidInput):
        parse_endpoint(url)


class FakeVpcReader:
    """In-memory VpcLayoutReader for the layout logic (the real client is tested on the emulator)."""

    def __init__(self, vpcs: list[Vpc], vswitches: list[VSwitch]) -> None:
        self.vpcs, self.vswitches = vpcs, vswitches

    def describe_vpcs(self, *, vpc_ids: Sequence[str] = ()) -> list[Vpc]:
        return [v for v in self.vpcs if not vpc_ids or v.vpc_id in vpc_ids]

    def describe_vswitches(
        self, *, vpc_id: str | None = None, vswitch_ids: Sequence[str] = (), zone_id: str | None = None
    ) -> list[VSwitch]:
        return [v for v in self.vswitches if vpc_id in (None, v.vpc_id)]


def test_describe_vpc_layout_logic() -> None:
    reader = FakeVpcReader(
        [Vpc("vpc-1", "192.168.0.0/16", "Available", "", ())],
        [VSwitch("vsw-b", "vpc-1", "cn-hangzhou-j", "192.168.32.0/19", 8000, "Available"),
         VSwitch("vsw-a", "vpc-1", "cn-hangzhou-i", "192.168.0.0/19", 8000, "Available"),
         VSwitch("vsw-z", "vpc-2", "cn-hangzhou-i", "10.0.0.0/24", 200, "Available")],
    )
    cidr, vswitches = describe_vpc_layout(reader, "vpc-1")
    assert cidr == "192.168.0.0/16"
    assert vswitches == [ExistingVSwitch("192.168.0.0/19", "cn-hangzhou-i", "vsw-a"),
                         ExistingVSwitch("192.168.32.0/19", "cn-hangzhou-j", "vsw-b")]
    with pytest.raises(NotFound):
        describe_vpc_layout(reader, "vpc-missing")


class FakeTypes:
    region = "cn-test"

    def describe_instance_types(self, instance_types: Sequence[str] = ()) -> list[InstanceTypeInfo]:
        return [instance_type_from_api({**G7, "InstanceTypeId": n}) for n in ("ecs.g7.xlarge", "ecs.g7.large", "ecs.g7.large")]


def test_fetch_catalog_sorts_and_dedupes() -> None:
    catalog = fetch_catalog(FakeTypes())
    assert catalog.source == "live cn-test"
    assert [t.name for t in catalog.types] == ["ecs.g7.large", "ecs.g7.xlarge"]
