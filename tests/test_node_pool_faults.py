"""The pool under cloud faults, end to end (root; docs/node.md "The intent log"): emulator + VPC router
namespace + daemons + the real `terway` plugin. Lost replies on every mutating action during a burst,
a daemon killed with SIGKILL between writing an intent and the reply, reconciliation of what was
changed behind the daemon's back, pool shrink above max_pool_size, vSwitch back-off and fail-over,
EniPerInstanceLimitExceeded and QuotaExceeded.PrivateIpAddress. Every wait is for a condition."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from terwayctl.emulator import FaultSpec
from terwayctl.node.client import ask_status
from terwayctl.node.config import ENI_CREATOR_TAG
from tests.fixtures import node as node_fixtures
from tests.fixtures.node import POD_VSWITCH, CniResult, Lab, Node, Pod, cloud_environ, new_client, wait_for

SMALL_VSWITCH = "vsw-small"  # a /28: 12 usable addresses
CONF: dict[str, Any] = {**node_fixtures.ENI_CONF, "min_pool_size": 2, "max_pool_size": 5, "ip_pool_sync_period": "1s"}


@pytest.fixture(autouse=True)
def _scenario(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The node lab with one more, tiny pod vSwitch; subprocess daemons get CONF."""
    scenario = json.loads(json.dumps(node_fixtures.SCENARIO))
    scenario["vswitches"].append({"id": SMALL_VSWITCH, "zone": node_fixtures.ZONE, "cidr": "10.0.64.0/28"})
    monkeypatch.setattr(node_fixtures, "SCENARIO", scenario)
    monkeypatch.setattr(node_fixtures, "ENI_CONF", CONF)
    yield


# --- helpers ------------------------------------------------------------------------------------------


def add(node: Node, pod: Pod, tries: int = 40) -> str:
    """ADD as kubelet does it: a failed ADD (code 11, try again later) is retried."""
    result = node.cni("ADD", pod)
    for _ in range(tries):
        if result.code == 0:
            return result.ip
        time.sleep(0.25)
        result = node.cni("ADD", pod)
    raise AssertionError(result.out)


