"""`terwayctl doctor` end to end: the real entry point against the emulator, the API server and namespaces."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from terwayctl.doctor import DoctorOptions, Inputs, Report
from terwayctl.kernel import netns as nsmod
from terwayctl.lab.kubeapi.seed import seed_cluster
from tests.conftest import CliResult
from tests.fixtures.cloud import CloudEnv
from tests.fixtures.emulator import RunningEmulator
from tests.fixtures.kube import RunningKubeApi
from tests.fixtures.netns import NetnsFactory

Cli = Callable[..., CliResult]
CONF = {"vswitches": {"cn-hangzhou-i": ["vsw-emupodi"], "cn-hangzhou-j": ["vsw-emupodj"]},
        "security_group": "sg-emudefault"}


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "eni_conf.json"
    path.write_text(json.dumps(CONF))
    return path


@pytest.fixture
def credentials(cloud_env: CloudEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "emulator")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "emulator")


def test_cloud_scope_against_the_emulator(cli: Cli, emulator: RunningEmulator, conf: Path, credentials: None) -> None:
    result = cli("--endpoint", emulator.url, "--region", emulator.region, "doctor", "--scope", "cloud",
                 "--eni-conf", str(conf))
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert "✗ cloud.snat-coverage: Every pod and node vSwitch has an SNAT entry" in lines
    assert ("    fix: aliyun vpc CreateSnatEntry --RegionId cn-hangzhou --SnatTableId stb-emudefault "
            "--SourceVSwitchId vsw-emupodi --SnatIp 203.0.113.10") in lines
    assert ("         aliyun vpc CreateSnatEntry --RegionId cn-hangzhou --SnatTableId stb-emudefault "
            "--SourceVSwitchId vsw-emupodj --SnatIp 203.0.113.10") in lines
    assert "✗ cloud.eip-trap: No node has an EIP while its pods lack SNAT" in lines
    assert "✓ cloud.vswitch-free-ips: vSwitches have free IPs" in lines
    assert lines[-1] == "8 ok, 0 warn, 2 fail, 0 skipped"
    assert "\033[" not in result.stdout  # not a terminal: no colours


def test_json_output(cli: Cli, emulator: RunningEmulator, conf: Path, credentials: None) -> None:
    result = cli("--endpoint", emulator.url, "--region", emulator.region, "doctor", "--check", "cloud.eip-trap",
                 "--eni-conf", str(conf), "-o", "json")
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert [r["check_id"] for r in rows] == ["cloud.eip-trap"]
    assert rows[0]["status"] == "fail" and rows[0]["scope"] == "cloud"
    assert rows[0]["fix"].startswith("aliyun vpc CreateSnatEntry")
    assert set(rows[0]) == {"check_id", "title", "scope", "status", "evidence", "fix"}


def test_without_credentials_or_kubeconfig_everything_is_skipped(cli: Cli, cloud_env: CloudEnv, conf: Path) -> None:
    result = cli("--region", "cn-hangzhou", "doctor", "--scope", "cloud", "--scope", "cluster",
                 "--eni-conf", str(conf))
    assert result.exit_code == 0, result.stderr
    assert "    skipped: no cloud access: no Alibaba Cloud credentials found" in result.stdout
    assert "    skipped: no cluster: no kubeconfig (~/.kube/config does not exist) and not running inside a pod" \
        in result.stdout
    assert "✓ cloud.eni-conf: The eni_conf file parses and validates" in result.stdout  # needs no cloud
    assert result.stdout.splitlines()[-1] == "1 ok, 0 warn, 0 fail, 15 skipped"


def test_cluster_scope(cli: Cli, kube_api: RunningKubeApi, cloud_env: CloudEnv) -> None:
    seed_cluster(kube_api)
    result = cli("--kubeconfig", str(kube_api.kubeconfig), "doctor", "--scope", "cluster")
    assert "✓ cluster.daemonset: The Terway DaemonSet is ready" in result.stdout
    assert "✗ cluster.max-pods: kubelet max-pods does not exceed the pod IPs" in result.stdout
    assert result.exit_code == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--check", "cloud.snat"], "error: unknown check cloud.snat"),
    (["--scope", "nodes"], "error: unknown --scope nodes"),
    (["--external-target", "example.com:443"], "error: --external-target 'example.com:443' is not IP[:PORT]"),
    (["--netns", "twtest-nonexistent"], "error: --netns twtest-nonexistent: no such network namespace"),
])
def test_bad_input_exits_2(cli: Cli, args: list[str], message: str) -> None:
    result = cli("doctor", *args)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith(message)
    assert result.stderr.splitlines()[1].startswith("hint: ")


def test_unknown_check_hint_names_the_known_ids(cli: Cli) -> None:
    result = cli("doctor", "--check", "cloud.snat")
    assert "hint: did you mean cloud.snat-coverage? known checks: cloud.eni-conf, cloud.snat-coverage, " \
        "cloud.eip-trap" in result.stderr


def test_a_malformed_eni_conf_file_is_a_finding_not_exit_2(cli: Cli, tmp_path: Path, cloud_env: CloudEnv,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    result = cli("--region", "cn-hangzhou", "doctor", "--scope", "cloud", "--eni-conf", str(bad))
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "✗ cloud.eni-conf: The eni_conf file parses and validates"
    assert lines[1].startswith(f"    --eni-conf {bad}") and "must hold a JSON object" in lines[1]
    assert lines[-1].endswith("1 fail, 9 skipped")
    # given through the environment, the evidence names the variable, not a flag the user never typed
    monkeypatch.setenv("TERWAYCTL_ENI_CONF", str(bad))
    result = cli("--region", "cn-hangzhou", "doctor", "--check", "cloud.eni-conf")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1].startswith(f"    TERWAYCTL_ENI_CONF {bad}")
    assert "--eni-conf" not in result.stdout
    missing = cli("doctor", "--eni-conf", str(tmp_path / "nowhere.json"))
    assert missing.exit_code == 2 and missing.stderr.startswith("error: --eni-conf")


def test_node_scope_in_a_namespace(cli: Cli, netns: NetnsFactory, tmp_path: Path) -> None:
    ns = netns()
    for key, value in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"),
                       ("net.ipv4.conf.default.rp_filter", "0")):
        nsmod.write_sysctl(ns, key, value)
    confs = tmp_path / "net.d"
    confs.mkdir()
    (confs / "10-terway.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "terway", "plugins": [{"type": "terway"}]}))
    (confs / "10-terway.conf").write_text(json.dumps({"cniVersion": "0.4.0", "name": "terway", "type": "terway"}))
    args = ["doctor", "--scope", "node", "--netns", ns, "--cni-conf-dir", str(confs),
            "--cni-bin-dir", str(tmp_path), "--socket", str(tmp_path / "eni.socket")]
    result = cli(*args)
    assert result.exit_code == 1
    out = result.stdout
    assert f"✓ node.forwarding: IPv4 forwarding is on\n    net.ipv4.ip_forward = 1 in netns {ns}" in out
    assert "✗ node.cni-config: The Terway CNI configuration is the one in use" in out
    assert f"    fix: rm {confs / '10-terway.conf'}" in out
    assert f"✗ node.cni-plugin: The CNI plugin binaries are installed\n    {tmp_path / 'terway'}: missing" in out
    assert f"✗ node.daemon-socket: The node daemon answers\n    {tmp_path / 'eni.socket'}: no socket at" in out
    assert "- probe.external: A pod reaches the external target\n    skipped: active probes are off (pass --probe)" \
        in out
    (confs / "10-terway.conf").unlink()
    result = cli(*args, "--check", "node.cni-config", "--check", "node.rp-filter")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "2 ok, 0 warn, 0 fail, 0 skipped"


def test_node_identity_from_the_environment(cli: Cli, tmp_path: Path, conf: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """What `terwayctl lab exec NODE` exports names the node's files; the flags still win."""
    confs, bins = tmp_path / "net.d", tmp_path / "bin"
    confs.mkdir()
    bins.mkdir()
    (confs / "10-terway.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "terway", "plugins": [{"type": "terway"}]}))
    for name, value in (("TERWAYCTL_CNI_CONF_DIR", confs), ("TERWAYCTL_CNI_BIN_DIR", bins),
                        ("TERWAY_DAEMON_SOCKET", tmp_path / "eni.socket"), ("TERWAYCTL_ENI_CONF", conf)):
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("TERWAYCTL_INSTANCE_ID", "i-one i-two")
    checks = ["--check", "node.cni-config", "--check", "node.cni-plugin", "--check", "node.daemon-socket"]
    result = cli("doctor", *checks, "-o", "json")
    rows = {r["check_id"]: r for r in json.loads(result.stdout)}
    assert rows["node.cni-config"]["status"] == "ok"
    assert rows["node.cni-config"]["evidence"][0] == f"{confs}: 10-terway.conflist"
    assert rows["node.cni-plugin"]["evidence"] == [f"{bins / 'terway'}: missing"]
    assert rows["node.daemon-socket"]["evidence"][0].startswith(f"{tmp_path / 'eni.socket'}: no socket at")
    flags = cli("doctor", *checks, "-o", "json", "--cni-bin-dir", str(tmp_path), "--socket", str(tmp_path / "x.sock"))
    rows = {r["check_id"]: r for r in json.loads(flags.stdout)}
    assert rows["node.cni-plugin"]["evidence"] == [f"{tmp_path / 'terway'}: missing"]
    assert rows["node.daemon-socket"]["evidence"][0].startswith(f"{tmp_path / 'x.sock'}: no socket at")
    # --eni-conf and --instance-id (several, space-separated) go to the cloud topology: look at the options
    seen: list[DoctorOptions] = []

    def capture(options: DoctorOptions, inputs: Inputs) -> Report:
        seen.append(options)
        return Report(())

    monkeypatch.setattr("terwayctl.doctor.run", capture)
    assert cli("doctor", "--check", "cloud.snat-coverage").exit_code == 0
    assert (seen[0].eni_conf_file, seen[0].instance_ids) == (conf, ("i-one", "i-two"))
    assert (seen[0].cni_conf_dir, seen[0].cni_bin_dir, seen[0].socket) == (confs, bins, tmp_path / "eni.socket")
