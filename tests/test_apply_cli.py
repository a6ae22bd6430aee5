"""`terwayctl apply`: render with terwayctl.manifests and server-side apply to the test API server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from terwayctl.lab.kubeapi.seed import node
from tests.conftest import CliResult
from tests.fixtures.kube import RunningKubeApi

Cli = Callable[..., CliResult]
SETS = ("--set", "security_groups=sg-terway", "--set", "vswitches.cn-hangzhou-i=vsw-podi")


def apply(cli: Cli, kube: RunningKubeApi, *args: str) -> CliResult:
    return cli("--kubeconfig", str(kube.kubeconfig), "apply", *SETS, *args)


def lines(result: CliResult) -> list[str]:
    return [line for line in result.stdout.splitlines() if not line.startswith(("rollout ", "daemonset "))]


def test_apply_creates_then_is_unchanged(cli: Cli, kube_api: RunningKubeApi) -> None:
    first = apply(cli, kube_api)
    assert first.exit_code == 0, first.stderr
    assert lines(first) == ["serviceaccount/terway created", "clusterrole/terway created",
                            "clusterrolebinding/terway created", "configmap/eni-config created",
                            "daemonset/terway-eniip created"]
    cm = kube_api.get("v1", "ConfigMap", "eni-config", "kube-system")
    assert cm["metadata"]["managedFields"][0]["manager"] == "terwayctl"
    assert '"vsw-podi"' in cm["data"]["eni_conf"]
    second = apply(cli, kube_api)
    assert {line.split()[-1] for line in lines(second)} == {"unchanged"}


def test_apply_configures_changes_and_diff_previews(cli: Cli, kube_api: RunningKubeApi) -> None:
    assert apply(cli, kube_api).exit_code == 0
    before = kube_api.get("v1", "ConfigMap", "eni-config", "kube-system")
    same = apply(cli, kube_api, "--diff")
    assert same.exit_code == 0, same.stderr  # like kubectl diff: 0 when nothing would change
    preview = apply(cli, kube_api, "--set", "pool.max_size=20", "--diff")
    assert preview.exit_code == 1, preview.stderr  # 1 when something would
    assert "--- live/ConfigMap/kube-system/eni-config\n+++ applied/ConfigMap/kube-system/eni-config\n" in preview.stdout
    assert "configmap/eni-config configured (server dry run)" in preview.stdout
    assert "daemonset/terway-eniip unchanged (server dry run)" in preview.stdout
    assert "managedFields" not in preview.stdout
    assert kube_api.get("v1", "ConfigMap", "eni-config", "kube-system") == before
    client_side = apply(cli, kube_api, "--set", "pool.max_size=20", "--dry-run", "client")
    assert "configmap/eni-config configured (client dry run)" in client_side.stdout
    done = apply(cli, kube_api, "--set", "pool.max_size=20")
    assert "configmap/eni-config configured" in done.stdout
    assert '"max_pool_size": 20' in kube_api.get("v1", "ConfigMap", "eni-config", "kube-system")["data"]["eni_conf"]


def test_apply_wait_follows_the_rollout(cli: Cli, kube_api: RunningKubeApi) -> None:
    kube_api.create(node("node-1", "ecs.g7.xlarge", "cn-hangzhou-i"))
    result = apply(cli, kube_api, "--wait", "--timeout", "10s")
    assert result.exit_code == 0, result.stderr
    assert "rollout kube-system/terway-eniip: 1/1 updated, 1/1 ready" in result.stdout
    assert "daemonset kube-system/terway-eniip rolled out: 1/1 pods ready" in result.stdout


def test_apply_wait_reports_unready_pods(cli: Cli, kube_api: RunningKubeApi) -> None:
    for name in ("node-1", "node-2"):
        kube_api.create(node(name, "ecs.g7.xlarge", "cn-hangzhou-i"))
    kube_api.controller.mode = "stuck"
    kube_api.controller.unready_nodes = {"node-2"}
    result = apply(cli, kube_api, "--wait", "--timeout", "0.2s")
    assert result.exit_code == 1
    assert "daemonset kube-system/terway-eniip not ready after" in result.stdout
    assert "on node node-2: CrashLoopBackOff" in result.stdout and "node-1" not in result.stdout.split("not ready")[1]


def test_apply_conflict_and_force(cli: Cli, kube_api: RunningKubeApi) -> None:
    assert apply(cli, kube_api).exit_code == 0
    kube_api.server.store.patch(kube_api.server.resource_for({"apiVersion": "v1", "kind": "ConfigMap"}),
                                "kube-system", "eni-config", "application/merge-patch+json",
                                b'{"data": {"eni_conf": "{}"}}', manager="kubectl-edit")
    conflicted = apply(cli, kube_api)
    assert conflicted.exit_code == 1
    assert 'conflict with "kubectl-edit": .data.eni_conf' in conflicted.stderr
    assert "--force-conflicts" in conflicted.stderr
    forced = apply(cli, kube_api, "--force-conflicts")
    assert forced.exit_code == 0 and "configmap/eni-config configured" in forced.stdout
    assert '"vsw-podi"' in kube_api.get("v1", "ConfigMap", "eni-config", "kube-system")["data"]["eni_conf"]


def test_bad_values(cli: Cli, kube_api: RunningKubeApi, tmp_path: Path) -> None:
    missing = cli("--kubeconfig", str(kube_api.kubeconfig), "apply")
    assert missing.exit_code == 2 and "security_groups" in missing.stderr and "hint:" in missing.stderr
    bad = apply(cli, kube_api, "--set", "mode=bogus")
    assert bad.exit_code == 2 and "mode" in bad.stderr
    values = tmp_path / "values.yaml"
    values.write_text("pool: [1, 2\n", encoding="utf-8")
    broken = apply(cli, kube_api, "--values", str(values))
    assert broken.exit_code == 2
    timeout = apply(cli, kube_api, "--wait", "--timeout", "-1m")
    assert timeout.exit_code == 2 and "--timeout" in timeout.stderr
    assert kube_api.list("v1", "ConfigMap", "kube-system") == []


def test_apply_without_a_cluster(cli: Cli, tmp_path: Path) -> None:
    result = cli("--kubeconfig", str(tmp_path / "none"), "apply", *SETS)
    assert result.exit_code == 2 and "kubeconfig" in result.stderr


def test_apply_honours_the_global_namespace_and_region(cli: Cli, kube_api: RunningKubeApi) -> None:
    kube_api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "terway-test"}})
    result = cli("--kubeconfig", str(kube_api.kubeconfig), "-n", "terway-test", "--region", "cn-hangzhou",
                 "apply", *SETS)
    assert result.exit_code == 0, result.stderr
    cm = kube_api.get("v1", "ConfigMap", "eni-config", "terway-test")
    assert '"region_id": "cn-hangzhou"' in cm["data"]["eni_conf"]
    assert kube_api.get("apps/v1", "DaemonSet", "terway-eniip", "terway-test")["metadata"]["namespace"] == "terway-test"
