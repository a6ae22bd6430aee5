"""`terwayctl render` refuses the settings the node daemon cannot honour, with the reason (exit 2),
and what it does render is accepted and read by the daemon's own eni_conf parser."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from terwayctl.manifests import eni_conf, load_values
from terwayctl.node.config import PoolMode, VirtualType, node_settings, pool_settings

SG = ["--set", "security_groups=sg-bp1aaa"]
Cli = Callable[..., Any]


@pytest.mark.parametrize(("sets", "error", "hint"), [
    (["ip_stack=ipv6"],
     "error: ip_stack: ipv6 is not supported: the terwayctl node daemon gives every pod an IPv4 address "
     "(no IPv6-only) (in --set)",
     "hint: use ip_stack=ipv4 (the default), or dual with an IPv4,IPv6 service_cidr pair"),
    (["ip_stack=v6"], "error: ip_stack: must be ipv4 or dual, got 'v6'", "hint: ipv4 (the default) or dual"),
    (["service_cidr=172.21.0.0/20,fd00:172:21::/112"], "error: service_cidr: '172.21.0.0/20,fd00:172:21::/112' "
     "must be one IPv4 CIDR", "hint: give one IPv4 CIDR, e.g. 172.21.0.0/20 (an IPv4,IPv6 pair needs ip_stack=dual)"),
    (["ip_stack=dual", "service_cidr=fd00:172:21::/112,172.21.0.0/20"], "error: service_cidr: "
     "'fd00:172:21::/112,172.21.0.0/20': the IPv4 CIDR comes first", "hint: e.g. 172.21.0.0/20,fd00:172:21::/112"),
    (["ip_stack=dual", "service_cidr=fd00:172:21::/112"], "error: service_cidr: 'fd00:172:21::/112' must be one "
     "IPv4 CIDR or an IPv4,IPv6 pair", "hint: e.g. 172.21.0.0/20,fd00:172:21::/112"),
    (["enable_eni_trunking=true"],
     "error: enable_eni_trunking: true is not supported: the terwayctl node daemon has no trunk ENI",
     "hint: leave enable_eni_trunking false (the default)"),
])
def test_render_refuses_what_the_node_cannot_honour(cli: Cli, sets: list[str], error: str, hint: str) -> None:
    result = cli("render", *SG, *(a for s in sets for a in ("--set", s)))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert any(line.startswith(error) for line in lines), result.stderr
    assert any(line.startswith(hint) for line in lines), result.stderr


def test_a_values_file_with_dual_and_a_service_cidr_pair_renders(cli: Cli, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("security_groups: [sg-bp1aaa]\nip_stack: DUAL\nservice_cidr: 172.21.0.0/20,fd00:172:21::/112\n")
    result = cli("render", "--values", str(values))
    assert result.exit_code == 0, result.stderr
    assert '"ip_stack": "dual"' in result.stdout
    assert '"service_cidr": "172.21.0.0/20,fd00:172:21::/112"' in result.stdout
    conf = eni_conf(load_values(values, []))
    assert node_settings(json.loads(json.dumps(conf))).ip_stack == "dual"  # the daemon takes it


def test_ipv4_and_no_trunking_still_render(cli: Cli) -> None:
    result = cli("render", *SG, "--set", "ip_stack=ipv4", "--set", "enable_eni_trunking=false")
    assert result.exit_code == 0, result.stderr
    assert '"ip_stack": "ipv4"' in result.stdout


def test_every_rendered_eni_conf_key_is_read_by_the_daemon() -> None:
    """The daemon's parser takes a full render and gets each value back: nothing rendered is dropped."""
    values = load_values(None, [
        "security_groups=sg-bp1aaa,sg-bp1bbb", "region_id=cn-beijing", "vswitches.cn-beijing-h=vsw-bp1aaa",
        "pool.max_size=9", "pool.min_size=3", "pool.sync_period=45s", "vswitch_selection_policy=random",
        "credentials.secret=terway-credentials",
    ])
    conf = json.loads(json.dumps(eni_conf(values)))  # what the ConfigMap carries
    pool = pool_settings(conf)
    settings = node_settings(conf)
    assert (pool.max_pool_size, pool.min_pool_size, pool.sync_period) == (9, 3, 45.0)
    assert pool.vswitches == {"cn-beijing-h": ("vsw-bp1aaa",)} and pool.vswitch_selection_policy == "random"
    assert pool.security_groups == ("sg-bp1aaa", "sg-bp1bbb")
    assert settings.region_id == "cn-beijing"
    assert settings.credential_path == Path("/etc/terway/credentials")
    assert settings.ip_stack == "ipv4" and settings.virtual_type is VirtualType.VETH
    # the keys the node reads, and the ones with nothing to honour (docs/node.md "Settings the node honours")
    read = {"region_id", "vswitches", "security_groups", "max_pool_size", "min_pool_size", "ip_pool_sync_period",
            "vswitch_selection_policy", "ip_stack", "credential_path"}
    nothing_to_do = {"version", "service_cidr"}
    assert set(conf) <= read | nothing_to_do, set(conf) - read - nothing_to_do
    assert PoolMode(values.mode) is PoolMode.ENIIP
