"""terwayctl.manifests.values: merging defaults, a values file and --set, and validating everything."""

from __future__ import annotations

from pathlib import Path

import pytest

from terwayctl.core.errors import InvalidInput
from terwayctl.manifests import KEYS, InvalidValues, Values, load_values, values_from_mapping
from terwayctl.manifests.values import DEFAULT_IMAGE

SG = "security_groups=sg-bp1aaa"


def test_defaults_need_only_security_groups() -> None:
    values = load_values(None, [SG])
    assert values == Values(security_groups=("sg-bp1aaa",))
    assert values.image == DEFAULT_IMAGE
    assert values.mode == "eniip" and values.daemonset_name == "terway-eniip"
    assert values.namespace == "kube-system"
    assert values.service_cidr == "172.21.0.0/20"
    assert (values.pool.max_size, values.pool.min_size, values.pool.sync_period) == (5, 0, None)
    assert not values.network_policy and not values.host_port and not values.bandwidth
    assert values.credentials_secret is None and values.credential_path is None


def test_values_file_nested_keys_and_set_wins(tmp_path: Path) -> None:
    file = tmp_path / "values.yaml"
    file.write_text(
        "mode: eni\n"
        "region_id: cn-hangzhou\n"
        "vswitches:\n"
        "  cn-hangzhou-i: [vsw-bp1aaa, vsw-bp1bbb]\n"
        "  cn-hangzhou-j: vsw-bp1ccc\n"
        "security_groups: [sg-bp1aaa, sg-bp1bbb]\n"
        "pool: {max_size: 10, min_size: 2, sync_period: 30s}\n"
        "host_port: on\n"
        "credentials: {secret: terway-credentials}\n",
        encoding="utf-8",
    )
    values = load_values(file, ["pool.max_size=20", "vswitches.cn-hangzhou-j=vsw-bp1ddd, vsw-bp1eee"])
    assert values.mode == "eni" and values.daemonset_name == "terway-eni"
    assert values.region_id == "cn-hangzhou"
    assert values.vswitches == (
        ("cn-hangzhou-i", ("vsw-bp1aaa", "vsw-bp1bbb")),
        ("cn-hangzhou-j", ("vsw-bp1ddd", "vsw-bp1eee")),
    )
    assert values.security_groups == ("sg-bp1aaa", "sg-bp1bbb")
    assert (values.pool.max_size, values.pool.min_size, values.pool.sync_period) == (20, 2, "30s")
    assert values.host_port is True
    assert values.credentials_secret == "terway-credentials"
    assert values.credential_path == "/etc/terway/credentials"


def test_later_set_beats_earlier_set() -> None:
    assert load_values(None, [SG, "mode=eni", "mode=eniip"]).mode == "eniip"


def test_values_from_mapping_is_the_same_model() -> None:
    data = {"security_groups": ["sg-bp1aaa"], "pool": {"max_size": 7}, "ip_stack": "ipv4"}
    values = values_from_mapping(data)
    assert values.pool.max_size == 7 and values.ip_stack == "ipv4"


def test_booleans_accept_words() -> None:
    for word, expected in [("true", True), ("on", True), ("YES", True), ("false", False), ("off", False), ("0", False)]:
        assert load_values(None, [SG, f"bandwidth={word}"]).bandwidth is expected


def test_dual_stack_takes_an_ipv4_ipv6_service_cidr_pair_and_ipv6_only_is_refused() -> None:
    values = load_values(None, [SG, "ip_stack=dual", "service_cidr=172.21.0.0/20,fd00:172:21::/112"])
    assert (values.ip_stack, values.service_cidr) == ("dual", "172.21.0.0/20,fd00:172:21::/112")
    assert load_values(None, [SG, "ip_stack=dual"]).service_cidr == "172.21.0.0/20"  # one IPv4 CIDR is fine too
    with pytest.raises(InvalidValues) as caught:
        load_values(None, [SG, "ip_stack=ipv6", "service_cidr=172.21.0.0/20,fd00:172:21::/112"])
    messages = [p.message for p in caught.value.problems]
    assert any(m.startswith("ip_stack: ipv6 is not supported: the terwayctl node daemon gives every pod an IPv4 "
                            "address") for m in messages), messages
    assert any(m.startswith("service_cidr:") for m in messages), messages  # a pair needs ip_stack=dual


@pytest.mark.parametrize("zone", ["cn-hangzhou-i", "ap-southeast-1a", "us-west-1b", "cn-beijing-finance-1a"])
def test_zone_formats(zone: str) -> None:
    assert load_values(None, [SG, f"vswitches.{zone}=vsw-bp1aaa"]).vswitches == ((zone, ("vsw-bp1aaa",)),)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidValues) as caught:
        load_values(None, ["mode=foo", "pool.max_size=-1", "colour=blue"])
    messages = [p.message for p in caught.value.problems]
    assert any(m.startswith("unknown key colour") for m in messages)
    assert any(m.startswith("mode: must be eniip or eni") for m in messages)
    assert any(m.startswith("pool.max_size: must not be negative") for m in messages)
    assert any(m.startswith("security_groups: missing") for m in messages)
    assert isinstance(caught.value, InvalidInput) and caught.value.exit_code == 2
    assert "more problems" in caught.value.message


def test_problem_names_the_values_file(tmp_path: Path) -> None:
    file = tmp_path / "v.yaml"
    file.write_text("security_groups: [sg-a]\nmode: foo\n", encoding="utf-8")
    with pytest.raises(InvalidValues) as caught:
        load_values(file, [])
    assert caught.value.problems[0].message == f"mode: must be eniip or eni, got 'foo' (in {file})"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mode: [eni\n", "is not valid YAML at line 2"),
        ("- a\n- b\n", "must hold a mapping, not a list"),
    ],
)
def test_bad_values_files(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "v.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput, match=message):
        load_values(file, [])


def test_missing_values_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        load_values(tmp_path / "nope.yaml", [])


def test_empty_values_file_means_defaults(tmp_path: Path) -> None:
    file = tmp_path / "v.yaml"
    file.write_text("# nothing\n", encoding="utf-8")
    assert load_values(file, [SG]) == load_values(None, [SG])


@pytest.mark.parametrize(
    "key",
    ["access_key", "credentials.access_key", "credentials.access_secret", "access_key_id", "credentials.security_token"],
)
def test_credentials_are_never_accepted_nor_echoed(key: str) -> None:
    secret = "LTAI5tVerySecretValue"
    with pytest.raises(InvalidValues) as caught:
        load_values(None, [SG, f"{key}={secret}"])
    problem = caught.value.problems[0]
    assert "credentials cannot be given as values" in problem.message
    assert "credentials.secret" in (problem.hint or "")
    assert secret not in problem.message + (problem.hint or "")


def test_every_key_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "render.md").read_text(encoding="utf-8")
    for key in KEYS:
        shown = "vswitches.<zone>" if key == "vswitches" else key
        assert f"`{shown}`" in doc, f"{shown} is missing from docs/render.md"
