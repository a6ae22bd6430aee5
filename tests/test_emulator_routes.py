"""The emulator's CreateVSwitch, route tables (DescribeRouteTableList, DescribeRouteEntryList, CreateRouteEntry)
and asynchronous CreateSnatEntry, through terwayctl.cloud's CloudClient: the real aliyun SDK over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from terwayctl.cloud import errors as e
from terwayctl.cloud.client import CloudClient
from tests.fixtures.emulator import EmulatorFactory, RunningEmulator
from tests.vswitch_support import VSWITCH_SCENARIO

MakeClient = Callable[..., CloudClient]


@pytest.fixture
def world(emulator_factory: EmulatorFactory) -> RunningEmulator:
    return emulator_factory(VSWITCH_SCENARIO)


@pytest.fixture
def client(world: RunningEmulator, make_client: MakeClient) -> CloudClient:
    return make_client(world)


def test_create_vswitch_is_pending_then_available(client: CloudClient) -> None:
    vsw = client.create_vswitch(vpc_id="vpc-cluster", zone_id="cn-hangzhou-i", cidr_block="192.168.64.0/19",
                                name="pods-i")
    assert vsw.startswith("vsw-")
    first = client.describe_vswitches(vswitch_ids=[vsw])
    second = client.describe_vswitches(vswitch_ids=[vsw])
    assert [v.status for v in first + second] == ["Pending", "Available"]
    got = second[0]
    assert (got.vpc_id, got.zone_id, got.cidr_block, got.vswitch_name, got.available_ip_count) == (
        "vpc-cluster", "cn-hangzhou-i", "192.168.64.0/19", "pods-i", 8188)
    assert (got.route_table_id, got.route_table_type) == ("vtb-cluster", "System")
    assert vsw in client.describe_vpcs(vpc_ids=["vpc-cluster"])[0].vswitch_ids


@pytest.mark.parametrize(("params", "code", "kind"), [
    ({"cidr_block": "192.168.40.0/21"}, "InvalidCidrBlock.Overlapped", e.CloudError),
    ({"cidr_block": "10.9.0.0/19"}, "InvalidCidrBlock.Malformed", e.CloudError),
    ({"cidr_block": "192.168.64.0/30"}, "InvalidCidrBlock.Malformed", e.CloudError),
    ({"cidr_block": "192.168.64.1/19"}, "InvalidCidrBlock.Malformed", e.CloudError),
    ({"zone_id": "cn-hangzhou-z"}, "InvalidZoneId.NotFound", e.CloudNotFound),
    ({"vpc_id": "vpc-nothere"}, "InvalidVpcId.NotFound", e.CloudNotFound),
])
def test_create_vswitch_refusals(client: CloudClient, params: dict[str, str], code: str,
                                 kind: type[e.CloudError]) -> None:
    args = {"vpc_id": "vpc-cluster", "zone_id": "cn-hangzhou-i", "cidr_block": "192.168.64.0/19", **params}
    with pytest.raises(kind) as caught:
        client.create_vswitch(**args)
    assert caught.value.code == code
    assert not [v for v in client.describe_vswitches(vpc_id="vpc-cluster") if v.cidr_block == args["cidr_block"]]


def test_route_tables_system_and_custom(client: CloudClient) -> None:
    tables = {t.route_table_id: t for t in client.describe_route_table_list(vpc_id="vpc-cluster")}
    assert {t: tables[t].route_table_type for t in tables} == {"vtb-cluster": "System", "vtb-private": "Custom",
                                                                "vtb-gateway": "Custom"}
    assert tables["vtb-private"].vswitch_ids == ("vsw-privi",)
    assert "vsw-podi" in tables["vtb-cluster"].vswitch_ids and "vsw-privi" not in tables["vtb-cluster"].vswitch_ids
    privi = client.describe_vswitches(vswitch_ids=["vsw-privi"])[0]
    assert (privi.route_table_id, privi.route_table_type) == ("vtb-private", "Custom")
    system = client.describe_route_entry_list("vtb-cluster")
    assert [(r.destination_cidr_block, r.next_hops) for r in system] == [("0.0.0.0/0", (("NatGateway",
                                                                                           "ngw-cluster"),))]
    gateway = client.describe_route_entry_list("vtb-gateway")
    assert gateway[0].next_hops == (("Instance", "i-gateway"),) and gateway[0].status == "Available"
    with pytest.raises(e.CloudNotFound) as caught:
        client.describe_route_entry_list("vtb-nothere")
    assert caught.value.code == "InvalidRouteTableId.NotFound"


def test_create_route_entry_and_paging(world: RunningEmulator, make_client: MakeClient) -> None:
    client = make_client(world, page_sizes={"DescribeRouteEntryList": 20})
    entry = client.create_route_entry("vtb-private", destination_cidr_block="0.0.0.0/0", next_hop_type="NatGateway",
                                      next_hop_id="ngw-cluster")
    assert [r.status for r in client.describe_route_entry_list("vtb-private", destination_cidr_block="0.0.0.0/0")] \
        == ["Pending"]
    with pytest.raises(e.CloudError) as duplicate:
        client.create_route_entry("vtb-private", destination_cidr_block="0.0.0.0/0", next_hop_type="NatGateway",
                                  next_hop_id="ngw-cluster")
    assert duplicate.value.code == "InvalidCIDRBlock.Duplicate"
    with pytest.raises(e.CloudError) as hop:
        client.create_route_entry("vtb-private", destination_cidr_block="172.16.0.0/12", next_hop_type="NatGateway",
                                  next_hop_id="ngw-nothere")
    assert hop.value.code == "InvalidNextHop.NotFound"
    for i in range(25):
        client.create_route_entry("vtb-private", destination_cidr_block=f"10.{i + 1}.0.0/16",
                                  next_hop_type="NatGateway", next_hop_id="ngw-cluster")
    routes = client.describe_route_entry_list("vtb-private")  # 10.0.0.0/8 + 0.0.0.0/0 + 25: two pages of 20
    assert len(routes) == 27 and len({r.route_entry_id for r in routes}) == 27 and entry in {
        r.route_entry_id for r in routes}


def test_create_snat_entry_is_pending_then_available(client: CloudClient) -> None:
    entry = client.create_snat_entry("stb-cluster", snat_ip="203.0.113.10", source_vswitch_id="vsw-barei")
    states = [[x.status for x in client.describe_snat_table_entries("stb-cluster", source_vswitch_id="vsw-barei")]
              for _ in range(2)]
    assert states == [["Pending"], ["Available"]]
    got = client.describe_snat_table_entries("stb-cluster", source_vswitch_id="vsw-barei")[0]
    assert (got.snat_entry_id, got.source_cidr, got.snat_ip) == (entry, "192.168.232.0/21", "203.0.113.10")
    with pytest.raises(e.CloudError) as duplicate:
        client.create_snat_entry("stb-cluster", snat_ip="203.0.113.10", source_vswitch_id="vsw-barei")
    assert duplicate.value.code == "Forbidden.SourceDuplicated"
    with pytest.raises(e.CloudInvalidParameter):
        client.create_snat_entry("stb-cluster", snat_ip="203.0.113.10")
