"""`apply` and `vswitch add/remove` agree on who owns eni_conf: apply keeps the live pod vSwitches, the
vswitch commands write under their own field manager, and neither undoes nor blocks the other."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from terwayctl.lab.kubeapi.seed import node
from tests.conftest import CliResult
from tests.fixtures.emulator import RunningEmulator
from tests.fixtures.kube import RunningKubeApi

Cli = Callable[..., CliResult]
SETS = ("--set", "security_groups=sg-terway", "--set", "vswitches.cn-hangzhou-i=vsw-podi")


def eni_conf(kube: RunningKubeApi) -> dict[str, Any]:
    conf: dict[str, Any] = json.loads(kube.get("v1", "ConfigMap", "eni-config", "kube-system")["data"]["eni_conf"])
    return conf


def managers(kube: RunningKubeApi) -> dict[str, bool]:
    """field manager -> whether it owns .data.eni_conf."""
    cm = kube.get("v1", "ConfigMap", "eni-config", "kube-system")
    return {m["manager"]: "f:eni_conf" in (m.get("fieldsV1") or {}).get("f:data", {})
            for m in cm["metadata"]["managedFields"]}


def test_apply_keeps_what_vswitch_add_did(cli: Cli, kube_api: RunningKubeApi, cloud: RunningEmulator) -> None:
    kube = ("--kubeconfig", str(kube_api.kubeconfig))
    kube_api.create(node("node-1", "ecs.g7.xlarge", "cn-hangzhou-i"))
    assert cli(*kube, "apply", *SETS).exit_code == 0
    added = cli(*kube, "--endpoint", cloud.url, "vswitch", "add", "vsw-newi", "--no-restart")
    assert added.exit_code == 0, added.stderr
    assert managers(kube_api)["terwayctl-vswitch"] is True

    diff = cli(*kube, "apply", *SETS, "--diff")
    assert diff.exit_code == 0, diff.stdout + diff.stderr  # no conflict, nothing would change
    assert ("note: configmap/eni-config: eni_conf vswitches kept as in the cluster (cn-hangzhou-i: vsw-podi, "
            "vsw-newi): after install they belong to 'terwayctl vswitch add/remove', which apply never undoes") \
        in diff.stdout
    assert "configmap/eni-config unchanged (server dry run)" in diff.stdout

    changed = cli(*kube, "apply", *SETS, "--set", "pool.max_size=20")
    assert changed.exit_code == 0, changed.stderr  # apply takes eni_conf back without --force-conflicts
    assert eni_conf(kube_api)["max_pool_size"] == 20
    assert eni_conf(kube_api)["vswitches"] == {"cn-hangzhou-i": ["vsw-podi", "vsw-newi"]}
    assert managers(kube_api) == {"terwayctl": True}

    removed = cli(*kube, "--endpoint", cloud.url, "vswitch", "remove", "vsw-podi", "--no-restart")
    assert removed.exit_code == 0, removed.stderr
    again = cli(*kube, "apply", *SETS, "--set", "pool.max_size=20", "--diff")
    assert again.exit_code == 0 and "(cn-hangzhou-i: vsw-newi)" in again.stdout
    assert cli(*kube, "apply", *SETS, "--set", "pool.max_size=20").exit_code == 0
    assert eni_conf(kube_api)["vswitches"] == {"cn-hangzhou-i": ["vsw-newi"]}


def test_first_install_uses_the_values(cli: Cli, kube_api: RunningKubeApi) -> None:
    result = cli("--kubeconfig", str(kube_api.kubeconfig), "apply", *SETS)
    assert result.exit_code == 0 and "note:" not in result.stdout
    assert eni_conf(kube_api)["vswitches"] == {"cn-hangzhou-i": ["vsw-podi"]}
