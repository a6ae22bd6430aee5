"""The eni_conf settings `terwayctl render` writes, honoured by a real `terwayctl daemon` (emulator, VPC
router and node namespaces of tests/fixtures/node.py, the real `terway` plugin), or refused at start
with the reason: credential_path, region_id, eniip_virtual_type, ip_stack, enable_eni_trunking."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from terwayctl.core.errors import InvalidInput
from terwayctl.kernel.datapath import ipvlan_supported
from terwayctl.node.client import DaemonUnavailable, ask_status
from terwayctl.node.config import PoolMode, VirtualType, choose_datapath, node_settings
from tests.fixtures.node import ENI_CONF, ZONE, Lab, Node, cloud_environ
from tests.test_datapath_veth import ip_json

EMULATOR_KEY, EMULATOR_SECRET = "emulator", "emulator"  # the key pair of tests/fixtures/node.py SCENARIO
WRONG_KEY, WRONG_SECRET = "LTAI5tNotThisOne", "env-secret-never-used-0001"


# --- eni_conf parsing and the datapath choice (no kernel, no cloud) ------------------------------------


def test_node_settings_reads_the_rendered_keys() -> None:
    settings = node_settings({"region_id": "cn-beijing", "credential_path": "/etc/terway/credentials",
                              "eniip_virtual_type": "IPVlan", "ip_stack": "ipv4"})
    assert settings.region_id == "cn-beijing"
    assert settings.credential_path == Path("/etc/terway/credentials")
    assert settings.virtual_type is VirtualType.IPVLAN  # upstream spelling, any case
    assert node_settings({}).virtual_type is VirtualType.VETH and node_settings({}).region_id is None
    assert node_settings({"ip_stack": "Dual"}).ip_stack == "dual"  # run where the node is eligible (node/ipv6.py)
    assert node_settings({}).ip_stack == "ipv4"


@pytest.mark.parametrize(("conf", "message"), [
    ({"ip_stack": "ipv6"}, "eni_conf: ip_stack is ipv6, but this daemon gives every pod an IPv4 address"),
    ({"ip_stack": "v4"}, "eni_conf: ip_stack must be ipv4 or dual, got 'v4'"),
    ({"eniip_virtual_type": "macvlan"}, "eni_conf: eniip_virtual_type must be veth or ipvlan, got 'macvlan'"),
    ({"enable_eni_trunking": True}, "eni_conf: enable_eni_trunking is set, but this daemon has no trunk ENI"),
    ({"region_id": 7}, "eni_conf: region_id must be a string"),
    ({"credential_path": ""}, "eni_conf: credential_path must be the path of a directory"),
])
def test_node_settings_refuses_what_it_cannot_honour(conf: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        node_settings(conf)
    assert caught.value.message.startswith(message), caught.value.message
    assert caught.value.hint


def test_datapath_choice() -> None:
    def boom() -> bool:
        raise PermissionError("no netns")

    assert choose_datapath(PoolMode.ENIIP, VirtualType.VETH, boom).mode == "veth"  # no probe for veth
    chosen = choose_datapath(PoolMode.ENIIP, VirtualType.IPVLAN, lambda: True)
    assert (chosen.mode, chosen.fallback) == ("ipvlan", False)
    fallback = choose_datapath(PoolMode.ENIIP, VirtualType.IPVLAN, lambda: False, "5.4.0")
    assert (fallback.mode, fallback.fallback) == ("veth", True)
    assert "eniip_virtual_type is ipvlan, but this kernel (5.4.0) cannot create ipvlan links" in fallback.reason
    failed = choose_datapath(PoolMode.ENIIP, VirtualType.IPVLAN, boom)
    assert failed.mode == "veth" and "the ipvlan probe failed: PermissionError" in failed.reason
    assert choose_datapath(PoolMode.ENI, VirtualType.IPVLAN, lambda: True).mode == "exclusive-eni"


# --- a real daemon ---------------------------------------------------------------------------------------


def _spawn(node: Node, conf: Mapping[str, Any], env: Mapping[str, str], *extra: str,
           global_args: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """`terwayctl daemon --config <conf>` in `env` (unlike Node.spawn, which fixes both); waits for ready."""
    path = node.dir / "eni_conf.json"
    path.write_text(json.dumps(conf))
    argv = [sys.executable, "-m", "terwayctl", *global_args, "daemon", "--config", str(path),
            "--instance-id", node.instance_id, "--zone", ZONE, "--socket", str(node.socket),
            "--state-dir", str(node.state_dir), "--node-netns", node.ns, *extra]  # fmt: skip
    with open(node.dir / "daemon.log", "ab") as log:
        node.process = subprocess.Popen(argv, env=dict(env), stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if node.process.poll() is not None:
            raise AssertionError(f"daemon exited: {(node.dir / 'daemon.log').read_text()[-3000:]}")
        try:
            if ask_status(node.socket, timeout=2).get("ready"):
                return node.process
        except DaemonUnavailable:
            pass
        time.sleep(0.05)
    raise AssertionError("daemon did not become ready within 30 s")


def _run_daemon(node: Node, conf: Mapping[str, Any], env: Mapping[str, str],
                *global_args: str) -> subprocess.CompletedProcess[str]:
    """A daemon expected to refuse to start: its exit code and output."""
    path = node.dir / "eni_conf.json"
    path.write_text(json.dumps(conf))
    argv = [sys.executable, "-m", "terwayctl", *global_args, "daemon", "--config", str(path),
            "--instance-id", node.instance_id, "--zone", ZONE, "--socket", str(node.socket),
            "--state-dir", str(node.state_dir), "--node-netns", node.ns]  # fmt: skip
    return subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=60, check=False)


def _secret_dir(root: Path, key: str, secret: str) -> Path:
    """A kubelet-style Secret volume (symlinks into ..data)."""
    version = root / "..2026_12_04_00_00_00.0001"
    version.mkdir(parents=True)
    (version / "access_key").write_text(key + "\n")
    (version / "access_secret").write_text(secret + "\n")
    (root / "..data").symlink_to(version.name)
    for name in ("access_key", "access_secret"):
        (root / name).symlink_to(f"..data/{name}")
    return root


def _env_without_good_keys(url: str) -> dict[str, str]:
    """The emulator's endpoint, a wrong region and wrong keys: only eni_conf can make the daemon work."""
    return {**cloud_environ(url), "ALIBABA_CLOUD_ACCESS_KEY_ID": WRONG_KEY,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": WRONG_SECRET, "ALIBABA_CLOUD_REGION_ID": "cn-beijing"}


def _status(node: Node, env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "terwayctl", "daemon", "--socket", str(node.socket), "status", *args]
    return subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=30, check=False)


