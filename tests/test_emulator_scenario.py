"""Scenarios: the default world, validation errors with hints, YAML files, and state kept across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from terwayctl.core.errors import InvalidInput
from terwayctl.emulator import Emulator, default_world, load_scenario, parse_scenario
from tests.fixtures.emulator import RunningEmulator


def test_default_world_ids() -> None:
    world = default_world()
    assert world.region == "cn-hangzhou" and world.zones == ("cn-hangzhou-i", "cn-hangzhou-j")
    assert [v.id for v in world.vpcs] == ["vpc-emudefault"]
    assert {(v.id, v.cidr, v.zone) for v in world.vswitches} == {
        ("vsw-emunodei", "192.168.0.0/19", "cn-hangzhou-i"), ("vsw-emupodi", "192.168.32.0/19", "cn-hangzhou-i"),
        ("vsw-emunodej", "192.168.64.0/19", "cn-hangzhou-j"), ("vsw-emupodj", "192.168.96.0/19", "cn-hangzhou-j"),
    }
    assert [(i.id, i.instance_type, i.primary_eni_id) for i in world.instances] == [
        ("i-emunode1", "ecs.g7.xlarge", "eni-emunode1"), ("i-emunode2", "ecs.g6.xlarge", "eni-emunode2"),
        ("i-emunode3", "ecs.g7.4xlarge", "eni-emunode3"),
    ]
    nat = world.nat_gateways[0]
    assert (nat.id, nat.snat_table_id) == ("ngw-emudefault", "stb-emudefault")
    assert {e.source_vswitch_id for e in nat.snat_entries} == {"vsw-emunodei", "vsw-emunodej"}
    assert [(k.access_key_id, k.access_key_secret) for k in world.key_pairs] == [("emulator", "emulator")]


BASE: dict[str, Any] = {
    "vpcs": [{"id": "vpc-a", "cidr": "10.0.0.0/16"}],
    "vswitches": [{"id": "vsw-a", "zone": "cn-hangzhou-i", "cidr": "10.0.0.0/24"}],
    "security_groups": [{"id": "sg-a"}],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "unknown keys colour"),
        ({"vpcs": [{"cidr": "10.0.0.0/33"}]}, "is not an IPv4 CIDR"),
        ({"vswitches": [{"zone": "cn-hangzhou-i", "cidr": "172.16.0.0/24"}]}, "is not inside the VPC"),
        ({"vswitches": [{"zone": "cn-hangzhou-z", "cidr": "10.0.0.0/24"}]}, "is not in the scenario's zones"),
        ({"vswitches": [{"zone": "cn-hangzhou-i", "cidr": "10.0.0.0/24"},
                        {"zone": "cn-hangzhou-i", "cidr": "10.0.0.128/25"}]}, "overlaps"),
        ({"zones": ["cn-beijing-a"]}, "is not in region"),
        ({"instances": [{"type": "ecs.nope", "vswitch": "vsw-a"}]}, "has no ENI quota in the catalog"),
        ({"instances": [{"type": "ecs.g7.xlarge", "vswitch": "vsw-b"}]}, "unknown vSwitch"),
        ({"instances": [{"type": "ecs.g7.xlarge", "vswitch": "vsw-a", "primary_ip": "10.0.1.1"}]}, "is not in"),
        ({"vpcs": [{"id": "vpc-a", "cidr": "10.0.0.0/16"}, {"id": "vpc-a", "cidr": "10.1.0.0/16"}]}, "used twice"),
        ({"eips": [{"ip": "300.1.1.1"}]}, "is not an IPv4 address"),
        ({"faults": {"actions": {"*": {"failure_ratio": 2}}}}, "failure_ratio must be between 0 and 1"),
        ({"faults": {"actions": {"*": {"latency": 2}}}}, "unknown keys latency"),
        ({"settings": {"attach_delay_ms": -1}}, "cannot be negative"),
        ({"key_pairs": [{"access_key_id": "x"}]}, "'access_key_secret' is required"),
    ],
)
def test_invalid_scenarios_name_the_problem_and_a_fix(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_scenario({**BASE, **change})
    assert message in caught.value.message
    assert caught.value.hint


def test_reserved_primary_ip_is_refused_when_seeding(tmp_path: Path) -> None:
    world = parse_scenario({**BASE, "instances": [{"type": "ecs.g7.xlarge", "vswitch": "vsw-a",
                                                   "primary_ip": "10.0.0.255"}]})
    with pytest.raises(InvalidInput, match="reserved"):
        Emulator(tmp_path / "state.sqlite", world=world)


def test_yaml_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "world.yaml"
    path.write_text(
        "region: cn-shanghai\n"
        "zones: [cn-shanghai-a]\n"
        "vpcs: [{name: main, cidr: 10.0.0.0/8}]\n"
        "vswitches: [{name: nodes, zone: cn-shanghai-a, cidr: 10.0.0.0/24}]\n"
        "security_groups: [{name: default}]\n"
        "instances: [{type: ecs.g7.large, vswitch: nodes}]\n",
        encoding="utf-8",
    )
    world = load_scenario(path)
    assert world.region == "cn-shanghai"
    assert world.instances[0].vswitch_id == world.vswitches[0].id
    assert world.vswitches[0].id.startswith("vsw-")
    path.write_text("region: [unclosed\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_scenario(path)
    with pytest.raises(InvalidInput, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def test_state_survives_a_restart_and_the_scenario_is_not_reapplied(emulator_factory: Any) -> None:
    first: RunningEmulator = emulator_factory()
    created = first.call("CreateNetworkInterface", VSwitchId="vsw-emupodi", SecurityGroupId="sg-emudefault",
                         SecondaryPrivateIpAddressCount=2, ClientToken="keep-1")
    assert created.status == 200
    eni = created.body["NetworkInterfaceId"]
    first.stop()

    other = {"region": "cn-hangzhou", "vpcs": [{"id": "vpc-other", "cidr": "10.0.0.0/8"}]}
    second: RunningEmulator = emulator_factory(other, state_path=first.state_path)
    described = second.call("DescribeNetworkInterfaces", extra={"NetworkInterfaceId.1": eni})
    assert described.body["TotalCount"] == 1
    assert len(described.body["NetworkInterfaceSets"]["NetworkInterfaceSet"][0]["PrivateIpSets"]["PrivateIpSet"]) == 3
    again = second.call("CreateNetworkInterface", VSwitchId="vsw-emupodi", SecurityGroupId="sg-emudefault",
                        SecondaryPrivateIpAddressCount=2, ClientToken="keep-1")
    assert again.body["NetworkInterfaceId"] == eni
    listed = second.call("DescribeNetworkInterfaces", VSwitchId="vsw-emupodi").body
    assert [s["NetworkInterfaceId"] for s in listed["NetworkInterfaceSets"]["NetworkInterfaceSet"]] == [eni]
    assert second.call("DescribeInstances").body["TotalCount"] == 3
    assert not second.emulator.seeded
    vpcs = second.call("DescribeVpcs", version="2016-04-28").body["Vpcs"]["Vpc"]
    assert [v["VpcId"] for v in vpcs] == ["vpc-emudefault"]
