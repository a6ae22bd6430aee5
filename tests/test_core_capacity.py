"""Capacity formulas (DESIGN.md §3) on real catalog rows."""

from __future__ import annotations

import pytest

from terwayctl.core.capacity import CapacityOptions, compute, explain, report, usable_enis
from terwayctl.core.catalog import InstanceType, parse_catalog_csv
from terwayctl.core.eniconf import EniCaps, eni_caps_from_conf, parse_eni_conf_text
from terwayctl.core.errors import InvalidInput, NotFound
from terwayctl.data import EMBEDDED_SOURCE, embedded_catalog


def row(name: str) -> InstanceType:
    return embedded_catalog().by_name()[name]


def cap(name: str, **options: object):  # type: ignore[no-untyped-def]
    return compute(row(name), CapacityOptions(**options), EMBEDDED_SOURCE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "shared", "exclusive", "trunk"),
    [
        pytest.param("ecs.g7.4xlarge", 210, 7, None, id="ecs.g7.4xlarge"),
        pytest.param("ecs.g6.xlarge", 20, 2, None, id="ecs.g6.xlarge"),
        pytest.param("ecs.g6.large", 6, 1, 0, id="ecs.g6.large-trunk-unsupported"),
        pytest.param("ecs.g7.xlarge", 45, 3, 16, id="ecs.g7.xlarge-trunk"),
        pytest.param("ecs.g6.16xlarge", 140, 7, 52, id="ecs.g6.16xlarge"),
    ],
)
def test_pod_formulas_on_catalog_rows(name: str, shared: int, exclusive: int, trunk: int | None) -> None:
    result = cap(name)
    assert result.shared_eni_pods == shared
    assert result.exclusive_eni_pods == exclusive
    assert result.trunk_pods == trunk


@pytest.mark.parametrize(
    ("name", "shared_ok", "exclusive_ok"),
    [
        pytest.param("ecs.g7.4xlarge", True, True, id="210-and-7-pass"),
        pytest.param("ecs.g6.xlarge", True, False, id="exclusive-2-fails"),
        pytest.param("ecs.g6.large", False, False, id="shared-6-fails"),
    ],
)
def test_ack_minimums(name: str, shared_ok: bool, exclusive_ok: bool) -> None:
    result = cap(name)
    assert result.shared_eni_ok is shared_ok
    assert result.exclusive_eni_ok is exclusive_ok


def test_ack_minimum_boundaries() -> None:
    def synthetic(enis: int, ips: int) -> InstanceType:
        return InstanceType("ecs.x.test", "ecs.x", 2, 4.0, enis, ips, None, None, None)

    # 12 shared pods is the first count above 11; 7 exclusive the first above 6.
    assert compute(synthetic(3, 6), CapacityOptions(), "t").shared_eni_ok is True
    assert compute(synthetic(2, 11), CapacityOptions(), "t").shared_eni_ok is False
    assert compute(synthetic(8, 1), CapacityOptions(), "t").exclusive_eni_ok is True
    assert compute(synthetic(7, 1), CapacityOptions(), "t").exclusive_eni_ok is False


def test_dual_stack_needs_equal_ipv6_and_ipv4_per_eni() -> None:
    assert cap("ecs.g7.xlarge").dual_stack is True  # 15 == 15
    assert cap("ecs.g6.xlarge").dual_stack is False  # 1 != 10
    assert cap("ecs.g7.4xlarge").dual_stack is None  # IPv6 per ENI unknown


def test_ipv6_notes_say_why_ipv6_is_off() -> None:
    result = cap("ecs.g6.xlarge", ipv6=True)
    assert any("IPv6 off on this node: 1 IPv6 vs 10 IPv4" in n for n in result.notes)


def test_unknown_ips_per_eni_gives_no_shared_figure_and_says_why() -> None:
    legacy = next(t for t in embedded_catalog().types if t.eni_private_ip_quantity is None and t.eni_quantity)
    result = compute(legacy, CapacityOptions(), EMBEDDED_SOURCE)
    assert result.shared_eni_pods is None
    assert result.max_pods is None
    assert result.exclusive_eni_pods == legacy.eni_quantity - 1  # type: ignore[operator]
    assert any("IPs per ENI" in n and "unknown" in n for n in result.notes)


