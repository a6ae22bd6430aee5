"""Each `lab fault`: inject it, see its effect, clear it, see it gone (one shared 2-node lab)."""

from __future__ import annotations

import subprocess

from terwayctl.kernel import netns
from terwayctl.lab import clear_faults, inject_fault, list_faults, list_pods, status
from terwayctl.lab.network import nft_list
from tests.fixtures.lab import RunningLab


def _ips(lab: RunningLab) -> dict[str, str]:
    return {p.name: p.ip for p in list_pods(lab.name)}


def _ns(lab: RunningLab, node: str) -> str:
    return f"twlab-{lab.name}-{node}"


def test_no_snat_cuts_pods_off_the_internet_until_cleared(shared_lab: RunningLab) -> None:
    lab = shared_lab
    assert lab.http("a").code == 0
    injected = lab.cli("fault", "no-snat")
    assert injected.code == 0 and "no-snat injected: deleted SNAT entry" in injected.stdout, injected
    assert lab.http("a").code != 0
    assert lab.http("node1").code == 0  # the node vSwitch keeps its entry
    assert not next(v for v in status(lab.name).vswitches if v.role == "pod").snat
    listed = lab.cli("fault", "list")
    assert any(line.startswith("no-snat") and " yes " in line for line in listed.stdout.splitlines())
    cleared = lab.cli("fault", "clear", "no-snat")
    assert cleared.code == 0 and "cleared" in cleared.stdout
    assert lab.http("a").code == 0


def test_forward_drop_on_a_node_breaks_its_pods(shared_lab: RunningLab) -> None:
    lab = shared_lab
    ips = _ips(lab)
    inject_fault(lab.name, "forward-drop", "node2")
    assert "policy drop" in nft_list(_ns(lab, "node2"), "ip", "filter")
    assert not lab.ping("a", ips["b"])
    clear_faults(lab.name, "forward-drop")
    assert nft_list(_ns(lab, "node2"), "ip", "filter") == ""
    assert lab.ping("a", ips["b"])


def test_deleted_pod_rule_breaks_the_pod_and_ipam_check_sees_it(shared_lab: RunningLab) -> None:
    lab = shared_lab
    ips = _ips(lab)
    record = inject_fault(lab.name, "del-rule", "a")
    assert record.detail["ip"] == ips["a"]
    assert not lab.ping("a", ips["b"])  # leaves through eth0: the VPC's source check drops it
    check = lab.exec("node1", "sh", "-c",
                     "terwayctl ipam check --instance-id $TERWAYCTL_INSTANCE_ID --state-dir $TERWAYCTL_STATE_DIR")
    assert check.code == 1 and "allocation-without-rules" in check.stdout, check
    clear_faults(lab.name, "del-rule")
    assert lab.ping("a", ips["b"])


def test_rp_filter_on_a_node(shared_lab: RunningLab) -> None:
    lab = shared_lab
    inject_fault(lab.name, "rp-filter", "node1")
    assert netns.read_sysctl(_ns(lab, "node1"), "net.ipv4.conf.all.rp_filter") == "1"
    assert ("rp-filter", "node1", True) in {(r.kind, r.target, r.active) for r in list_faults(lab.name)}
    clear_faults(lab.name)
    assert netns.read_sysctl(_ns(lab, "node1"), "net.ipv4.conf.all.rp_filter") == "0"


def test_docker_port_dnat_like_docker(shared_lab: RunningLab) -> None:
    lab = shared_lab
    injected = lab.cli("fault", "docker-port", "--node", "node1", "--port", "8081")
    assert injected.code == 0, injected.stderr
    rules = nft_list(_ns(lab, "node1"), "ip", "nat")
    assert "chain DOCKER" in rules and "tcp dport 8081" in rules and "dnat to 172.17.0.2:80" in rules
    links = subprocess.run(["ip", "-n", _ns(lab, "node1"), "-br", "addr", "show", "docker0"], capture_output=True,
                           text=True, check=False).stdout
    assert "172.17.0.1/16" in links
    assert lab.cli("fault", "clear").code == 0
    assert nft_list(_ns(lab, "node1"), "ip", "nat") == ""


def test_exhausted_vswitch_has_no_free_ip_and_fails_new_enis(shared_lab: RunningLab) -> None:
    lab = shared_lab
    record = inject_fault(lab.name, "exhaust")
    assert record.detail["taken"] > 8000
    pod_vsw = next(v for v in status(lab.name).vswitches if v.vswitch_id == record.target)
    assert pod_vsw.free_ips == 0
    # more pods than the pool holds: once the idle IPs are gone, ADD fails with "try again later"
    failed = None
    for i in range(12):
        result = lab.cli("pod", "add", f"x{i}", "--node", "node1")
        if result.code != 0:
            failed = result
            break
    assert failed is not None and "IpNotEnough" in failed.stderr, failed
    clear_faults(lab.name, "exhaust")
    assert next(v for v in status(lab.name).vswitches if v.vswitch_id == record.target).free_ips > 8000
    for pod in list_pods(lab.name):
        if pod.name.startswith("x"):
            assert lab.cli("pod", "del", pod.name).code == 0


def test_fault_bad_input(shared_lab: RunningLab) -> None:
    lab = shared_lab
    unknown_node = lab.cli("fault", "rp-filter", "--node", "node9")
    assert unknown_node.code == 2 and "error: " in unknown_node.stderr and "hint: " in unknown_node.stderr
    unknown_pod = lab.cli("fault", "del-rule", "--pod", "nope")
    assert unknown_pod.code == 2
    unknown_kind = lab.cli("fault", "clear", "bogus")
    assert unknown_kind.code == 2 and "one of" in unknown_kind.stderr
    inject_fault(lab.name, "rp-filter", "node2")
    twice = lab.cli("fault", "rp-filter", "--node", "node2")
    assert twice.code == 2 and "already active" in twice.stderr
    clear_faults(lab.name)
    assert lab.cli("fault", "clear").stdout.strip() == "no active fault to clear"


def test_every_fault_kind_has_a_lab_fault_command() -> None:
    """`lab fault <kind>` exists for every kind the lab can inject (and doctor's tests use)."""
    import typer.main

    from terwayctl.cli.lab import fault_app
    from terwayctl.lab.faults import KINDS

    commands = set(typer.main.get_command(fault_app).commands)  # type: ignore[attr-defined]
    assert set(KINDS) <= commands