def store_rows(node: Node, query: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{node.state_dir / 'daemon.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        return list(conn.execute(query).fetchall())
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def cloud_view(lab: Lab, node: Node) -> tuple[dict[str, set[str]], list[str]]:
    """The node's secondary ENIs with their IPs, and its Available (leaked) ENIs."""
    client = new_client(lab.url)
    try:
        found = client.describe_network_interfaces()
    finally:
        client.close()
    attached = {ni.network_interface_id: set(ni.private_ips) for ni in found
                if ni.instance_id == node.instance_id and ni.type != "Primary"}
    leaked = [ni.network_interface_id for ni in found
              if ni.status == "Available" and (ENI_CREATOR_TAG, node.instance_id) in ni.tags]
    return attached, leaked


def store_view(node: Node) -> dict[str, set[str]]:
    view: dict[str, set[str]] = {eni: set() for (eni,) in store_rows(node, "SELECT eni_id FROM enis")}
    for ip, eni in store_rows(node, "SELECT ip, eni_id FROM ips"):
        view.setdefault(eni, set()).add(ip)
    return view


def consistent(lab: Lab, node: Node) -> bool:
    attached, leaked = cloud_view(lab, node)
    return not leaked and attached == store_view(node) and not store_rows(node, "SELECT id FROM intents")


def assert_consistent(lab: Lab, node: Node) -> None:
    assert wait_for(lambda: consistent(lab, node), timeout=30, step=0.2), (cloud_view(lab, node), store_view(node))
    check = node.ipam_check()
    assert check.returncode == 0, check.stdout + check.stderr


def idle(node: Node) -> int:
    return int(ask_status(node.socket)["pool"]["idle"])


def burst(node: Node, pods: list[Pod]) -> list[str]:
    with ThreadPoolExecutor(max_workers=len(pods)) as pool:
        return list(pool.map(lambda p: add(node, p), pods))


def delete_all(node: Node, pods: list[Pod]) -> None:
    with ThreadPoolExecutor(max_workers=len(pods)) as pool:
        assert all(r.code == 0 for r in pool.map(lambda p: node.cni("DEL", p), pods))


# --- lost replies ---------------------------------------------------------------------------------------

MUTATING = ("CreateNetworkInterface", "AttachNetworkInterface", "AssignPrivateIpAddresses",
            "UnassignPrivateIpAddresses")


def test_burst_with_lost_replies_on_every_action_leaks_nothing_and_shrinks(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    for action in MUTATING:
        vpc_lab.emulator.faults.set(action, failure_ratio=0.3, fail_after_commit=True)
    node.start(eni_conf=CONF)
    pods = [node.pod(f"lost-{i}") for i in range(30)]
    ips = burst(node, pods)
    assert len(set(ips)) == 30
    attached, _ = cloud_view(vpc_lab, node)
    held = set().union(*attached.values())
    assert set(ips) <= held  # every IP a pod got is assigned to this node's ENIs in the cloud
    delete_all(node, pods)
    assert wait_for(lambda: idle(node) <= CONF["max_pool_size"], timeout=30, step=0.2)  # shrink after DEL
    vpc_lab.emulator.faults.clear()
    assert_consistent(vpc_lab, node)


# --- crash between intent and reply -----------------------------------------------------------------------


def _wait_intent(node: Node, action: str) -> None:
    assert wait_for(lambda: bool(store_rows(node, f"SELECT id FROM intents WHERE action = '{action}'")),
                    timeout=30, step=0.01), (node.dir / "daemon.log").read_text()[-2000:]


@pytest.mark.parametrize("action", MUTATING)
def test_sigkill_between_intent_and_reply_then_restart(vpc_lab: Lab, action: str) -> None:
    node = vpc_lab.node(0)
    slow = FaultSpec(latency_ms=1500)  # the call is on its way (or about to leave) when the daemon dies
    if action in ("CreateNetworkInterface", "AttachNetworkInterface"):
        vpc_lab.emulator.faults.set(action, slow)  # the first ENI is made right after start
    node.spawn()
    pods = [node.pod(f"k-{i}") for i in range(12)]
    if action == "UnassignPrivateIpAddresses":
        burst(node, pods)  # 12 allocated; DEL of all leaves 12 + idle > max: the pool shrinks
    vpc_lab.emulator.faults.set(action, slow)
    with ThreadPoolExecutor(max_workers=12) as pool:
        if action == "UnassignPrivateIpAddresses":
            futures = [pool.submit(node.cni, "DEL", p) for p in pods]
        else:
            futures = [pool.submit(node.cni, "ADD", p) for p in pods]
        _wait_intent(node, action)
        assert node.process is not None
        dead = node.process.pid
        node.kill()  # SIGKILL: the intent is on disk, the reply never arrives
        for future in futures:
            future.result(timeout=60)
    before = cloud_view(vpc_lab, node)
    vpc_lab.emulator.faults.clear()
    # a call that left before the kill is still carried out by the cloud: let it land (bounded; a
    # call the kill stopped before it left never lands, and the restart must cope with both)
    wait_for(lambda: cloud_view(vpc_lab, node) != before, timeout=4, step=0.1)
    node.spawn()
    # settled before the socket opened (the new daemon may have its own calls in flight already)
    assert not store_rows(node, f"SELECT id FROM intents WHERE pid = {dead}")
    assert "has no known outcome" in (node.dir / "daemon.log").read_text()
    ips = [add(node, p) for p in pods] if action != "UnassignPrivateIpAddresses" else []
    assert len(set(ips)) == len(ips)
    attached, _ = cloud_view(vpc_lab, node)
    assert set(ips) <= set().union(set(), *attached.values())
    if action == "UnassignPrivateIpAddresses":
        for p in pods:
            assert node.cni("DEL", p).code == 0
    else:
        delete_all(node, pods)
    assert_consistent(vpc_lab, node)


# --- reconciliation -------------------------------------------------------------------------------------------


def test_reconcile_repairs_what_changed_behind_the_daemons_back(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    daemon = node.start(eni_conf={**CONF, "min_pool_size": 0})  # no refill races the checks below
    pods = [node.pod(f"r-{i}") for i in range(5)]
    ips = burst(node, pods)
    for pod in pods[3:]:
        assert node.cni("DEL", pod).code == 0
    pods, ips = pods[:3], ips[:3]
    assert_consistent(vpc_lab, node)
    client = new_client(vpc_lab.url)
    vpc_lab.clients.append(client)
    # 1. idle IPs unassigned behind the daemon's back: dropped, never handed out
    attached, _ = cloud_view(vpc_lab, node)
    eni_id, eni_ips = next(iter(attached.items()))
    assert daemon.pool is not None
    primary = daemon.pool.enis[eni_id].record.primary_ip
    victims = sorted(eni_ips - set(ips) - {primary})[:2]
    assert victims
    client.unassign_private_ip_addresses(eni_id, victims)
    assert wait_for(lambda: victims[0] not in store_view(node).get(eni_id, set()), timeout=15, step=0.1), (victims, store_view(node), cloud_view(vpc_lab, node))
    more = [node.pod(f"r2-{i}") for i in range(4)]
    burst(node, more)
    assert_consistent(vpc_lab, node)
    # 2. a leaked Available ENI with the daemon's tag: deleted
    leaked = client.create_network_interface(vswitch_id=POD_VSWITCH, security_group_ids=["sg-lab"],
                                             tags={ENI_CREATOR_TAG: node.instance_id})
    assert wait_for(lambda: leaked.network_interface_id not in cloud_view(vpc_lab, node)[1]
                    and not cloud_view(vpc_lab, node)[1], timeout=15, step=0.1)
    # 3. the ENI detached behind the daemon's back: dropped (its pods' datapath torn down), new ENI for new pods
    client.detach_network_interface(eni_id, node.instance_id)
    assert wait_for(lambda: eni_id not in store_view(node), timeout=15, step=0.1)
    late = node.pod("late")
    ip = add(node, late)
    attached, _ = cloud_view(vpc_lab, node)
    assert eni_id not in attached and any(ip in v for v in attached.values())
    for p in [*pods, *more, late]:
        assert node.cni("DEL", p).code == 0
    assert_consistent(vpc_lab, node)


def test_ipam_check_repair_runs_reconciliation_now(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    node.start(eni_conf={**CONF, "ip_pool_sync_period": "1h"})
    pod = node.pod("x")
    add(node, pod)
    attached, _ = cloud_view(vpc_lab, node)
    eni_id = next(iter(attached))
    client = new_client(vpc_lab.url)
    vpc_lab.clients.append(client)
    extra = client.assign_private_ip_addresses(eni_id, count=2)  # behind the daemon's back
    check = node.ipam_check()
    assert check.returncode == 1
    assert "ip-not-in-store" in check.stdout and "reconcile adopts it idle" in check.stdout
    assert "next reconciliation" in check.stdout
    argv = [sys.executable, "-m", "terwayctl", "ipam", "check", "--repair", "--instance-id", node.instance_id,
            "--state-dir", str(node.state_dir), "--node-netns", node.ns]
    done = subprocess.run(argv, env=cloud_environ(vpc_lab.url), capture_output=True, text=True, timeout=90,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(extra) <= store_view(node)[eni_id]
    assert node.cni("DEL", pod).code == 0


def test_ipam_check_does_not_report_a_refill_in_flight(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    node.start(eni_conf=CONF)
    first = node.pod("first")
    add(node, first)
    vpc_lab.emulator.faults.set("AssignPrivateIpAddresses", latency_ms=400)
    pods = [node.pod(f"f-{i}") for i in range(6)]
    with ThreadPoolExecutor(max_workers=7) as pool:
        futures = [pool.submit(add, node, p) for p in pods]
        checks = [node.ipam_check() for _ in range(3)]
        for future in futures:
            future.result(timeout=60)
    for check in checks:
        assert "ip-not-in-store" not in check.stdout and "ip-not-in-cloud" not in check.stdout, check.stdout
    vpc_lab.emulator.faults.clear()
    delete_all(node, [first, *pods])
    assert_consistent(vpc_lab, node)


# --- vSwitches and quotas ------------------------------------------------------------------------------------


def test_vswitch_out_of_addresses_backs_off_and_fails_over(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    conf = {**CONF, "vswitches": {node_fixtures.ZONE: [SMALL_VSWITCH, POD_VSWITCH]}, "max_pool_size": 40}
    node.start(eni_conf=conf)
    pods = [node.pod(f"v-{i}") for i in range(20)]  # one ENI of 20+ IPs does not fit a /28
    ips = burst(node, pods)
    assert len(set(ips)) == 20
    status = ask_status(node.socket)
    errors = {e["vswitch_id"]: e for e in status["pool"]["vswitch_errors"]}
    assert errors[SMALL_VSWITCH]["code"] == "InvalidVSwitchId.IpNotEnough"
    assert errors[SMALL_VSWITCH]["request_id"] and errors[SMALL_VSWITCH]["backed_off_for"] > 0
    assert "terwayctl vswitch add" in errors[SMALL_VSWITCH]["fix"]
    delete_all(node, pods)
    assert_consistent(vpc_lab, node)


def test_every_vswitch_out_of_addresses_names_the_code_vswitch_time_and_fix(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    conf = {**CONF, "vswitches": {node_fixtures.ZONE: [SMALL_VSWITCH]}, "min_pool_size": 0}
    node.start(eni_conf=conf)
    pods = [node.pod(f"e-{i}") for i in range(14)]  # more than a /28 holds
    with ThreadPoolExecutor(max_workers=14) as pool:
        results = list(pool.map(lambda p: node.cni("ADD", p), pods))
    failed = [r for r in results if r.code != 0]
    assert failed
    again = node.cni("ADD", next(p for p, r in zip(pods, results, strict=True) if r.code != 0))
    assert again.out.get("code") == 11, again.out
    text = again.out.get("msg", "") + " " + again.out.get("details", "")
    assert "InvalidVSwitchId.IpNotEnough" in text and SMALL_VSWITCH in text, text
    assert "request" in text and "terwayctl vswitch add" in text, text
    assert "PoolEmpty:" not in text
    for p in pods:
        assert node.cni("DEL", p).code == 0
    assert_consistent(vpc_lab, node)


def test_eni_per_instance_limit_and_ip_quota(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    daemon = node.start(eni_conf={**CONF, "min_pool_size": 0})
    first = node.pod("q-0")
    add(node, first)
    assert daemon.pool is not None
    # the ENI's IP quota is reached: the pool marks it full and takes another ENI
    vpc_lab.emulator.faults.set("AssignPrivateIpAddresses", failure_ratio=1.0,
                                failure_code="QuotaExceeded.PrivateIpAddress")
    pods = [node.pod(f"q-{i}") for i in range(1, 6)]
    burst(node, pods)
    assert any(e["full"] for e in daemon.pool.snapshot())
    assert len(daemon.pool.enis) >= 2
    # no more ENIs for the instance: the limit is lowered, the ADD fails fast, the created ENI is not leaked
    vpc_lab.emulator.faults.clear()
    vpc_lab.emulator.faults.set("AttachNetworkInterface", failure_ratio=1.0, failure_code="EniPerInstanceLimitExceeded")
    enis = len(daemon.pool.enis)
    more = [node.pod(f"q2-{i}") for i in range(30)]  # more than the free slots of the ENIs: a new ENI
    results: list[CniResult] = []

    def lowered() -> bool:
        with ThreadPoolExecutor(max_workers=30) as pool:
            results.extend(pool.map(lambda p: node.cni("ADD", p), more))
        return daemon.pool is not None and daemon.pool.max_enis == enis

    assert wait_for(lowered, timeout=30, step=0.3)
    failed = [r for r in results if r.out.get("code") == 11]
    assert failed and any("EniPerInstanceLimitExceeded" in r.out.get("details", "") + r.out.get("msg", "")
                          for r in failed), [r.out for r in results]
    vpc_lab.emulator.faults.clear()
    for p in [first, *pods, *more]:
        assert node.cni("DEL", p).code == 0
    assert_consistent(vpc_lab, node)


def test_store_schema_has_the_intent_log(tmp_path: Path) -> None:
    from terwayctl.node.store import Store

    with Store(tmp_path / "s.sqlite") as store:
        intent = store.begin_intent("AssignPrivateIpAddresses", {"count": 3}, eni_id="eni-x", client_token="t")
        assert [(i.action, i.eni_id, i.params, i.client_token) for i in store.intents()] == [
            ("AssignPrivateIpAddresses", "eni-x", {"count": 3}, "t")]
        store.end_intent(intent)
        assert store.intents() == []



def test_sigkill_during_the_delete_of_a_leaked_eni_then_restart(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    node.spawn()
    client = new_client(vpc_lab.url)
    vpc_lab.clients.append(client)
    vpc_lab.emulator.faults.set("DeleteNetworkInterface", latency_ms=1500)
    leaked = client.create_network_interface(vswitch_id=POD_VSWITCH, security_group_ids=["sg-lab"],
                                             tags={ENI_CREATOR_TAG: node.instance_id})
    _wait_intent(node, "DeleteNetworkInterface")  # the periodic pass is deleting it
    assert node.process is not None
    dead = node.process.pid
    node.kill()
    vpc_lab.emulator.faults.clear()
    wait_for(lambda: leaked.network_interface_id not in cloud_view(vpc_lab, node)[1], timeout=4, step=0.1)
    node.spawn()
    assert not store_rows(node, f"SELECT id FROM intents WHERE pid = {dead}")
    assert leaked.network_interface_id not in cloud_view(vpc_lab, node)[1]
    pod = node.pod("after")
    add(node, pod)
    assert node.cni("DEL", pod).code == 0
    assert_consistent(vpc_lab, node)
