"""Capacity formulas (docs/capacity.md) on real catalog rows."""

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
    assert cap("ecs.g7.4xlarge").dual_stack is True  # 30 == 30 (IPv6 per ENI new in the 1,468-row catalog)
    assert cap("ecs.e4.large").dual_stack is None  # e4's doc table has no IPv6 column
    assert cap("ecs.ebmg5.24xlarge").dual_stack is False  # API-observed EniIpv6AddressQuantity 0


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
    assert len(catalog.select([], [])) == 1468


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


# --- the modes upstream Terway @89aadf8 computes (pkg/aliyun/client/limit.go, pkg/controller/node/node.go)


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        pytest.param("ecs.g8a.xlarge", (15 - 1) * 16 * (5 - 1), id="ecs.g8a.xlarge"),
        pytest.param("ecs.g6.16xlarge", (20 - 1) * 16 * (60 - 1), id="ecs.g6.16xlarge"),
        pytest.param("ecs.g7.xlarge", (15 - 1) * 16 * (20 - 1), id="ecs.g7.xlarge"),
        pytest.param("ecs.g6.large", (6 - 1) * 16 * (2 - 1), id="ecs.g6.large"),
        pytest.param("ecs.r8a.2xlarge", (15 - 1) * 16 * (10 - 1), id="ecs.r8a.2xlarge"),
        pytest.param("ecs.g8i.xlarge", None, id="ecs.g8i.xlarge-no-EniTotalQuantity"),
    ],
)
def test_prefix_mode_uses_eni_total_quantity(name: str, prefix: int | None) -> None:
    result = cap(name, mode="prefix")
    assert result.prefix_pods == prefix
    assert result.max_pods == (None if prefix is None else prefix + 2)
    assert result.max_pods_mode == "prefix"
    if prefix is None:
        assert any("prefix unknown: EniTotalQuantity" in n and "--live" in n for n in result.notes)


def test_enable_ip_prefix_makes_prefix_the_default_mode() -> None:
    result = cap("ecs.g8a.xlarge", caps=EniCaps(enable_ip_prefix=True))
    assert (result.max_pods_mode, result.max_pods) == ("prefix", 896 + 2)
    assert cap("ecs.g8a.xlarge", mode="eniip", caps=EniCaps(enable_ip_prefix=True)).max_pods == 45 + 2


@pytest.mark.parametrize(
    ("name", "erdma", "shared", "exclusive"),
    [
        pytest.param("ecs.g8i.xlarge", 1, (4 - 1 - 1) * 15, 2, id="ecs.g8i.xlarge-4-enis-one"),
        pytest.param("ecs.g8i.8xlarge", 2, (8 - 1 - 2) * 30, 5, id="ecs.g8i.8xlarge-8-enis-two"),
        pytest.param("ecs.g7.32xlarge", 2, (15 - 1 - 2) * 30, 12, id="ecs.g7.32xlarge-15-enis-two"),
        pytest.param("ecs.c8i.2xlarge", 1, (4 - 1 - 1) * 15, 2, id="ecs.c8i.2xlarge"),
        pytest.param("ecs.g6.large", 0, (2 - 1) * 6, 1, id="ecs.g6.large-2-enis-none"),
    ],
)
def test_erdma_takes_eni_slots(name: str, erdma: int, shared: int, exclusive: int) -> None:
    assert row(name).eni_quantity is not None
    result = cap(name, caps=EniCaps(enable_erdma=True))
    assert (result.erdma_enis, result.shared_eni_pods, result.exclusive_eni_pods) == (erdma, shared, exclusive)
    assert cap(name).erdma_enis == 0
    if erdma == 0:
        assert any("eRDMA off" in n for n in result.notes)


@pytest.mark.parametrize(
    ("name", "members", "limit"),
    [
        pytest.param("ecs.g7.xlarge", 20 - 4, 20 - 2, id="ecs.g7.xlarge"),
        pytest.param("ecs.g6.16xlarge", 60 - 8, 60 - 2, id="ecs.g6.16xlarge"),
        pytest.param("ecs.hfr8i.2xlarge", 10 - 4, 10 - 2, id="ecs.hfr8i.2xlarge"),
        pytest.param("ecs.g6.large", 0, 0, id="ecs.g6.large-EniTrunkSupported-false"),
        pytest.param("ecs.g8i.4xlarge", None, None, id="ecs.g8i.4xlarge-unknown"),
    ],
)
def test_trunk_members_and_member_eni_limit(name: str, members: int | None, limit: int | None) -> None:
    result = cap(name, mode="trunk")
    assert (result.trunk_pods, result.max_member_enis) == (members, limit)
    if members is not None:
        assert result.max_pods == result.shared_eni_pods + members + 2  # type: ignore[operator]


@pytest.mark.parametrize(
    ("name", "dual", "reason"),
    [
        pytest.param("ecs.g8i.xlarge", True, None, id="ecs.g8i.xlarge"),
        pytest.param("ecs.g6.xlarge", False, "1 IPv6 vs 10 IPv4 per ENI (they must be equal)", id="ecs.g6.xlarge"),
        pytest.param("ecs.ic5.large", False, "no IPv6", id="ecs.ic5.large-ipv6-0"),
        pytest.param("ecs.re8.120xlarge", None, "not in the catalog", id="ecs.re8.120xlarge-no-ipv6-column"),
    ],
)
def test_dual_stack_eligibility_with_reason(name: str, dual: bool | None, reason: str | None) -> None:
    result = cap(name, ipv6=True)
    assert result.dual_stack is dual
    if reason is None:
        assert result.dual_stack_reason is None and result.notes == ()
    else:
        assert reason in (result.dual_stack_reason or "")
        assert any(reason in n for n in result.notes)


