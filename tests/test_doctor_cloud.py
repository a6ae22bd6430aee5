"""Cloud checks: unit tests with a fake cloud, and end to end against the emulator (real SDK)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from terwayctl.cloud.client import CloudClient
from terwayctl.cloud.models import Eip
from terwayctl.doctor import DoctorOptions, Inputs, Status, run
from tests.fixtures.doctor import (
    FakeCloud,
    RunOne,
    eni,
    instance,
    instance_type,
    nat,
    snat_entry,
    vswitch,
)
from tests.fixtures.emulator import EmulatorFactory, RunningEmulator

CONF = {"vswitches": {"z1": ["vsw-pod1"]}, "security_group": "sg-1"}


def world(**changes: Any) -> FakeCloud:
    cloud = FakeCloud(
        vswitches=[vswitch("vsw-node1", "z1", "10.0.0.0/24"), vswitch("vsw-pod1", "z1", "10.0.32.0/19")],
        instances=[instance("i-1", "z1", "vsw-node1")],
        nats=[nat()],
        snat={"stb-1": [snat_entry("snat-node", vsw="vsw-node1"), snat_entry("snat-pods", cidr="10.0.32.0/19")]},
        types=[instance_type("ecs.g7.xlarge", 4, 15)],
        enis=[eni("eni-1", "i-1", 2)],
    )
    for key, value in changes.items():
        setattr(cloud, key, value)
    return cloud


@pytest.fixture
def conf_file(tmp_path: Path) -> Path:
    path = tmp_path / "eni_conf.json"
    path.write_text(json.dumps(CONF))
    return path


def test_snat_coverage_ok_by_vswitch_and_by_containing_cidr(run_one: RunOne, conf_file: Path) -> None:
    found = run_one("cloud.snat-coverage", cloud=world(), eni_conf_file=conf_file)
    assert found.status is Status.OK
    assert any("vsw-pod1" in e and "SourceCIDR 10.0.32.0/19" in e for e in found.evidence)
    assert any("vsw-node1" in e and "SourceVSwitchId vsw-node1" in e for e in found.evidence)


def test_snat_coverage_fails_with_the_exact_entry(run_one: RunOne, conf_file: Path) -> None:
    cloud = world(snat={"stb-1": [snat_entry("snat-node", vsw="vsw-node1", ip="203.0.113.9")]})
    found = run_one("cloud.snat-coverage", cloud=cloud, eni_conf_file=conf_file)
    assert found.status is Status.FAIL
    assert found.fix == ("aliyun vpc CreateSnatEntry --RegionId cn-test --SnatTableId stb-1 "
                         "--SourceVSwitchId vsw-pod1 --SnatIp 203.0.113.9")
    assert "vsw-pod1 (pod, 10.0.32.0/19, z1): no SNAT entry" in found.evidence


def test_snat_coverage_without_nat_gateway_says_to_create_one(run_one: RunOne, conf_file: Path) -> None:
    found = run_one("cloud.snat-coverage", cloud=world(nats=[], snat={}), eni_conf_file=conf_file)
    assert found.status is Status.FAIL
    assert "CreateNatGateway" in (found.fix or "")


def test_cloud_checks_skip_without_topology_inputs(run_one: RunOne) -> None:
    found = run_one("cloud.snat-coverage", cloud=world())
    assert found.status is Status.SKIP
    assert "--eni-conf" in found.evidence[0]


def test_cloud_checks_skip_without_cloud(run_one: RunOne, conf_file: Path) -> None:
    found = run_one("cloud.eip-trap", eni_conf_file=conf_file)
    assert found.status is Status.SKIP
    assert found.evidence == ("no cloud access configured",)


def test_eip_trap(run_one: RunOne, conf_file: Path) -> None:
    bare = {"stb-1": [snat_entry("snat-node", vsw="vsw-node1")]}
    with_eip = [Eip("eip-1", "203.0.113.11", "InUse", "i-1", "EcsInstance", 5)]
    trapped = run_one("cloud.eip-trap", cloud=world(snat=bare, eips=with_eip), eni_conf_file=conf_file)
    assert trapped.status is Status.FAIL
    assert "i-1 (z1) has EIP 203.0.113.11" in trapped.evidence[0]
    assert "--SourceVSwitchId vsw-pod1" in (trapped.fix or "")
    fine = run_one("cloud.eip-trap", cloud=world(eips=with_eip), eni_conf_file=conf_file)
    assert fine.status is Status.OK
    none = run_one("cloud.eip-trap", cloud=world(snat=bare), eni_conf_file=conf_file)
    assert none.status is Status.OK and "none of the 1 instance(s) has an EIP" in none.evidence


@pytest.mark.parametrize(("free", "status"), [(1000, Status.OK), (10, Status.WARN), (0, Status.FAIL)])
def test_vswitch_free_ips(run_one: RunOne, conf_file: Path, free: int, status: Status) -> None:
    cloud = world(vswitches=[vswitch("vsw-node1", "z1", "10.0.0.0/24"), vswitch("vsw-pod1", "z1", "10.0.32.0/19", free)])
    found = run_one("cloud.vswitch-free-ips", cloud=cloud, eni_conf_file=conf_file)
    assert found.status is status
    assert any(f"vsw-pod1 (pod, z1, 10.0.32.0/19): {free} free IPs" in e for e in found.evidence)


def test_eni_slots(run_one: RunOne, conf_file: Path) -> None:
    roomy = run_one("cloud.eni-slots", cloud=world(), eni_conf_file=conf_file)
    assert roomy.status is Status.OK
    assert "i-1 (ecs.g7.xlarge): 1/4 ENIs attached, 2/60 private IPs" in roomy.evidence
    full = world(enis=[eni(f"eni-{i}", "i-1", 3) for i in range(4)])
    assert run_one("cloud.eni-slots", cloud=full, eni_conf_file=conf_file).status is Status.WARN
    exhausted = world(enis=[eni(f"eni-{i}", "i-1", 15) for i in range(4)])
    found = run_one("cloud.eni-slots", cloud=exhausted, eni_conf_file=conf_file)
    assert found.status is Status.FAIL
    assert "exhausted" in found.evidence[0]


def test_vswitch_zones(run_one: RunOne, tmp_path: Path) -> None:
    path = tmp_path / "conf.json"
    path.write_text(json.dumps({"vswitches": {"z1": ["vsw-pod1"], "z9": ["vsw-pod1b"]}}))
    cloud = world(vswitches=[*world().vswitches, vswitch("vsw-pod1b", "z9", "10.0.64.0/19")])
    found = run_one("cloud.vswitch-zones", cloud=cloud, eni_conf_file=path)
    assert found.status is Status.WARN
    assert "zone z9 has pod vSwitches (vsw-pod1b) but no nodes" in found.evidence
    cloud.instances.append(instance("i-2", "z2", "vsw-node1"))
    found = run_one("cloud.vswitch-zones", cloud=cloud, eni_conf_file=path)
    assert found.status is Status.FAIL
    assert any(e.startswith("zone z2 has 1 node(s) but no pod vSwitch") for e in found.evidence)
    path.write_text(json.dumps({"vswitches": {"z2": ["vsw-pod1"]}}))
    found = run_one("cloud.vswitch-zones", cloud=world(), eni_conf_file=path)
    assert found.status is Status.FAIL
    assert "vsw-pod1 is configured under zone z2 but lives in z1" in found.evidence


def test_instances_from_flag_must_exist(run_one: RunOne, conf_file: Path) -> None:
    found = run_one("cloud.vswitch-zones", cloud=world(), eni_conf_file=conf_file, instance_ids=("i-nope", "i-1"))
    assert found.status is Status.FAIL
    assert found.evidence[0] == ("instance i-nope (from --instance-id) does not exist in region cn-test: a deleted "
                                 "node, or the wrong region")
    other = run_one("cloud.eni-slots", cloud=world(), eni_conf_file=conf_file, instance_ids=("i-nope", "i-1"))
    assert other.status is Status.OK  # the other checks still run on the instances that exist


# --- end to end: the real SDK against the emulator ------------------------------------------------------

DEFAULT_CONF = {"vswitches": {"cn-hangzhou-i": ["vsw-emupodi"], "cn-hangzhou-j": ["vsw-emupodj"]},
                "security_group": "sg-emudefault"}


def _cloud_run(make_client: Callable[..., CloudClient], emu: RunningEmulator, conf: Path, **options: Any) -> Any:
    client = make_client(emu)
    inputs = Inputs(cloud=lambda: client)
    return run(DoctorOptions(scopes=frozenset({"cloud"}), eni_conf_file=conf, **options), inputs)


@pytest.fixture
def default_conf(tmp_path: Path) -> Path:
    path = tmp_path / "eni-config.json"
    path.write_text(json.dumps(DEFAULT_CONF))
    return path


def test_default_world_pod_vswitches_lack_snat(make_client: Callable[..., CloudClient], emulator: RunningEmulator,
                                               default_conf: Path) -> None:
    report = _cloud_run(make_client, emulator, default_conf)
    snat = report.finding("cloud.snat-coverage")
    assert snat.status is Status.FAIL
    assert snat.fix == (
        "aliyun vpc CreateSnatEntry --RegionId cn-hangzhou --SnatTableId stb-emudefault --SourceVSwitchId vsw-emupodi "
        "--SnatIp 203.0.113.10\n"
        "aliyun vpc CreateSnatEntry --RegionId cn-hangzhou --SnatTableId stb-emudefault --SourceVSwitchId vsw-emupodj "
        "--SnatIp 203.0.113.10")
    assert "inputs: --eni-conf" in snat.evidence[0] and "3 instance(s) from every instance of VPC vpc-emudefault" \
        in snat.evidence[0]
    trap = report.finding("cloud.eip-trap")
    assert trap.status is Status.FAIL
    assert trap.evidence == ("i-emunode1 (cn-hangzhou-i) has EIP 203.0.113.11: the node reaches the internet, but its "
                             "pods on vsw-emupodi do not (no SNAT entry)",)
    assert report.finding("cloud.vswitch-free-ips").status is Status.OK
    assert report.finding("cloud.eni-slots").status is Status.OK
    assert report.finding("cloud.vswitch-zones").status is Status.OK


def _scenario_with_snat_for_everything(tiny_pod_vswitch: bool = False) -> dict[str, Any]:
    from terwayctl.emulator.world import DEFAULT_SCENARIO

    scenario = json.loads(json.dumps(DEFAULT_SCENARIO))
    gateway = scenario["nat_gateways"][0]
    gateway["snat_entries"] += [
        {"id": "snat-emupodi", "source_vswitch": "vsw-emupodi", "snat_ip": "203.0.113.10"},
        {"id": "snat-emupodj", "source_cidr": "192.168.96.0/19", "snat_ip": "203.0.113.10"},
    ]
    if tiny_pod_vswitch:
        scenario["vswitches"].append({"id": "vsw-emutiny", "zone": "cn-hangzhou-j", "cidr": "192.168.128.0/29"})
        gateway["snat_entries"].append({"source_vswitch": "vsw-emutiny", "snat_ip": "203.0.113.10"})
    return scenario


def test_snat_for_everything_is_ok(make_client: Callable[..., CloudClient], emulator_factory: EmulatorFactory,
                                   default_conf: Path) -> None:
    emu = emulator_factory(_scenario_with_snat_for_everything())
    report = _cloud_run(make_client, emu, default_conf)
    assert [f.status for f in report.findings] == [Status.OK] * len(report.findings), report.findings
    assert any("SourceCIDR 192.168.96.0/19" in e for e in report.finding("cloud.snat-coverage").evidence)


def test_exhausted_vswitch_and_instance(make_client: Callable[..., CloudClient], emulator_factory: EmulatorFactory,
                                        tmp_path: Path) -> None:
    emu = emulator_factory(_scenario_with_snat_for_everything(tiny_pod_vswitch=True))
    conf = tmp_path / "conf.json"
    conf.write_text(json.dumps({"vswitches": {"cn-hangzhou-i": ["vsw-emupodi"], "cn-hangzhou-j": ["vsw-emutiny"]}}))
    client = make_client(emu)
    tiny = client.create_network_interface(vswitch_id="vsw-emutiny", security_group_ids=["sg-emudefault"],
                                           secondary_ip_count=3)
    assert tiny.private_ips
    # i-emunode2 is an ecs.g6.xlarge: 3 ENIs x 10 IPs; fill it completely
    for _ in range(2):
        ni = client.create_network_interface(vswitch_id="vsw-emupodi", security_group_ids=["sg-emudefault"],
                                             secondary_ip_count=9)
        client.attach_network_interface(ni.network_interface_id, "i-emunode2")
    client.assign_private_ip_addresses("eni-emunode2", count=9)
    report = _cloud_run(make_client, emu, conf)
    free = report.finding("cloud.vswitch-free-ips")
    assert free.status is Status.FAIL
    assert "vsw-emutiny (pod, cn-hangzhou-j, 192.168.128.0/29): 0 free IPs (empty, threshold 64)" in free.evidence
    slots = report.finding("cloud.eni-slots")
    assert slots.status is Status.FAIL
    assert ("i-emunode2 (ecs.g6.xlarge): 3/3 ENIs attached, 30/30 private IPs (exhausted: no ENI and no IP can be "
            "added)") in slots.evidence
