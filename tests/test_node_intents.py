"""The daemon's intent log (terwayctl/node/intents.py) against the emulator, through the real aliyun
SDK over HTTP: for each mutating action a lost reply (the emulator's fail_after_commit) and a
duplicate delivery (the same call carried out twice), and the store's intent rows. Crashes between
intent and call are tested with a real daemon killed by SIGKILL (tests/test_node_pool_faults.py)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from terwayctl.cloud.client import CloudClient
from terwayctl.cloud.errors import CloudError
from terwayctl.emulator.signing import signed_params
from terwayctl.node.config import ENI_CREATOR_TAG
from terwayctl.node.intents import Ledger, Unresolved
from terwayctl.node.store import EniRecord, Store
from tests.fixtures.emulator import RunningEmulator

INSTANCE = "i-emunode1"
VSWITCH = "vsw-emupodi"
GROUP = "sg-emudefault"
TAGS = {ENI_CREATOR_TAG: INSTANCE}


class Wire:
    """What reaches the emulator, per action; and faults for the next N calls of an action."""

    def __init__(self, running: RunningEmulator) -> None:
        self.running = running
        self.calls: Counter[str] = Counter()
        self.lose: dict[str, int] = {}
        self.twice: set[str] = set()
        self._lock = threading.Lock()
        emulator = running.emulator
        original = emulator.handle

        def handle(method: str, params: Mapping[str, str]) -> Any:
            action = params.get("Action", "?")
            with self._lock:
                self.calls[action] += 1
                lose = self.lose.get(action, 0) > 0
                if lose:
                    self.lose[action] -= 1
            if lose:  # the cloud does the work; the reply is lost (the emulator's fail_after_commit)
                emulator.faults.set(action, failure_ratio=1.0, fail_after_commit=True)
                try:
                    return original(method, params)
                finally:
                    emulator.faults.clear(action)
            if action in self.twice:  # delivered twice: the second delivery's reply reaches the client
                original(method, params)
                again = {**params, "SignatureNonce": uuid.uuid4().hex}
                again.pop("Signature", None)
                return original(method, signed_params(method, again, running.access_key_secret))
            return original(method, params)

        emulator.handle = handle  # type: ignore[method-assign]


@pytest.fixture
def wire(emulator: RunningEmulator) -> Wire:
    return Wire(emulator)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "daemon.sqlite") as opened:
        yield opened


@pytest.fixture
def ledger(emulator: RunningEmulator, make_client: Callable[..., CloudClient], store: Store) -> Ledger:
    return Ledger(make_client(emulator), store, INSTANCE, sleep=lambda _s: None)


def _ours(ledger: Ledger) -> list[Any]:
    return [ni for ni in ledger.cloud.describe_network_interfaces(vswitch_id=VSWITCH) if (ENI_CREATOR_TAG, INSTANCE)
            in ni.tags]


def _create(ledger: Ledger, secondary: int = 0) -> str:
    ni = ledger.cloud.create_network_interface(vswitch_id=VSWITCH, security_group_ids=[GROUP],
                                               secondary_ip_count=secondary, tags=TAGS)
    return ni.network_interface_id


def _record(ledger: Ledger, eni_id: str) -> None:
    ni = ledger.describe(eni_id)
    assert ni is not None
    ledger.store.add_eni(EniRecord(eni_id, ni.mac_address, VSWITCH, "192.168.32.0/19", "192.168.63.253",
                                   ni.primary_ip, 10), ni.private_ips)


@pytest.mark.parametrize("lost", [1, 6])  # one lost reply (the client's retry), more than its whole budget
def test_create_lost_reply_makes_one_eni(ledger: Ledger, wire: Wire, lost: int) -> None:
    wire.lose["CreateNetworkInterface"] = lost
    created = ledger.create_network_interface(vswitch_id=VSWITCH, security_group_ids=[GROUP], secondary_ip_count=2,
                                              description="t", tags=TAGS)
    assert [ni.network_interface_id for ni in _ours(ledger)] == [created.network_interface_id]
    assert len(created.private_ips) == 3
    assert wire.calls["CreateNetworkInterface"] == lost + 1
    assert ledger.store.intents() == []


def test_create_duplicate_delivery_makes_one_eni(ledger: Ledger, wire: Wire) -> None:
    wire.twice.add("CreateNetworkInterface")
    created = ledger.create_network_interface(vswitch_id=VSWITCH, security_group_ids=[GROUP], secondary_ip_count=0,
                                              description="t", tags=TAGS)
    assert [ni.network_interface_id for ni in _ours(ledger)] == [created.network_interface_id]


@pytest.mark.parametrize("lost", [1, 6])
def test_assign_lost_reply_assigns_once_and_the_store_holds_exactly_those(ledger: Ledger, wire: Wire,
                                                                          lost: int) -> None:
    eni = _create(ledger)
    _record(ledger, eni)
    known = {r.ip for r in ledger.store.ips()}
    wire.lose["AssignPrivateIpAddresses"] = lost
    ips = ledger.assign_private_ip_addresses(eni, 3, known)
    cloud = ledger.describe(eni)
    assert cloud is not None and len(ips) == 3
    assert set(cloud.private_ips) == known | set(ips)
    assert {r.ip for r in ledger.store.ips()} == set(cloud.private_ips)
    assert ledger.store.intents() == []


def test_assign_lost_reply_after_every_retry_adopts_what_the_cloud_shows(ledger: Ledger, wire: Wire) -> None:
    eni = _create(ledger)
    _record(ledger, eni)
    known = {r.ip for r in ledger.store.ips()}
    wire.lose["AssignPrivateIpAddresses"] = 100  # no reply ever reaches the daemon
    ips = ledger.assign_private_ip_addresses(eni, 4, known)
    cloud = ledger.describe(eni)
    assert cloud is not None and len(ips) == 4 and set(cloud.private_ips) == known | set(ips)
    assert {r.ip for r in ledger.store.ips()} == set(cloud.private_ips)


def test_assign_duplicate_delivery_assigns_once(ledger: Ledger, wire: Wire) -> None:
    eni = _create(ledger)
    _record(ledger, eni)
    wire.twice.add("AssignPrivateIpAddresses")
    ips = ledger.assign_private_ip_addresses(eni, 2, {r.ip for r in ledger.store.ips()})
    cloud = ledger.describe(eni)
    assert cloud is not None and len(cloud.private_ips) == 3 and set(ips) < set(cloud.private_ips)


@pytest.mark.parametrize("fault", ["lost", "twice"])
def test_attach_is_not_repeated_blindly(ledger: Ledger, wire: Wire, fault: str) -> None:
    eni = _create(ledger)
    if fault == "lost":
        wire.lose["AttachNetworkInterface"] = 1
    else:
        wire.twice.add("AttachNetworkInterface")  # the client sees InvalidOperation.InvalidEniState
    ledger.attach_network_interface(eni)
    ni = ledger.describe(eni)
    assert ni is not None and ni.status == "InUse" and ni.instance_id == INSTANCE
    # the cloud layer did not retry the InternalError: the daemon read the cloud instead
    assert wire.calls["AttachNetworkInterface"] == 1
    assert ledger.store.intents() == []


def test_attach_refused_ends_the_intent_and_raises(ledger: Ledger, wire: Wire) -> None:
    eni = _create(ledger)
    ledger.cloud.attach_network_interface(eni, "i-emunode2")  # another instance holds it: refused
    with pytest.raises(CloudError):
        ledger.attach_network_interface(eni)
    assert ledger.store.intents() == []


@pytest.mark.parametrize("fault", ["lost", "twice"])
def test_unassign_not_assigned_means_gone_never_idle(ledger: Ledger, wire: Wire, fault: str) -> None:
    eni = _create(ledger, secondary=4)
    _record(ledger, eni)
    ni = ledger.describe(eni)
    assert ni is not None
    release = [ip for ip in ni.private_ips if ip != ni.primary_ip][:3]
    if fault == "lost":
        wire.lose["UnassignPrivateIpAddresses"] = 1
    else:
        wire.twice.add("UnassignPrivateIpAddresses")  # the second delivery: InvalidIp.IpUnassigned
    gone, kept = ledger.unassign_private_ip_addresses(eni, release)
    assert sorted(gone) == sorted(release) and kept == []
    after = ledger.describe(eni)
    assert after is not None and not set(release) & set(after.private_ips)
    assert {r.ip for r in ledger.store.ips()} == set(after.private_ips)
    assert wire.calls["UnassignPrivateIpAddresses"] == 1
    assert ledger.store.intents() == []


def test_unassign_of_an_ip_unassigned_behind_the_daemons_back(ledger: Ledger) -> None:
    eni = _create(ledger, secondary=3)
    _record(ledger, eni)
    ni = ledger.describe(eni)
    assert ni is not None
    secondary = [ip for ip in ni.private_ips if ip != ni.primary_ip]
    ledger.cloud.unassign_private_ip_addresses(eni, secondary[:1])  # behind the daemon's back
    gone, kept = ledger.unassign_private_ip_addresses(eni, secondary)
    assert sorted(gone) == sorted(secondary) and kept == []
    assert {r.ip for r in ledger.store.ips()} == {ni.primary_ip}


@pytest.mark.parametrize("fault", ["lost", "twice"])
def test_detach_is_not_repeated_blindly(ledger: Ledger, wire: Wire, fault: str) -> None:
    eni = _create(ledger)
    ledger.cloud.attach_network_interface(eni, INSTANCE)
    if fault == "lost":
        wire.lose["DetachNetworkInterface"] = 1
    else:
        wire.twice.add("DetachNetworkInterface")
    ledger.detach_network_interface(eni)
    ni = ledger.describe(eni)
    assert ni is not None and ni.status in ("Detaching", "Available")
    assert wire.calls["DetachNetworkInterface"] == 1
    assert ledger.store.intents() == []


@pytest.mark.parametrize("fault", ["lost", "twice"])
def test_delete_is_not_repeated_blindly(ledger: Ledger, wire: Wire, fault: str) -> None:
    eni = _create(ledger)
    if fault == "lost":
        wire.lose["DeleteNetworkInterface"] = 1
    else:
        wire.twice.add("DeleteNetworkInterface")  # the second delivery: InvalidEniId.NotFound
    ledger.delete_network_interface(eni)
    assert ledger.describe(eni) is None
    assert wire.calls["DeleteNetworkInterface"] == 1
    assert ledger.store.intents() == []


def test_an_intent_is_on_disk_before_the_call_leaves(ledger: Ledger, wire: Wire, store: Store) -> None:
    seen: list[list[str]] = []
    emulator = wire.running.emulator
    inner = emulator.handle

    def handle(method: str, params: Mapping[str, str]) -> Any:
        if params.get("Action") == "CreateNetworkInterface":
            with Store(store.path, readonly=True) as other:  # another process's view: committed rows only
                seen.append([f"{i.action} {i.client_token == params.get('ClientToken')}" for i in other.intents()])
        return inner(method, params)

    emulator.handle = handle  # type: ignore[method-assign]
    ledger.create_network_interface(vswitch_id=VSWITCH, security_group_ids=[GROUP], secondary_ip_count=0,
                                    description="t", tags=TAGS)
    assert seen == [["CreateNetworkInterface True"]]
    assert store.intents() == []


def _impatient(emulator: RunningEmulator, make_client: Callable[..., CloudClient], store: Store) -> Ledger:
    from terwayctl.cloud.retry import RetryPolicy

    client = make_client(emulator, read_timeout=0.3,
                         retry=RetryPolicy(max_attempts=2, initial_backoff=0.001, max_backoff=0.01))
    return Ledger(client, store, INSTANCE, sleep=lambda _s: None)


def test_create_timing_out_every_time_makes_one_eni_and_keeps_its_intent(
    emulator: RunningEmulator, make_client: Callable[..., CloudClient], store: Store, ledger: Ledger, wire: Wire
) -> None:
    slow = _impatient(emulator, make_client, store)
    emulator.set_fault("CreateNetworkInterface", latency_ms=600)  # every reply after the client gave up
    with pytest.raises(Unresolved, match="no answer"):
        slow.create_network_interface(vswitch_id=VSWITCH, security_group_ids=[GROUP], secondary_ip_count=0,
                                      description="t", tags=TAGS)
    (intent,) = store.intents()  # unresolved: left for reconciliation, with its token
    assert intent.action == "CreateNetworkInterface" and intent.client_token
    assert wire.calls["CreateNetworkInterface"] == 6  # 3 sends by the daemon x 2 by the client, one token
    emulator.clear_faults()
    assert wait_for_cloud(lambda: len(_ours(ledger)) == 1)  # the sends that did land made ONE ENI
    again = ledger.cloud.create_network_interface(vswitch_id=VSWITCH, security_group_ids=[GROUP],
                                                  description="t", tags=TAGS, client_token=intent.client_token)
    assert [ni.network_interface_id for ni in _ours(ledger)] == [again.network_interface_id]


def test_attach_timing_out_reads_the_cloud_before_sending_again(
    emulator: RunningEmulator, make_client: Callable[..., CloudClient], store: Store, ledger: Ledger, wire: Wire
) -> None:
    eni = _create(ledger)
    slow = _impatient(emulator, make_client, store)
    emulator.set_fault("AttachNetworkInterface", latency_ms=600)
    slow.attach_network_interface(eni)  # resolved by DescribeNetworkInterfaces once the first send landed
    assert 2 <= wire.calls["AttachNetworkInterface"] <= 3  # the client never resent: the daemon did, after reading
    emulator.clear_faults()
    assert wait_for_cloud(lambda: (ni := ledger.describe(eni)) is not None and ni.status == "InUse"
                          and ni.instance_id == INSTANCE)
    assert store.intents() == []


def wait_for_cloud(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