@pytest.mark.parametrize(
    ("mode", "hosts", "expected"),
    [
        pytest.param("all", 2, 47, id="all-uses-eniip"),
        pytest.param("eniip", 0, 45, id="eniip-no-host-pods"),
        pytest.param("eni", 2, 5, id="eni"),
        pytest.param("trunk", 2, 63, id="trunk-shared-plus-members"),
    ],
)
def test_recommended_max_pods(mode: str, hosts: int, expected: int) -> None:
    assert cap("ecs.g7.xlarge", mode=mode, host_network_pods=hosts).max_pods == expected


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        pytest.param(EniCaps(), 7, id="default"),
        pytest.param(EniCaps(max_eni=3), 3, id="max_eni-caps"),
        pytest.param(EniCaps(max_eni=20), 7, id="max_eni-above-has-no-effect"),
        pytest.param(EniCaps(eni_cap_ratio=0.5), 3, id="ratio-half"),
        pytest.param(EniCaps(eni_cap_shift=-2), 5, id="shift-negative"),
        pytest.param(EniCaps(eni_cap_ratio=0.5, eni_cap_shift=1, max_eni=2), 2, id="all-three"),
        pytest.param(EniCaps(eni_cap_shift=-20), 0, id="never-negative"),
    ],
)
def test_eni_conf_caps_on_g7_4xlarge(caps: EniCaps, expected: int) -> None:
    assert usable_enis(8, caps) == expected
    result = compute(row("ecs.g7.4xlarge"), CapacityOptions(caps=caps), EMBEDDED_SOURCE)
    assert result.shared_eni_pods == expected * 30
    assert result.exclusive_eni_pods == expected


@pytest.mark.parametrize(
    ("conf", "caps"),
    [
        pytest.param({}, EniCaps(), id="empty"),
        pytest.param({"max_eni": 2, "eni_cap_ratio": 0.5, "eni_cap_shift": 1, "vswitches": {}}, EniCaps(2, 0.5, 1), id="all"),
        pytest.param({"eni_cap_ratio": 0}, EniCaps(), id="go-zero-ratio-means-1"),
    ],
)
def test_eni_caps_from_conf(conf: dict[str, object], caps: EniCaps) -> None:
    assert eni_caps_from_conf(conf, "f") == caps