def test_daemon_honours_credential_path_region_id_and_falls_back_from_ipvlan(vpc_lab: Lab) -> None:
    if ipvlan_supported():
        pytest.skip("this kernel has ipvlan: the veth fallback cannot be observed here")
    node = vpc_lab.node(0)
    creds = _secret_dir(node.dir / "credentials", EMULATOR_KEY, EMULATOR_SECRET)
    conf = {**ENI_CONF, "region_id": "cn-hangzhou", "credential_path": str(creds), "eniip_virtual_type": "ipvlan",
            "ip_stack": "ipv4", "service_cidr": "172.21.0.0/20"}
    env = _env_without_good_keys(vpc_lab.url)
    _spawn(node, conf, env)
    pods = [node.pod("web-0"), node.pod("web-1")]
    for pod in pods:
        added = node.cni("ADD", pod)
        assert added.code == 0, added.out
        assert added.out["ips"][0]["address"].endswith("/32")
        (eth0,) = ip_json(pod.ns, "-d", "link", "show", "eth0")
        assert eth0["linkinfo"]["info_kind"] == "veth"  # type: ignore[index]
    doc = json.loads(_status(node, env, "-o", "json").stdout)
    assert doc["datapath"]["mode"] == "veth"
    assert "eniip_virtual_type is ipvlan, but this kernel" in doc["datapath"]["reason"]
    assert "cannot create ipvlan links" in doc["datapath"]["reason"]
    assert doc["datapath"]["fallback"] is True
    table = _status(node, env).stdout
    assert "datapath: veth (eniip_virtual_type is ipvlan, but this kernel" in table
    log = (node.dir / "daemon.log").read_text()
    assert "region=cn-hangzhou" in log and f"credential files in {creds}" in log
    warnings = [line for line in log.splitlines() if "ipvlan" in line and "warn" in line.lower()]
    assert len(warnings) == 1, warnings  # one warning for the daemon, not one per pod
    assert EMULATOR_SECRET + "\n" not in log and WRONG_SECRET not in log
    for pod in pods:
        assert node.cni("DEL", pod).code == 0
    assert node.ipam_check().returncode == 0


