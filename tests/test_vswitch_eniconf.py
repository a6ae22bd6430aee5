"""The pure eni_conf editing of terwayctl.core.eniconf: vSwitch add/remove, RFC 7396 merge, diff, plans."""

from __future__ import annotations

import json

import pytest

from terwayctl.core.eniconf import (
    VSwitchFacts,
    add_vswitches_text,
    eni_conf_diff,
    merge_patch,
    merged_eni_conf,
    plan_vswitch_additions,
    plan_vswitch_removal,
    remove_vswitch_text,
)
from terwayctl.core.errors import InvalidInput, NotFound

CONF = {"version": "1", "vswitches": {"z-i": ["vsw-a"]}, "security_group": "sg-1", "unknown_key": {"x": [1, 2]},
        "max_pool_size": 5}


@pytest.mark.parametrize("indent", [None, 2, 4, "\t"], ids=["compact", "two", "four", "tab"])
def test_add_keeps_keys_order_and_style(indent: int | str | None) -> None:
    text = json.dumps(CONF, indent=indent) + "\n"
    updated = add_vswitches_text(text, [("z-i", "vsw-b"), ("z-j", "vsw-c")])
    expected = {**CONF, "vswitches": {"z-i": ["vsw-a", "vsw-b"], "z-j": ["vsw-c"]}}
    assert updated == json.dumps(expected, indent=indent) + "\n"
    assert list(json.loads(updated)) == list(CONF)


def test_add_without_vswitches_key_and_compact_separators() -> None:
    text = '{"version":"1","max_pool_size":5}'
    assert add_vswitches_text(text, [("z", "vsw-a")]) == '{"version":"1","max_pool_size":5,"vswitches":{"z":["vsw-a"]}}'


def test_add_refuses_an_already_configured_vswitch() -> None:
    with pytest.raises(InvalidInput, match="already configured under zone z-i"):
        add_vswitches_text(json.dumps(CONF), [("z-j", "vsw-a")])


def test_bad_vswitches_shape() -> None:
    with pytest.raises(InvalidInput, match="vswitches must map zones"):
        add_vswitches_text('{"vswitches": ["vsw-a"]}', [("z", "vsw-b")])


def test_remove_and_empty_zone_dropped() -> None:
    text = json.dumps({**CONF, "vswitches": {"z-i": ["vsw-a", "vsw-b"], "z-j": ["vsw-c"]}}, indent=2)
    once = remove_vswitch_text(text, "vsw-a")
    assert json.loads(once)["vswitches"] == {"z-i": ["vsw-b"], "z-j": ["vsw-c"]}
    assert json.loads(remove_vswitch_text(once, "vsw-c"))["vswitches"] == {"z-i": ["vsw-b"]}
    with pytest.raises(InvalidInput, match="not configured"):
        remove_vswitch_text(text, "vsw-zzz")


def test_add_then_remove_round_trips() -> None:
    text = json.dumps(CONF, indent=2)
    assert remove_vswitch_text(add_vswitches_text(text, [("z-i", "vsw-b")]), "vsw-b") == text


def test_rfc7396_merge() -> None:
    # the RFC's own example (appendix A)
    target = {"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["example", "sample"],
              "content": "This will be unchanged"}
    patch = {"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": None}, "tags": ["example"]}
    assert merge_patch(target, patch) == {"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
                                          "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"}
    assert merge_patch({"a": 1}, ["x"]) == ["x"]


def test_node_override_merges_over_default() -> None:
    merged = merged_eni_conf(json.dumps(CONF), json.dumps({"max_pool_size": 20, "vswitches": {"z-j": ["vsw-x"]},
                                                           "unknown_key": None}))
    assert merged["max_pool_size"] == 20 and "unknown_key" not in merged
    assert merged["vswitches"] == {"z-i": ["vsw-a"], "z-j": ["vsw-x"]}
    assert merged_eni_conf(json.dumps(CONF), None) == CONF


def test_diff() -> None:
    before = json.dumps(CONF, indent=2)
    after = add_vswitches_text(before, [("z-i", "vsw-b")])
    diff = eni_conf_diff(before, after, "eni-config")
    assert diff.startswith("--- a/eni-config\n+++ b/eni-config\n")
    assert '-      "vsw-a"\n+      "vsw-a",\n+      "vsw-b"\n' in diff
    assert eni_conf_diff(before, before) == ""


FOUND = {
    "vsw-a": VSwitchFacts("vsw-a", "vpc-1", "z-i", "192.168.0.0/19", 8000),
    "vsw-b": VSwitchFacts("vsw-b", "vpc-1", "z-i", "192.168.32.0/19", 8000),
    "vsw-small": VSwitchFacts("vsw-small", "vpc-1", "z-i", "192.168.64.0/28", 12),
    "vsw-other": VSwitchFacts("vsw-other", "vpc-2", "z-i", "10.0.0.0/19", 8000),
    "vsw-k": VSwitchFacts("vsw-k", "vpc-1", "z-k", "192.168.96.0/19", 8000),
}
CONFIGURED = {"z-i": ["vsw-a"]}
NODES = {"z-i": 2}


def test_plan_additions() -> None:
    plan = plan_vswitch_additions(["vsw-b", "vsw-small", "vsw-b"], FOUND, CONFIGURED, NODES)
    assert plan.additions == (("z-i", "vsw-b"), ("z-i", "vsw-small"))
    assert plan.warnings == ("vSwitch vsw-small (192.168.64.0/28) has only 12 free IPs; a /19 or wider pod vSwitch "
                             "is recommended",)


@pytest.mark.parametrize(("vsw", "error", "text"), [
    ("vsw-none", NotFound, "does not exist"),
    ("vsw-other", InvalidInput, "is in VPC vpc-2"),
    ("vsw-k", InvalidInput, "no nodes (zones with nodes: z-i)"),
    ("vsw-a", InvalidInput, "already configured"),
])
def test_plan_refusals(vsw: str, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        plan_vswitch_additions([vsw], FOUND, CONFIGURED, NODES)


def test_plan_removal() -> None:
    assert plan_vswitch_removal("vsw-a", {"z-i": ["vsw-a", "vsw-b"]}, NODES) == "z-i"
    assert plan_vswitch_removal("vsw-k", {"z-k": ["vsw-k"]}, NODES) == "z-k"  # no nodes there
    with pytest.raises(InvalidInput, match="last vSwitch of zone z-i"):
        plan_vswitch_removal("vsw-a", CONFIGURED, NODES)