@pytest.mark.parametrize(
    ("name", "caps", "usable", "shared_ok", "exclusive_ok"),
    [
        pytest.param("ecs.g8i.4xlarge", EniCaps(), 7, True, True, id="ecs.g8i.4xlarge"),
        pytest.param("ecs.g8i.4xlarge", EniCaps(eni_cap_ratio=0.5), 3, True, False, id="ecs.g8i.4xlarge-ratio"),
        pytest.param("ecs.g9i.large", EniCaps(), 2, True, False, id="ecs.g9i.large"),
        pytest.param("ecs.g9i.large", EniCaps(max_eni=1), 1, False, False, id="ecs.g9i.large-max_eni-1"),
        pytest.param("ecs.c9i.16xlarge", EniCaps(eni_cap_shift=-1, max_eni=6), 6, True, False,
                     id="ecs.c9i.16xlarge-shift-and-cap"),
    ],
)
def test_ack_minimums_after_eni_conf(
    name: str, caps: EniCaps, usable: int, shared_ok: bool, exclusive_ok: bool
) -> None:
    it = row(name)
    result = cap(name, caps=caps)
    assert result.usable_enis == usable
    assert result.shared_eni_pods == usable * it.eni_private_ip_quantity  # type: ignore[operator]
    assert result.shared_eni_ok is shared_ok and result.exclusive_eni_ok is exclusive_ok


def test_min_eni_above_the_usable_enis_is_noted() -> None:
    result = cap("ecs.g8i.xlarge", caps=EniCaps(min_eni=5))
    assert result.usable_enis == 3
    assert any("min_eni 5 is more than the 3 usable ENIs" in n for n in result.notes)


def test_ipv4_prefix_count_above_what_the_type_holds_is_noted() -> None:
    result = cap("ecs.g8a.xlarge", caps=EniCaps(enable_ip_prefix=True, ipv4_prefix_count=57))
    assert any("ipv4_prefix_count 57 is more than the 56 prefixes" in n for n in result.notes)
    assert cap("ecs.g8a.xlarge", caps=EniCaps(enable_ip_prefix=True, ipv4_prefix_count=56)).notes == ()


def test_eni_conf_reads_every_capacity_key() -> None:
    conf = {"max_eni": 5, "min_eni": 2, "eni_cap_ratio": 0.5, "eni_cap_shift": -1, "enable_ip_prefix": True,
            "ipv4_prefix_count": 8, "enable_erdma": True, "vswitches": {}}
    assert eni_caps_from_conf(conf, "f") == EniCaps(5, 0.5, -1, 2, True, 8, True)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        pytest.param({"min_eni": -1}, "min_eni must be 0 or positive", id="negative-min"),
        pytest.param({"min_eni": 4, "max_eni": 2}, "min_eni 4 is more than max_eni 2", id="min-above-max"),
        pytest.param({"ipv4_prefix_count": -3}, "ipv4_prefix_count must be 0 or positive", id="negative-prefixes"),
        pytest.param({"ipv4_prefix_count": "8"}, "ipv4_prefix_count must be a whole number", id="string-prefixes"),
        pytest.param({"enable_ip_prefix": "true"}, "enable_ip_prefix must be true or false", id="string-bool"),
        pytest.param({"enable_erdma": 1}, "enable_erdma must be true or false", id="int-bool"),
        pytest.param({"eni_cap_shift": 100}, "eni_cap_shift must be between", id="shift-out-of-range"),
    ],
)
def test_bad_capacity_keys_name_the_key_and_hint(conf: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        eni_caps_from_conf(conf, "f")
    assert message in info.value.message
    assert info.value.hint


@pytest.mark.parametrize(
    ("patterns", "families", "names"),
    [
        pytest.param(["ECS.G7.XLARGE"], [], ["ecs.g7.xlarge"], id="upper-name"),
        pytest.param(["Ecs.G8i.XLarge"], [], ["ecs.g8i.xlarge"], id="mixed-name"),
        pytest.param(["ECS.G9I.*LARGE"], [], None, id="upper-glob"),
        pytest.param([], ["ECS.G8I"], None, id="upper-family"),
    ],
)
def test_names_globs_and_families_ignore_case(
    patterns: list[str], families: list[str], names: list[str] | None
) -> None:
    catalog = embedded_catalog()
    chosen = [t.name for t in catalog.select(patterns, families)]
    expected = names or [t.name for t in catalog.select([p.lower() for p in patterns], [f.lower() for f in families])]
    assert chosen == expected and chosen


@pytest.mark.parametrize(
    ("patterns", "families"),
    [
        pytest.param(["ecs.g6.xlarge"], [], id="one-name"),
        pytest.param(["ECS.G8I.*", "ecs.c9i.large"], ["ecs.r8a"], id="glob-name-family"),
        pytest.param(["ecs.g6.xlargee"], [], id="miss-falls-back"),
    ],
)
def test_subset_parse_picks_what_select_picks(patterns: list[str], families: list[str]) -> None:
    from terwayctl.core.catalog import parse_catalog_subset
    from terwayctl.data import CATALOG_FILE

    subset = parse_catalog_subset(CATALOG_FILE.read_text(encoding="utf-8"), EMBEDDED_SOURCE, patterns, families)
    if patterns == ["ecs.g6.xlargee"]:
        assert subset is None
        return
    assert subset is not None
    assert subset.select(patterns, families) == embedded_catalog().select(patterns, families)