def test_region_flag_beats_eni_conf_region_id(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    conf = {**ENI_CONF, "region_id": "cn-hangzhou"}
    done = _run_daemon(node, conf, cloud_environ(vpc_lab.url), "--region", "cn-shanghai")
    assert done.returncode != 0  # the emulator serves cn-hangzhou only
    assert "cn-shanghai" in done.stderr


def test_a_missing_credential_file_stops_the_daemon_at_start(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    creds = node.dir / "credentials"
    creds.mkdir()
    (creds / "access_key").write_text(EMULATOR_KEY)
    conf = {**ENI_CONF, "credential_path": str(creds)}
    done = _run_daemon(node, conf, cloud_environ(vpc_lab.url))  # good keys in the environment: no fallback
    assert done.returncode == 2, done.stderr
    assert f"error: credential file {creds}/access_secret does not exist" in done.stderr
    assert "hint: " in done.stderr
    assert not node.socket.exists()


@pytest.mark.parametrize(("key", "value", "error"), [
    ("ip_stack", "ipv6", "ip_stack is ipv6, but this daemon gives every pod an IPv4 address"),
    ("enable_eni_trunking", True, "enable_eni_trunking is set, but this daemon has no trunk ENI"),
])
def test_daemon_refuses_settings_it_cannot_honour(vpc_lab: Lab, key: str, value: object, error: str) -> None:
    node = vpc_lab.node(0)
    done = _run_daemon(node, {**ENI_CONF, key: value}, cloud_environ(vpc_lab.url))
    assert done.returncode == 2, done.stderr
    assert f"error: {node.dir / 'eni_conf.json'}: {error}" in done.stderr
    assert "hint: " in done.stderr
    assert not node.socket.exists()


def test_daemon_uses_ipvlan_where_the_kernel_has_it(vpc_lab: Lab) -> None:
    if not ipvlan_supported():
        pytest.skip("this kernel has no ipvlan (ip link add type ipvlan: Unknown device type)")
    node = vpc_lab.node(0)
    env = cloud_environ(vpc_lab.url)
    _spawn(node, {**ENI_CONF, "eniip_virtual_type": "ipvlan"}, env)
    pod = node.pod("web")
    added = node.cni("ADD", pod)
    assert added.code == 0, added.out
    (eth0,) = ip_json(pod.ns, "-d", "link", "show", "eth0")
    assert eth0["linkinfo"]["info_kind"] == "ipvlan"  # type: ignore[index]
    doc = json.loads(_status(node, env, "-o", "json").stdout)
    assert doc["datapath"] == {"mode": "ipvlan", "reason": "eniip_virtual_type is ipvlan and the kernel supports it",
                               "fallback": False, "exclusive_host_routes": []}
    assert node.cni("DEL", pod).code == 0
    assert [link["ifname"] for link in ip_json(pod.ns, "link", "show")] == ["lo"]


def test_profile_flag_beats_credential_path_but_its_environment_variable_does_not(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    missing = node.dir / "no-credentials"
    conf = {**ENI_CONF, "credential_path": str(missing)}
    env = {k: v for k, v in cloud_environ(vpc_lab.url).items() if k != "ALIBABA_CLOUD_CLI_PROFILE_DISABLED"}
    env["HOME"] = str(node.dir)  # no ~/.aliyun/config.json there
    by_env = _run_daemon(node, conf, {**env, "ALIBABA_CLOUD_PROFILE": "other"})
    assert by_env.returncode == 2, by_env.stderr
    assert f"error: credential directory {missing} (eni_conf credential_path) does not exist" in by_env.stderr
    without_keys = {k: v for k, v in env.items() if not k.startswith("ALIBABA_CLOUD_ACCESS_KEY")}
    by_flag = _run_daemon(node, conf, without_keys, "--profile", "other")
    assert by_flag.returncode == 2, by_flag.stderr
    assert "error: profile 'other' asked for, but there is no aliyun CLI config" in by_flag.stderr
