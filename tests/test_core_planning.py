"""The CIDR planner and its checks, with hypothesis properties on the layouts it makes."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terwayctl.core.errors import InvalidInput
from terwayctl.core.planning import (
    FAIL,
    OK,
    WARN,
    CheckRequest,
    PlanRequest,
    check,
    free_space,
    parse_cidr,
    plan,
    prefix_for,
    usable_addresses,
)


def statuses(report_checks: list[object], check_id: str) -> set[str]:
    return {c.status for c in report_checks if c.id == check_id}  # type: ignore[attr-defined]


def test_default_plan_reproduces_the_documented_layout() -> None:
    result = plan(PlanRequest())
    assert [(v.role, v.cidr) for v in result.vswitches] == [("node", "192.168.0.0/19"), ("pod", "192.168.32.0/19")]
    assert result.service_cidr == "172.21.0.0/20"
    assert result.vpc == "192.168.0.0/16"
    assert result.vswitches[0].usable_addresses == 8192 - 4
    assert result.free_cidrs == ["192.168.64.0/18", "192.168.128.0/17"]
    assert result.free_addresses == 65536 - 2 * 8192
    assert not result.failed


def test_usable_addresses_keep_four_reserved() -> None:
    assert usable_addresses(ipaddress.IPv4Network("10.0.0.0/29")) == 4
    assert usable_addresses(ipaddress.IPv4Network("10.0.0.0/24")) == 252


@pytest.mark.parametrize(("count", "prefix"), [(1, 29), (4, 29), (5, 28), (252, 24), (253, 23), (8188, 19)])
def test_prefix_for(count: int, prefix: int) -> None:
    assert prefix_for(count) == prefix


def test_zones_get_one_node_and_one_pod_vswitch_each() -> None:
    result = plan(PlanRequest(zones=("cn-hangzhou-i", "cn-hangzhou-j")))
    assert [(v.zone, v.role) for v in result.vswitches] == [
        ("cn-hangzhou-i", "node"),
        ("cn-hangzhou-i", "pod"),
        ("cn-hangzhou-j", "node"),
        ("cn-hangzhou-j", "pod"),
    ]


def test_sizes_follow_nodes_pods_and_growth() -> None:
    # 300 nodes x 64 pods x growth 2 = 38400 pod IPs -> a /16 is too big for the VPC, /17 holds 32764: too
    # small; so use a /8 VPC where a /16 fits.
    result = plan(PlanRequest(vpc="10.0.0.0/8", nodes=300, pods_per_node=64))
    pod = next(v for v in result.vswitches if v.role == "pod")
    assert pod.cidr.endswith("/16")
    assert statuses(result.checks, "pod-capacity") == {OK}


def test_small_vpc_falls_back_to_needed_sizes() -> None:
    result = plan(PlanRequest(vpc="10.1.0.0/24", nodes=10, pods_per_node=5))
    cidrs = {v.role: v.cidr for v in result.vswitches}
    assert cidrs == {"pod": "10.1.0.0/25", "node": "10.1.0.128/27"}
    assert statuses(result.checks, "pod-vswitch-size") == {WARN}


def test_plan_that_cannot_fit_says_what_to_change() -> None:
    with pytest.raises(InvalidInput) as info:
        plan(PlanRequest(vpc="10.1.0.0/24", nodes=100, pods_per_node=30))
    assert "larger --vpc" in (info.value.hint or "")


def test_request_beyond_a_slash16_vswitch_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        plan(PlanRequest(vpc="10.0.0.0/8", nodes=2000, pods_per_node=64))
    assert "more --zones" in (info.value.hint or "")


def test_avoid_ranges_are_skipped() -> None:
    result = plan(PlanRequest(avoid=("192.168.0.0/20", "192.168.40.0/21")))
    cidrs = [ipaddress.IPv4Network(v.cidr) for v in result.vswitches]
    for avoided in ("192.168.0.0/20", "192.168.40.0/21"):
        assert not any(c.overlaps(ipaddress.IPv4Network(avoided)) for c in cidrs)
    assert "192.168.0.0/20" not in result.free_cidrs


@pytest.mark.parametrize(
    ("request_", "check_id"),
    [
        pytest.param(PlanRequest(vpc="8.8.0.0/16"), "vpc-range", id="public-vpc"),
        pytest.param(PlanRequest(vpc="10.0.0.0/25"), "vpc-mask", id="vpc-too-narrow"),
        pytest.param(PlanRequest(vpc="10.0.0.0/7", allow_public_vpc=True), "vpc-mask", id="vpc-too-wide"),
        pytest.param(PlanRequest(service_cidr="192.168.200.0/24"), "service-outside-vpc", id="service-in-vpc"),
        pytest.param(PlanRequest(vpc="100.64.0.0/16", allow_public_vpc=True), "cloud-service-range", id="cloud-range"),
        pytest.param(PlanRequest(service_cidr="100.100.0.0/20"), "cloud-service-range", id="service-cloud-range"),
    ],
)
def test_failing_checks(request_: PlanRequest, check_id: str) -> None:
    result = plan(request_)
    assert FAIL in statuses(result.checks, check_id)


def test_public_vpc_allowed_is_a_warning() -> None:
    result = plan(PlanRequest(vpc="8.8.0.0/16", allow_public_vpc=True))
    assert statuses(result.checks, "vpc-range") == {WARN}
    assert not result.failed


def test_docker_bridge_overlap_warns() -> None:
    result = plan(PlanRequest(service_cidr="172.17.0.0/20"))
    assert statuses(result.checks, "docker-bridge") == {WARN}
    assert not result.failed


def test_ipv6_slots_and_dual_stack_type() -> None:
    result = plan(PlanRequest(ipv6=True, zones=("a", "b")))
    assert [v.ipv6_slot for v in result.vswitches] == [0, 1, 2, 3]
    bad = plan(PlanRequest(ipv6=True, dual_stack_capable=False))
    assert FAIL in statuses(bad.checks, "ipv6-instance-type")


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        pytest.param(PlanRequest(vpc="192.168.1.0/16"), "host bits", id="host-bits"),
        pytest.param(PlanRequest(vpc="banana"), "not an IPv4 CIDR", id="garbage"),
        pytest.param(PlanRequest(vpc="fd00::/48"), "not an IPv4 CIDR", id="ipv6-vpc"),
        pytest.param(PlanRequest(zones=()), "at least one zone", id="no-zones"),
        pytest.param(PlanRequest(zones=("a", "a")), "twice", id="dup-zone"),
        pytest.param(PlanRequest(nodes=0), "--nodes", id="zero-nodes"),
        pytest.param(PlanRequest(nodes=1, pods_per_node=-3), "--pods-per-node", id="negative-pods"),
        pytest.param(PlanRequest(growth=0.5), "--growth", id="growth-below-1"),
        pytest.param(PlanRequest(growth=float("nan")), "--growth", id="growth-nan"),
        pytest.param(PlanRequest(avoid=("10.0.0.1/8",)), "host bits", id="avoid-host-bits"),
    ],
)
def test_bad_plan_input(request_: PlanRequest, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        plan(request_)
    assert message in info.value.message


def test_host_bits_hint_gives_the_network() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_cidr("192.168.1.0/16", "VPC CIDR")
    assert info.value.hint == "did you mean 192.168.0.0/16?"


def test_check_accepts_the_default_layout() -> None:
    result = check(
        CheckRequest(
            vpc="192.168.0.0/16",
            node_vswitches=("192.168.0.0/19",),
            pod_vswitches=("192.168.32.0/19",),
            nodes=100,
            pods_per_node=60,
        )
    )
    assert not result.failed


@pytest.mark.parametrize(
    ("request_", "check_id", "status"),
    [
        pytest.param(
            CheckRequest("192.168.0.0/16", ("192.168.0.0/19",), ("192.168.16.0/20",)), "overlap", FAIL, id="overlap"
        ),
        pytest.param(CheckRequest("192.168.0.0/16", ("10.0.0.0/24",), ("192.168.32.0/19",)), "vswitch-in-vpc", FAIL, id="outside"),
        pytest.param(CheckRequest("192.168.0.0/16", ("192.168.0.0/30",), ("192.168.32.0/19",)), "vswitch-mask", FAIL, id="mask-30"),
        pytest.param(CheckRequest("10.0.0.0/8", ("10.0.0.0/15",), ("10.2.0.0/16",)), "vswitch-mask", FAIL, id="mask-15"),
        pytest.param(CheckRequest("192.168.0.0/16", ("192.168.0.0/19",), ("192.168.32.0/24",)), "pod-vswitch-size", WARN, id="narrow-pod"),
        pytest.param(
            CheckRequest("192.168.0.0/16", ("192.168.0.0/24",), ("192.168.32.0/19",), nodes=300), "node-capacity", FAIL, id="nodes-dont-fit"
        ),
        pytest.param(
            CheckRequest("192.168.0.0/16", ("192.168.0.0/19",), ("192.168.32.0/19",), nodes=300, pods_per_node=30),
            "pod-capacity",
            FAIL,
            id="pods-dont-fit",
        ),
        pytest.param(
            CheckRequest("192.168.0.0/16", ("192.168.0.0/19",), ("192.168.32.0/19",), avoid=("192.168.32.0/24",)),
            "overlap",
            FAIL,
            id="avoid-overlap",
        ),
        pytest.param(CheckRequest("192.168.0.0/16", ("192.168.0.0/19",), ("192.168.32.0/19",), ipv6=True), "ipv6", OK, id="ipv6-ok"),
    ],
)
def test_check_findings(request_: CheckRequest, check_id: str, status: str) -> None:
    assert status in statuses(check(request_).checks, check_id)


def test_capacity_fix_names_the_prefix() -> None:
    result = check(CheckRequest("192.168.0.0/16", ("192.168.0.0/24",), ("192.168.32.0/19",), nodes=300))
    (failed,) = result.failed
    assert "/23" in failed.fix


def test_check_needs_vswitches() -> None:
    with pytest.raises(InvalidInput):
        check(CheckRequest("192.168.0.0/16", (), ("192.168.32.0/19",)))


def test_free_space_excludes_used_ranges() -> None:
    vpc = ipaddress.IPv4Network("10.0.0.0/16")
    used = [ipaddress.IPv4Network("10.0.0.0/17"), ipaddress.IPv4Network("10.0.128.0/24"), ipaddress.IPv4Network("172.16.0.0/12")]
    free = free_space(vpc, used)
    assert sum(n.num_addresses for n in free) == 65536 - 32768 - 256
    assert not any(f.overlaps(u) for f in free for u in used)


private_ranges = st.sampled_from([("10.0.0.0", 8), ("172.16.0.0", 12), ("192.168.0.0", 16)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    private=private_ranges,
    narrower_by=st.integers(min_value=0, max_value=8),
    zones=st.integers(min_value=1, max_value=4),
    nodes=st.one_of(st.none(), st.integers(min_value=1, max_value=500)),
    pods=st.one_of(st.none(), st.integers(min_value=1, max_value=110)),
    growth=st.floats(min_value=1, max_value=4),
    avoid_index=st.one_of(st.none(), st.integers(min_value=0, max_value=15)),
)
def test_planned_ranges_never_overlap_and_stay_in_the_vpc(
    private: tuple[str, int],
    narrower_by: int,
    zones: int,
    nodes: int | None,
    pods: int | None,
    growth: float,
    avoid_index: int | None,
) -> None:
    base, base_prefix = private
    network = ipaddress.IPv4Network(f"{base}/{base_prefix + narrower_by}")
    avoid: tuple[str, ...] = ()
    if avoid_index is not None:
        quarter = list(network.subnets(prefixlen_diff=4))[avoid_index]
        avoid = (str(quarter),)
    request = PlanRequest(
        vpc=str(network),
        zones=tuple(f"z{i}" for i in range(zones)),
        nodes=nodes,
        pods_per_node=pods if nodes else None,
        growth=growth,
        avoid=avoid,
        service_cidr="192.168.0.0/20" if base == "172.16.0.0" else "172.21.0.0/20",
    )
    try:
        result = plan(request)
    except InvalidInput:
        return  # a request that does not fit is refused, which is allowed
    assert not result.failed
    cidrs = [ipaddress.IPv4Network(v.cidr) for v in result.vswitches]
    assert len(cidrs) == 2 * zones
    for a, b in itertools.combinations(cidrs, 2):
        assert not a.overlaps(b)
    for c in cidrs:
        assert c.subnet_of(network)
        for avoided in avoid:
            assert not c.overlaps(ipaddress.IPv4Network(avoided))
    free = [ipaddress.IPv4Network(f) for f in result.free_cidrs]
    assert not any(f.overlaps(c) for f in free for c in cidrs)
