"""`terwayctl render` end to end: stdout, --dir DIR, values files, and every bad value exiting 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

SG = ("--set", "security_groups=sg-bp1aaa")
POLICY_WARNING = (
    "warning: network_policy is off: NetworkPolicy objects will not be enforced (no policy engine runs); "
    "--set network_policy=true adds the Cilium policy container (docs/render.md)\n"
)
NAMES = [
    "01-serviceaccount-terway.yaml",
    "02-clusterrole-terway.yaml",
    "03-clusterrolebinding-terway.yaml",
    "04-configmap-eni-config.yaml",
    "05-daemonset-terway-eniip.yaml",
]


def test_stdout_is_a_multi_document_stream(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("render", *SG)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == POLICY_WARNING  # network_policy is off by default, and render says so
    on = cli("render", *SG, "--set", "network_policy=true")
    assert on.exit_code == 0 and on.stderr == ""
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"]
    assert cli("render", *SG, "-o", "yaml").stdout == result.stdout


def test_output_directory_gets_one_file_per_object(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "new" / "manifests"
    result = cli("render", *SG, "--dir", str(target))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in target.iterdir()) == NAMES
    assert result.stdout.splitlines() == [f"wrote {target / name}" for name in NAMES]
    stream = cli("render", *SG).stdout
    assert "".join((target / name).read_text(encoding="utf-8") for name in NAMES) == stream
    assert oct((target / NAMES[0]).stat().st_mode & 0o777) == "0o644"


def test_output_directory_is_rewritten_and_stale_files_are_named(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("render", *SG, "--dir", str(tmp_path)).exit_code == 0
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    result = cli("render", *SG, "--set", "mode=eni", "--dir", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "05-daemonset-terway-eni.yaml").exists()
    assert result.stderr == (
        f"warning: {tmp_path / '05-daemonset-terway-eniip.yaml'} is not part of this render; "
        "remove it before applying the directory\n" + POLICY_WARNING
    )
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_output_path_that_is_a_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "f"
    file.write_text("x", encoding="utf-8")
    result = cli("render", *SG, "--dir", str(file))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and str(file) in result.stderr.splitlines()[0]


def test_values_file_and_set(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    values = tmp_path / "values.yaml"
    values.write_text("security_groups: [sg-bp1aaa]\nmode: eni\nhost_port: true\n", encoding="utf-8")
    result = cli("render", "--values", str(values), "--set", "mode=eniip")
    assert result.exit_code == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert docs[-1]["metadata"]["name"] == "terway-eniip"
    assert '"type": "portmap"' in docs[3]["data"]["10-terway.conflist"]


def test_global_namespace_and_region_become_values(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("-n", "terway-system", "--region", "cn-beijing", "render", *SG)
    assert result.exit_code == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert docs[0]["metadata"]["namespace"] == "terway-system"
    assert '"region_id": "cn-beijing"' in docs[3]["data"]["eni_conf"]


def test_region_from_the_environment_is_not_rendered(cli, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ALIBABA_CLOUD_REGION_ID", "cn-beijing")
    result = cli("render", *SG)
    assert result.exit_code == 0 and "region_id" not in result.stdout


BAD = [
    (["mode=foo"], "error: mode: must be eniip or eni, got 'foo' (in --set)", "hint: use one of: eniip, eni"),
    (["ip_stack=ipv6"], "error: ip_stack: ipv6 is not supported: the terwayctl node daemon gives every pod an IPv4 "
     "address (no IPv6-only) (in --set)", "hint: use ip_stack=ipv4 (the default), or dual with an IPv4,IPv6 service_cidr pair"),
    (["ip_stack=v6"], "error: ip_stack: must be ipv4 or dual, got 'v6' (in --set)", "hint: ipv4 (the default) or dual"),
    (["image=terwayctl"], "error: image: 'terwayctl' has no tag (in --set)", "hint: pin a version: terwayctl:v"),
    (["image=Bad Image:1"], "error: image: 'Bad Image:1' is not an image reference (in --set)", "hint: write repository:tag"),
    (["image_pull_policy=sometimes"], "error: image_pull_policy: must be IfNotPresent or Always or Never", "hint: use one of"),
    (["region_id=hangzhou"], "error: region_id: 'hangzhou' is not a region id (in --set)", "hint: region ids look like cn-hangzhou"),
    (["region_id=cn-hangzhou-i"], "error: region_id: 'cn-hangzhou-i' is a zone, not a region (in --set)",
     "hint: the region of zone cn-hangzhou-i is cn-hangzhou"),
    (["vswitches.hangzhou=vsw-bp1aaa"], "error: vswitches.hangzhou: 'hangzhou' is not a zone id (in --set)",
     "hint: zone ids look like cn-hangzhou-i"),
    (["vswitches.cn-hangzhou-i=vpc-bp1aaa"], "error: vswitches.cn-hangzhou-i: 'vpc-bp1aaa' is not a vSwitch id (in --set)",
     "hint: vSwitch ids look like vsw-"),
    (["vswitches.cn-hangzhou-i="], "error: vswitches.cn-hangzhou-i: lists no vSwitch (in --set)", "hint: e.g. --set"),
    (["vswitches.cn-hangzhou-i=vsw-a", "vswitches.cn-hangzhou-j=vsw-a"],
     "error: vswitches.cn-hangzhou-j: vsw-a is listed twice (also in zone cn-hangzhou-i) (in --set)", "hint: a vSwitch belongs"),
    (["region_id=cn-beijing", "vswitches.cn-hangzhou-i=vsw-a"],
     "error: vswitches.cn-hangzhou-i: zone cn-hangzhou-i is not in region cn-beijing (in --set)", "hint: use zones of cn-beijing"),
    (["vswitches=vsw-a"], "error: --set vswitches needs a zone: vswitches.<zone>", "hint: e.g. --set vswitches.cn-hangzhou-i="),
    (["security_groups=sg-a,sg-b,sg-c,sg-d,sg-e,sg-f,sg-g,sg-h,sg-i,sg-j,sg-k"],
     "error: security_groups: lists 11 security groups, at most 10 are allowed (in --set)", "hint: an ENI joins at most 10"),
    (["security_groups=vsw-a"], "error: security_groups: 'vsw-a' is not a security group id (in --set)", "hint: security group ids"),
    (["security_groups="], "error: security_groups: lists no security group (in --set)", "hint: give 1 to 10 ids"),
    (["security_groups=sg-a,sg-a"], "error: security_groups: lists sg-a more than once (in --set)", "hint: list each"),
    (["service_cidr=172.21.0.1/20"], "error: service_cidr: '172.21.0.1/20' is not a CIDR: 172.21.0.1/20 has host bits set (in --set)",
     "hint: e.g. 172.21.0.0/20"),
    (["service_cidr=172.21.0.0/20,fd00::/112"], "error: service_cidr: '172.21.0.0/20,fd00::/112' must be one IPv4 CIDR (in --set)",
     "hint: give one IPv4 CIDR, e.g. 172.21.0.0/20 (an IPv4,IPv6 pair needs ip_stack=dual)"),
    (["pool.max_size=-1"], "error: pool.max_size: must not be negative, got -1 (in --set)", "hint: the pool sizes count"),
    (["pool.max_size=ten"], "error: pool.max_size: must be a whole number, got 'ten' (in --set)", None),
    (["pool.max_size=3", "pool.min_size=5"], "error: pool.min_size: 5 is larger than pool.max_size 3 (in --set)",
     "hint: the pool keeps between"),
    (["pool.sync_period=soon"], "error: pool.sync_period: 'soon' is not a duration (in --set)", "hint: write a Go duration"),
    (["network_policy=maybe"], "error: network_policy: must be true or false, got 'maybe' (in --set)", "hint: use true/false"),
    (["host_port=2"], "error: host_port: must be true or false, got '2' (in --set)", "hint: use true/false"),
    (["bandwidth=enabled"], "error: bandwidth: must be true or false, got 'enabled' (in --set)", "hint: use true/false"),
    (["enable_eni_trunking=y"], "error: enable_eni_trunking: must be true or false, got 'y' (in --set)", "hint: use true/false"),
    (["vswitch_selection_policy=first"], "error: vswitch_selection_policy: must be ordered or random, got 'first' (in --set)",
     "hint: use one of"),
    (["namespace=Kube_System"], "error: namespace: 'Kube_System' is not a valid namespace name (in --set)", "hint: lower-case"),
    (["credentials.secret=My Secret"], "error: credentials.secret: 'My Secret' is not a valid Secret name (in --set)",
     "hint: the name of a Secret"),
    (["resources.cpu_request=lots"], "error: resources.cpu_request: 'lots' is not a Kubernetes quantity (in --set)", "hint: e.g. 100m"),
    (["resources.memory_request=1Gi"], "error: resources.memory_request: 1Gi is above resources.memory_limit 256Mi (in --set)",
     "hint: a request may not exceed its limit"),
    (["sekurity_groups=sg-a"], "error: unknown key sekurity_groups (in --set)", "hint: did you mean security_groups?"),
    (["pool.maxsize=3"], "error: unknown key pool.maxsize (in --set)", "hint: did you mean pool.max_size?"),
    (["max_pool_size=3"], "error: unknown key max_pool_size (in --set)", "hint: did you mean pool.max_size?"),
    (["hostPort=true"], "error: unknown key hostPort (in --set)", "hint: did you mean host_port?"),
    (["colour=blue"], "error: unknown key colour (in --set)", "hint: known keys: bandwidth, credentials.secret"),
    (["pool=3"], "error: pool is a group of keys, not a value", "hint: set one of: pool.max_size, pool.min_size, pool.sync_period"),
    (["mode"], "error: --set 'mode' is not key=value", "hint: e.g. --set pool.max_size=10"),
]


@pytest.mark.parametrize(("sets", "error", "hint"), BAD, ids=[case[0][-1] for case in BAD])
def test_bad_value_exits_2_with_the_right_message(cli, sets: list[str], error: str, hint: str | None) -> None:  # type: ignore[no-untyped-def]
    args = [arg for value in ["security_groups=sg-bp1aaa", *sets] for arg in ("--set", value)]
    result = cli("render", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith(error), result.stderr
    if hint is None:
        assert len(lines) == 1 or not lines[1].startswith("hint:")
    else:
        assert lines[1].startswith(hint), result.stderr


def test_missing_security_groups(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("render")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: security_groups: missing: 1 to 10 security group ids are required",
        "hint: e.g. --set security_groups=sg-bp1aaa,sg-bp1bbb",
    ]


def test_all_problems_are_listed(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("render", "--set", "mode=foo", "--set", "ip_stack=v6")
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3  # security_groups, ip_stack, mode


def test_a_credential_value_is_refused_and_never_echoed(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("render", *SG, "--set", "credentials.access_secret=TopSecretValue123")
    assert result.exit_code == 2
    assert "TopSecretValue123" not in result.stdout + result.stderr
    assert result.stderr.splitlines()[0] == (
        "error: credentials.access_secret: credentials cannot be given as values (in --set)"
    )
    assert "credentials.secret=" in result.stderr


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("mode: [eni\n", "is not valid YAML at line 2 column 1"),
        ("[1, 2]\n", "must hold a mapping, not a list"),
        ("security_groups: [sg-a]\npool: 5\n", "pool is a group of keys, not a value"),
        ("security_groups: [sg-a]\nvswitches: [vsw-a]\n", "vswitches must be a mapping of zone to vSwitch ids, got a list"),
        ("security_groups: [sg-a]\npool: {max_size: -2}\n", "pool.max_size: must not be negative, got -2 (in "),
        ("security_groups: [sg-a]\nimage: 3\n", "image: '3' has no tag (in "),
        ("security_groups: [sg-a]\nmode: {eni: 1}\n", "mode: must be a string, got a mapping (in "),
        ("security_groups: [sg-a]\ncredentials: {access_key: AKID}\n", "credentials.access_key: credentials cannot be given"),
    ],
)
def test_bad_values_file(cli, tmp_path: Path, text: str, error: str) -> None:  # type: ignore[no-untyped-def]
    values = tmp_path / "values.yaml"
    values.write_text(text, encoding="utf-8")
    result = cli("render", "--values", str(values))
    assert result.exit_code == 2
    assert error in result.stderr.splitlines()[0], result.stderr


def test_missing_values_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("render", "--values", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: values file {tmp_path / 'nope.yaml'} does not exist",
        "hint: check the path given to --values",
    ]


def test_help(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("render", "--help")
    assert result.exit_code == 0
    assert "--values" in result.stdout and "--set" in result.stdout
