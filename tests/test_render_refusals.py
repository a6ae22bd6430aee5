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
    (["ip_stack=dual"],
     "error: ip_stack: dual is not supported: the terwayctl node daemon allocates and routes IPv4 only "
     "(it refuses a dual-stack eni_conf at start) (in --set)",
     "hint: use ip_stack=ipv4 (the default) with one IPv4 service_cidr"),
    (["ip_stack=DUAL"], "error: ip_stack: DUAL is not supported", "hint: use ip_stack=ipv4"),
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


def test_a_values_file_with_dual_is_refused_too(cli: Cli, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("security_groups: [sg-bp1aaa]\nip_stack: dual\nservice_cidr: 172.21.0.0/20,fd00:172:21::/112\n")
    result = cli("render", "--values", str(values))
    assert result.exit_code == 2
    assert "error: ip_stack: dual is not supported" in result.stderr and f"(in {values})" in result.stderr


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
