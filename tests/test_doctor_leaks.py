"""cloud.leaked-enis: the grace period (ENI CreationTime) and secondary IPs no daemon store knows.

End to end: the real SDK against the emulator (never mocked), the daemon's real store (terwayctl.node.store)
in a temporary state directory. The emulator stamps every ENI with the same CreationTime; doctor's clock
(`run(..., now=...)`) is what moves, so "young" and "old" need no waiting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from terwayctl.cloud.client import CloudClient
from terwayctl.cloud.models import network_interface_from_api
from terwayctl.doctor import DoctorOptions, Inputs, Report, Status, run
from terwayctl.doctor.podns import STORE_FILE
from terwayctl.node.store import EniRecord, Store
from tests.conftest import CliResult
from tests.fixtures.cloud import CloudEnv
from tests.fixtures.emulator import RunningEmulator

CONF = {"vswitches": {"cn-hangzhou-i": ["vsw-emupodi"], "cn-hangzhou-j": ["vsw-emupodj"]},
        "security_group": "sg-emudefault"}
TAG = "terway.node"


def test_creation_time_is_parsed_timezone_aware() -> None:
    eni = network_interface_from_api({"NetworkInterfaceId": "eni-1", "CreationTime": "2026-11-01T08:00Z"})
    assert eni.creation_time == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    shifted = network_interface_from_api({"NetworkInterfaceId": "eni-1", "CreationTime": "2026-11-01T16:00:00+08:00"})
    assert shifted.creation_time is not None and shifted.creation_time.utcoffset() is not None
    assert shifted.creation_time == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    assert network_interface_from_api({"NetworkInterfaceId": "eni-1"}).creation_time is None
    assert network_interface_from_api({"NetworkInterfaceId": "eni-1", "CreationTime": "soon"}).creation_time is None


def _doctor(client: CloudClient, conf: Path, now: float, **options: Any) -> Report:
    opts = DoctorOptions(scopes=frozenset({"cloud"}), check_ids=("cloud.leaked-enis",), eni_conf_file=conf,
                         **options)
    return run(opts, Inputs(cloud=lambda: client), now=lambda: now)


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "eni_conf.json"
    path.write_text(json.dumps(CONF))
    return path


def test_a_young_available_eni_is_not_reported_an_old_one_is(
        make_client: Callable[..., CloudClient], emulator: RunningEmulator, conf: Path) -> None:
    client = make_client(emulator)
    made = client.create_network_interface(vswitch_id="vsw-emupodi", security_group_ids=["sg-emudefault"],
                                           tags={TAG: "i-emunode1"})
    eni_id = made.network_interface_id
    seen = [e for e in client.describe_network_interfaces(network_interface_ids=[eni_id])]
    created = seen[0].creation_time
    assert created is not None and created.tzinfo is not None  # the emulator sends CreationTime, as ECS does
    born = created.timestamp()

    young = _doctor(client, conf, born + 5 * 60).finding("cloud.leaked-enis")
    assert young.status is Status.OK, young
    assert any(e.startswith(f"{eni_id} (vsw-emupodi): Available, created 5 min ago by the daemon of i-emunode1: "
                            "within the 10 min grace period") for e in young.evidence), young.evidence

    old = _doctor(client, conf, born + 11 * 60).finding("cloud.leaked-enis")
    assert old.status is Status.FAIL, old
    assert any(e.startswith(f"{eni_id} (vsw-emupodi, 1 IP(s)): Available, created by the daemon of i-emunode1 "
                            f"(terway.node), attached to nothing (created {created:%Y-%m-%dT%H:%M:%SZ}, past the "
                            "10 min grace period)")
               for e in old.evidence), old.evidence
    assert old.fix == f"aliyun ecs DeleteNetworkInterface --RegionId cn-hangzhou --NetworkInterfaceId {eni_id}"

    shorter = _doctor(client, conf, born + 5 * 60, leak_grace=60.0).finding("cloud.leaked-enis")
    assert shorter.status is Status.FAIL  # the grace period is an option


def _attached_eni(client: CloudClient, ips: int) -> tuple[str, list[str], float]:
    made = client.create_network_interface(vswitch_id="vsw-emupodi", security_group_ids=["sg-emudefault"],
                                           secondary_ip_count=ips, tags={TAG: "i-emunode1"})
    client.attach_network_interface(made.network_interface_id, "i-emunode1")
    eni = client.describe_network_interfaces(network_interface_ids=[made.network_interface_id])[0]
    assert eni.creation_time is not None
    return eni.network_interface_id, list(eni.secondary_ips), eni.creation_time.timestamp()


def _store(state_dir: Path, eni_id: str, ips: list[str]) -> Store:
    state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(state_dir / STORE_FILE)
    store.add_eni(EniRecord(eni_id, "02:00:00:00:00:01", "vsw-emupodi", "192.168.32.0/19", "192.168.63.253",
                            "", 15), ips)
    return store


def test_a_secondary_ip_no_store_knows_is_reported_with_the_unassign_line(
        make_client: Callable[..., CloudClient], emulator: RunningEmulator, conf: Path, tmp_path: Path) -> None:
    client = make_client(emulator)
    eni_id, ips, born = _attached_eni(client, 3)
    assert len(ips) == 3
    state = tmp_path / "state"
    store = _store(state, eni_id, ips)  # the daemon holds all three
    try:
        options = {"state_dir": state, "instance_ids": ("i-emunode1",)}
        healthy = _doctor(client, conf, born + 3600, **options).finding("cloud.leaked-enis")
        assert healthy.status is Status.OK, healthy
        assert (f"secondary IPs of 1 ENI(s) of i-emunode1 (older than 10 min, no call in flight) against the daemon "
                f"store {state / STORE_FILE}: 3 IP(s) known") in healthy.evidence

        # an IP assigned behind the daemon's back (or one the daemon lost track of): the cloud has it, no store does
        extra = client.assign_private_ip_addresses(eni_id, count=1)
        leaked = _doctor(client, conf, born + 3600, **options).finding("cloud.leaked-enis")
        assert leaked.status is Status.FAIL, leaked
        assert (f"{eni_id} on i-emunode1 (vsw-emupodi, an ENI the store knows): secondary IP(s) {extra[0]} assigned "
                f"in the cloud, unknown to the daemon store {state / STORE_FILE}") in leaked.evidence
        assert leaked.fix == (f"aliyun ecs UnassignPrivateIpAddresses --RegionId cn-hangzhou --NetworkInterfaceId "
                              f"{eni_id} --PrivateIpAddress.1 {extra[0]}")

        young = _doctor(client, conf, born + 60, **options).finding("cloud.leaked-enis")
        assert young.status is Status.OK  # the ENI is younger than the grace period: not judged

        intent = store.begin_intent("AssignPrivateIpAddresses", {"count": 1}, eni_id=eni_id)
        busy = _doctor(client, conf, born + 3600, **options).finding("cloud.leaked-enis")
        assert busy.status is Status.OK, busy  # an assign in flight: its IP is not in the store yet
        store.end_intent(intent)

        client.unassign_private_ip_addresses(eni_id, extra)  # the fix, as printed, done through the SDK
        assert _doctor(client, conf, born + 3600, **options).finding("cloud.leaked-enis").status is Status.OK
    finally:
        store.close()


def test_without_a_daemon_store_the_ips_are_not_judged(
        make_client: Callable[..., CloudClient], emulator: RunningEmulator, conf: Path, tmp_path: Path) -> None:
    client = make_client(emulator)
    _attached_eni(client, 2)
    found = _doctor(client, conf, datetime(2027, 1, 1, tzinfo=UTC).timestamp(),
                    state_dir=tmp_path / "none").finding("cloud.leaked-enis")
    assert found.status is Status.OK, found
    assert (f"secondary IPs no daemon knows: not checked: no daemon store at {tmp_path / 'none' / STORE_FILE} "
            "(run doctor on a node, or pass --state-dir)") in found.evidence


def test_the_cli_passes_the_state_dir_and_the_grace_period(
        cli: Callable[..., CliResult], make_client: Callable[..., CloudClient], emulator: RunningEmulator,
        conf: Path, tmp_path: Path, cloud_env: CloudEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "emulator")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "emulator")
    client = make_client(emulator)
    eni_id, ips, _ = _attached_eni(client, 2)
    store = _store(tmp_path / "state", eni_id, ips[:1])  # the daemon lost track of the second IP
    store.close()
    base = ("--endpoint", emulator.url, "--region", emulator.region, "doctor", "--check", "cloud.leaked-enis",
            "--eni-conf", str(conf), "--instance-id", "i-emunode1", "--state-dir", str(tmp_path / "state"))
    result = cli(*base)
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert (f"    fix: aliyun ecs UnassignPrivateIpAddresses --RegionId cn-hangzhou --NetworkInterfaceId {eni_id} "
            f"--PrivateIpAddress.1 {ips[1]}") in result.stdout.splitlines(), result.stdout
    # the emulator stamps its ENIs 2026-11-01: a grace period longer than their age hides them
    age_minutes = int((time.time() - datetime(2026, 11, 1, tzinfo=UTC).timestamp()) / 60)
    patient = cli(*base, "--leak-grace", str(age_minutes + 60))
    assert patient.exit_code == 0, (patient.stdout, patient.stderr)
    assert cli(*base, "--leak-grace", "-1").exit_code == 2