@pytest.mark.parametrize(
    "conf",
    [
        pytest.param({"max_eni": -1}, id="negative-max"),
        pytest.param({"max_eni": "3"}, id="string-max"),
        pytest.param({"eni_cap_ratio": 1.5}, id="ratio-above-1"),
        pytest.param({"eni_cap_ratio": -0.1}, id="ratio-negative"),
        pytest.param({"eni_cap_ratio": True}, id="ratio-bool"),
        pytest.param({"eni_cap_shift": 1.5}, id="shift-float"),
    ],
)
def test_bad_eni_conf_values(conf: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        eni_caps_from_conf(conf, "f")


@pytest.mark.parametrize("text", ["{", "[1, 2]", "null"])
def test_bad_eni_conf_json(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_eni_conf_text(text, "f")


def test_report_filters_and_sorts() -> None:
    types = embedded_catalog().select([], ["ecs.g6"])
    rows = report(types, CapacityOptions(mode="eniip"), "t", min_pods=100, sort="pods")
    assert rows, "ecs.g6 has types with 100+ pods"
    assert all(r.shared_eni_pods is not None and r.shared_eni_pods >= 100 for r in rows)
    pods = [r.shared_eni_pods for r in rows]
    assert pods == sorted(pods)  # type: ignore[type-var]
    desc = report(types, CapacityOptions(mode="eniip"), "t", min_pods=100, sort="pods", reverse=True)
    assert [r.name for r in desc] == [r.name for r in reversed(rows)]


def test_sort_puts_unknown_last() -> None:
    rows = report(embedded_catalog().select(["ecs.t1.*", "ecs.g6.xlarge"], []), CapacityOptions(), "t", sort="pods")
    assert rows[-1].shared_eni_pods is None
    assert rows[0].shared_eni_pods is not None


def test_ipv6_min_pods_keeps_only_dual_stack_types() -> None:
    types = embedded_catalog().select(["ecs.g7.xlarge", "ecs.g6.xlarge"], [])
    rows = report(types, CapacityOptions(ipv6=True), "t", min_pods=1)
    assert [r.name for r in rows] == ["ecs.g7.xlarge"]


def test_report_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidInput):
        report([], CapacityOptions(), "t", min_pods=-1)
    with pytest.raises(InvalidInput):
        report([], CapacityOptions(), "t", sort="price")
    with pytest.raises(InvalidInput):
        CapacityOptions(mode="vpc")
    with pytest.raises(InvalidInput):
        CapacityOptions(host_network_pods=-1)


def test_explain_puts_the_numbers_in() -> None:
    lines = explain(row("ecs.g7.4xlarge"), CapacityOptions(), EMBEDDED_SOURCE, {"eni_quantity": "doc"})
    text = "\n".join(lines)
    assert "usable ENIs = EniQuantity - 1 = 8 - 1 = 7" in text
    assert "= 7 x 30 = 210" in text
    assert "eni_quantity = 8  [doc]" in text
    capped = "\n".join(explain(row("ecs.g7.4xlarge"), CapacityOptions(caps=EniCaps(max_eni=3)), "t"))
    assert "capped by max_eni = 3" in capped
    assert "= 3 x 30 = 90" in capped


def test_catalog_select_names_globs_and_families() -> None:
    catalog = embedded_catalog()
    assert [t.name for t in catalog.select(["ecs.g6.xlarge"], [])] == ["ecs.g6.xlarge"]
    g6 = catalog.select(["ecs.g6.*"], [])
    assert g6 and all(t.name.startswith("ecs.g6.") for t in g6)
    g7 = catalog.select([], ["ecs.g7"])
    assert g7 and all(t.family == "ecs.g7" for t in g7)
    assert len(catalog.select([], [])) == 941


@pytest.mark.parametrize(
    ("patterns", "families", "hint_part"),
    [
        pytest.param(["ecs.g6.xlarg"], [], "ecs.g6.xlarge", id="typo-suggests"),
        pytest.param(["ecs.nope.*"], [], "pattern", id="glob-matches-nothing"),
        pytest.param([], ["ecs.g77"], "ecs.g7", id="unknown-family"),
    ],
)
def test_catalog_select_errors(patterns: list[str], families: list[str], hint_part: str) -> None:
    with pytest.raises(NotFound) as info:
        embedded_catalog().select(patterns, families)
    assert hint_part in (info.value.hint or "") + info.value.message


def test_parse_catalog_keeps_unknown_cells_unknown() -> None:
    text = (
        "instance_type,family,vcpu,memory_gib,eni_quantity,eni_private_ip_quantity,"
        "eni_ipv6_quantity,eni_total_quantity,eni_trunk_supported\n"
        "ecs.a.large,ecs.a,,,3,,,,\n"
    )
    (only,) = parse_catalog_csv(text, "t").types
    assert only.eni_quantity == 3
    assert only.eni_private_ip_quantity is None
    assert only.eni_trunk_supported is None


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("instance_type,family\necs.a,ecs\n", id="missing-columns"),
        pytest.param(
            "instance_type,family,vcpu,memory_gib,eni_quantity,eni_private_ip_quantity,eni_ipv6_quantity,"
            "eni_total_quantity,eni_trunk_supported\necs.a,ecs.a,x,,,,,,\n",
            id="non-number",
        ),
        pytest.param(
            "instance_type,family,vcpu,memory_gib,eni_quantity,eni_private_ip_quantity,eni_ipv6_quantity,"
            "eni_total_quantity,eni_trunk_supported\necs.a,ecs.a,,,,,,,maybe\n",
            id="non-bool",
        ),
    ],
)
def test_parse_catalog_rejects_bad_rows(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_catalog_csv(text, "t")


def test_name_sort_is_natural() -> None:
    rows = report(embedded_catalog().select([], ["ecs.g7"]), CapacityOptions(), "t")
    names = [r.name for r in rows]
    assert names == [
        "ecs.g7.large", "ecs.g7.xlarge", "ecs.g7.2xlarge", "ecs.g7.3xlarge", "ecs.g7.4xlarge",
        "ecs.g7.6xlarge", "ecs.g7.8xlarge", "ecs.g7.16xlarge", "ecs.g7.32xlarge",
    ]
