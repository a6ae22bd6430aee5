"""CIDR planning for a Terway VPC: vSwitches per zone, the service CIDR, and the checks on them.

All address maths uses the standard `ipaddress` module; nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from terwayctl.core import defaults
from terwayctl.core.errors import InvalidInput

Net = ipaddress.IPv4Network

OK, WARN, FAIL = "ok", "warn", "fail"
NODE, POD = "node", "pod"


@dataclass(frozen=True)
class Check:
    """One rule applied to a layout: its status, why, and how to fix it."""

    id: str
    status: str
    message: str
    fix: str = ""


@dataclass(frozen=True)
class VSwitch:
    zone: str
    role: str
    cidr: Net

    @property
    def usable(self) -> int:
        return usable_addresses(self.cidr)


@dataclass(frozen=True)
class Layout:
    """A complete address layout, planned or given, plus what it must hold."""

    vpc: Net
    vswitches: tuple[VSwitch, ...]
    service_cidr: Net
    avoid: tuple[Net, ...] = ()
    nodes: int | None = None
    pods_per_node: int | None = None
    growth: float = 2.0
    allow_public_vpc: bool = False
    ipv6: bool = False
    dual_stack_capable: bool | None = None


@dataclass(frozen=True)
class PlanRequest:
    vpc: str = defaults.DEFAULT_VPC_CIDR
    zones: tuple[str, ...] = ("zone-1",)
    nodes: int | None = None
    pods_per_node: int | None = None
    service_cidr: str = defaults.DEFAULT_SERVICE_CIDR
    ipv6: bool = False
    avoid: tuple[str, ...] = ()
    growth: float = 2.0
    allow_public_vpc: bool = False
    dual_stack_capable: bool | None = None


@dataclass(frozen=True)
class VSwitchRow:
    zone: str
    role: str
    cidr: str
    usable_addresses: int
    holds: str
    ipv6_slot: int | None


@dataclass(frozen=True)
class PlanReport:
    """What `plan` and `plan check` print: the layout, its checks and the VPC's free space."""

    vpc: str
    vswitches: list[VSwitchRow]
    service_cidr: str
    service_addresses: int
    free_cidrs: list[str]
    free_addresses: int
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]


def usable_addresses(cidr: Net) -> int:
    """Alibaba Cloud keeps the first and the last three addresses of a vSwitch."""
    return max(cidr.num_addresses - defaults.VSWITCH_RESERVED_ADDRESSES, 0)


def parse_cidr(text: str, what: str) -> Net:
    """An IPv4 network in CIDR notation; host bits set is an error with the corrected network."""
    try:
        return ipaddress.IPv4Network(text.strip(), strict=True)
    except ValueError as exc:
        try:
            fixed = ipaddress.IPv4Network(text.strip(), strict=False)
        except ValueError:
            raise InvalidInput(
                f"{what} {text!r} is not an IPv4 CIDR ({exc})", hint="write it like 192.168.0.0/16"
            ) from None
        raise InvalidInput(
            f"{what} {text!r} has host bits set", hint=f"did you mean {fixed}?"
        ) from None


def prefix_for(count: int) -> int:
    """The longest prefix whose usable addresses hold `count` (no narrower than /29)."""
    for prefix in range(defaults.VSWITCH_MAX_PREFIX, 0, -1):
        if usable_addresses(ipaddress.IPv4Network(f"0.0.0.0/{prefix}")) >= count:
            return prefix
    return 0


def plan(request: PlanRequest) -> PlanReport:
    """Lay out node and pod vSwitches per zone inside the VPC, then check the result."""
    _validate_request(request)
    vpc = parse_cidr(request.vpc, "VPC CIDR")
    service = parse_cidr(request.service_cidr, "service CIDR")
    avoid = tuple(parse_cidr(a, "--avoid range") for a in request.avoid)
    pre = _vpc_checks(vpc, request.allow_public_vpc)
    if any(c.status == FAIL for c in pre):
        return _report(_layout(request, vpc, (), service, avoid), pre)
    blocked = [n for n in (*avoid, service) if n.overlaps(vpc)]
    node_prefix, pod_prefix = _needed_prefixes(request)
    preferred = (
        min(node_prefix, defaults.DEFAULT_VSWITCH_PREFIX),
        min(pod_prefix, defaults.RECOMMENDED_POD_VSWITCH_PREFIX),
    )
    vswitches = _allocate(vpc, request.zones, *preferred, blocked)
    if vswitches is None and preferred != (node_prefix, pod_prefix):
        vswitches = _allocate(vpc, request.zones, node_prefix, pod_prefix, blocked)
    if vswitches is None:
        needed = (2 ** (32 - node_prefix) + 2 ** (32 - pod_prefix)) * len(request.zones)
        raise InvalidInput(
            f"the VPC {vpc} has no room for /{node_prefix} node and /{pod_prefix} pod vSwitches "
            f"in {len(request.zones)} zone(s) ({needed} addresses) besides the ranges to avoid",
            hint="use a larger --vpc, fewer --zones, fewer --nodes or --pods-per-node, "
            "or a smaller --growth",
        )
    layout = _layout(request, vpc, tuple(vswitches), service, avoid)
    return _report(layout, check_layout(layout))


def _validate_request(request: PlanRequest) -> None:
    if not request.zones or any(not z.strip() for z in request.zones):
        raise InvalidInput("--zones needs at least one zone name", hint="e.g. --zones cn-hangzhou-i,cn-hangzhou-j")
    if len(set(request.zones)) != len(request.zones):
        raise InvalidInput(f"--zones lists a zone twice: {','.join(request.zones)}")
    for name, value in (("--nodes", request.nodes), ("--pods-per-node", request.pods_per_node)):
        if value is not None and value < 1:
            raise InvalidInput(f"{name} must be 1 or more, got {value}")
    if not request.growth >= 1 or math.isinf(request.growth):
        raise InvalidInput(
            f"--growth must be a finite factor of 1 or more, got {request.growth}",
            hint="--growth 2 plans for twice the nodes and pods you asked for",
        )


def _layout(
    request: PlanRequest, vpc: Net, vswitches: tuple[VSwitch, ...], service: Net, avoid: tuple[Net, ...]
) -> Layout:
    return Layout(
        vpc=vpc,
        vswitches=vswitches,
        service_cidr=service,
        avoid=avoid,
        nodes=request.nodes,
        pods_per_node=request.pods_per_node,
        growth=request.growth,
        allow_public_vpc=request.allow_public_vpc,
        ipv6=request.ipv6,
        dual_stack_capable=request.dual_stack_capable,
    )


def _needed_prefixes(request: PlanRequest) -> tuple[int, int]:
    node_prefix = pod_prefix = defaults.DEFAULT_VSWITCH_PREFIX
    if request.nodes is not None:
        node_prefix = prefix_for(math.ceil(request.nodes * request.growth))
        if request.pods_per_node is not None:
            pods = math.ceil(request.nodes * request.pods_per_node * request.growth)
            pod_prefix = prefix_for(pods)
    for prefix, role in ((node_prefix, NODE), (pod_prefix, POD)):
        if prefix < defaults.VSWITCH_MIN_PREFIX:
            raise InvalidInput(
                f"one {role} vSwitch per zone cannot hold the request: it would need a /{prefix}, "
                f"and vSwitches go up to /{defaults.VSWITCH_MIN_PREFIX}",
                hint="spread the nodes over more --zones, or lower --nodes, --pods-per-node or --growth",
            )
    return node_prefix, pod_prefix


def _allocate(
    vpc: Net, zones: Sequence[str], node_prefix: int, pod_prefix: int, blocked: Sequence[Net]
) -> list[VSwitch] | None:
    """First fit, widest first (ties keep zone order, node before pod) to limit fragmentation."""
    wanted = [(zone, role, prefix) for zone in zones for role, prefix in ((NODE, node_prefix), (POD, pod_prefix))]
    order = sorted(range(len(wanted)), key=lambda i: wanted[i][2])
    taken: list[Net] = list(blocked)
    placed: dict[int, VSwitch] = {}
    for index in order:
        zone, role, prefix = wanted[index]
        cidr = _first_free(vpc, prefix, taken)
        if cidr is None:
            return None
        taken.append(cidr)
        placed[index] = VSwitch(zone=zone, role=role, cidr=cidr)
    return [placed[i] for i in range(len(wanted))]


def _first_free(vpc: Net, prefix: int, taken: Sequence[Net]) -> Net | None:
    if prefix < vpc.prefixlen:
        return None
    size = 2 ** (32 - prefix)
    start = int(vpc.network_address)
    end = int(vpc.broadcast_address)
    while start + size - 1 <= end:
        candidate = ipaddress.IPv4Network((start, prefix))
        clash = next((t for t in taken if t.overlaps(candidate)), None)
        if clash is None:
            return candidate
        # Jump past the clash, then up to the next boundary aligned to this size.
        after = int(clash.broadcast_address) + 1
        start = max(start + size, -(-after // size) * size)
    return None


def check_layout(layout: Layout) -> list[Check]:
    """Every check on a layout; a plan is good when none of them fails."""
    checks = _vpc_checks(layout.vpc, layout.allow_public_vpc)
    checks += _vswitch_checks(layout)
    checks += _overlap_checks(layout)
    checks += _capacity_checks(layout)
    checks += _ipv6_checks(layout)
    return checks


def _vpc_checks(vpc: Net, allow_public: bool) -> list[Check]:
    private = [ipaddress.IPv4Network(r) for r in defaults.PRIVATE_VPC_RANGES]
    checks = []
    if any(vpc.subnet_of(p) for p in private):
        checks.append(Check("vpc-range", OK, f"VPC {vpc} is in a private range"))
    elif allow_public:
        checks.append(Check("vpc-range", WARN, f"VPC {vpc} is a public range (allowed by --allow-public-vpc)"))
    else:
        checks.append(
            Check(
                "vpc-range",
                FAIL,
                f"VPC {vpc} is not inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16",
                "choose a private VPC CIDR, or pass --allow-public-vpc if you really use a public range",
            )
        )
    lo, hi = defaults.VPC_MIN_PREFIX, defaults.VPC_MAX_PREFIX
    if lo <= vpc.prefixlen <= hi:
        checks.append(Check("vpc-mask", OK, f"VPC mask /{vpc.prefixlen} is within /{lo} to /{hi}"))
    else:
        checks.append(
            Check("vpc-mask", FAIL, f"VPC mask /{vpc.prefixlen} is outside /{lo} to /{hi}", f"use a VPC mask from /{lo} to /{hi}")
        )
    return checks


def _vswitch_checks(layout: Layout) -> list[Check]:
    checks: list[Check] = []
    lo, hi = defaults.VSWITCH_MIN_PREFIX, defaults.VSWITCH_MAX_PREFIX
    for vsw in layout.vswitches:
        name = f"{vsw.role} vSwitch {vsw.cidr}"
        if not lo <= vsw.cidr.prefixlen <= hi:
            checks.append(Check("vswitch-mask", FAIL, f"{name}: mask outside /{lo} to /{hi}", f"use a mask from /{lo} to /{hi}"))
        if not vsw.cidr.subnet_of(layout.vpc):
            checks.append(Check("vswitch-in-vpc", FAIL, f"{name} is not inside the VPC {layout.vpc}", "pick a vSwitch CIDR inside the VPC CIDR"))
        if vsw.role == POD and vsw.cidr.prefixlen > defaults.RECOMMENDED_POD_VSWITCH_PREFIX:
            checks.append(
                Check(
                    "pod-vswitch-size",
                    WARN,
                    f"{name} is narrower than the recommended /{defaults.RECOMMENDED_POD_VSWITCH_PREFIX}",
                    f"give pods a /{defaults.RECOMMENDED_POD_VSWITCH_PREFIX} or wider vSwitch; add more later with 'terwayctl vswitch add'",
                )
            )
    if not checks:
        checks.append(Check("vswitches", OK, f"{len(layout.vswitches)} vSwitch(es) inside the VPC with valid masks"))
    return checks


def _named_ranges(layout: Layout) -> list[tuple[str, Net]]:
    ranges = [(f"{v.role} vSwitch {v.cidr}" + (f" ({v.zone})" if v.zone else ""), v.cidr) for v in layout.vswitches]
    ranges.append((f"service CIDR {layout.service_cidr}", layout.service_cidr))
    ranges.extend((f"avoided range {a}", a) for a in layout.avoid)
    return ranges


def _overlap_checks(layout: Layout) -> list[Check]:
    checks: list[Check] = []
    ranges = _named_ranges(layout)
    for i, (name_a, a) in enumerate(ranges):
        for name_b, b in ranges[i + 1 :]:
            if a.overlaps(b) and not (name_a.startswith("avoided") and name_b.startswith("avoided")):
                checks.append(Check("overlap", FAIL, f"{name_a} overlaps {name_b}", "move one of them to a free range"))
    if layout.service_cidr.overlaps(layout.vpc):
        checks.append(
            Check(
                "service-outside-vpc",
                FAIL,
                f"service CIDR {layout.service_cidr} overlaps the VPC {layout.vpc}",
                f"pick a service CIDR outside the VPC, e.g. {defaults.DEFAULT_SERVICE_CIDR}",
            )
        )
    checks += _reserved_range_checks(layout)
    if not checks:
        checks.append(Check("overlap", OK, "no two ranges overlap"))
    return checks


def _reserved_range_checks(layout: Layout) -> list[Check]:
    cloud = ipaddress.IPv4Network(defaults.CLOUD_SERVICE_RANGE)
    docker = ipaddress.IPv4Network(defaults.DOCKER_DEFAULT_BRIDGE)
    checks = []
    for name, net in [("VPC " + str(layout.vpc), layout.vpc), *_named_ranges(layout)]:
        if name.startswith("avoided"):
            continue
        if net.overlaps(cloud):
            checks.append(
                Check("cloud-service-range", FAIL, f"{name} overlaps {cloud}, which Alibaba Cloud services use", f"keep clear of {cloud}")
            )
        if net.overlaps(docker):
            checks.append(
                Check(
                    "docker-bridge",
                    WARN,
                    f"{name} overlaps docker's default bridge {docker}",
                    "nodes running docker will route that range to docker0; set docker's bip or avoid the range",
                )
            )
    return checks


def _capacity_checks(layout: Layout) -> list[Check]:
    if layout.nodes is None:
        return [Check("capacity", OK, "no --nodes given: sizes not checked against a load")]
    checks = []
    for zone in sorted({v.zone for v in layout.vswitches}):
        checks += _zone_capacity(layout, zone)
    return checks


def _zone_capacity(layout: Layout, zone: str) -> list[Check]:
    assert layout.nodes is not None
    where = f" in {zone}" if zone else ""
    node_room = sum(v.usable for v in layout.vswitches if v.zone == zone and v.role == NODE)
    need_nodes = math.ceil(layout.nodes * layout.growth)
    checks = [_fits("node-capacity", f"node vSwitches{where}", node_room, need_nodes, f"{layout.nodes} nodes x growth {layout.growth:g}")]
    if layout.pods_per_node is not None:
        pod_room = sum(v.usable for v in layout.vswitches if v.zone == zone and v.role == POD)
        need_pods = math.ceil(layout.nodes * layout.pods_per_node * layout.growth)
        load = f"{layout.nodes} nodes x {layout.pods_per_node} pods x growth {layout.growth:g}"
        checks.append(_fits("pod-capacity", f"pod vSwitches{where}", pod_room, need_pods, load))
    return checks


def _fits(check_id: str, what: str, room: int, need: int, load: str) -> Check:
    if room >= need:
        return Check(check_id, OK, f"{what} hold {room} addresses, {need} needed ({load})")
    return Check(
        check_id,
        FAIL,
        f"{what} hold {room} addresses but {need} are needed ({load})",
        f"widen the vSwitch(es) to /{prefix_for(need)} or add another, or plan fewer nodes or pods",
    )


def _ipv6_checks(layout: Layout) -> list[Check]:
    if not layout.ipv6:
        return []
    checks = []
    if len(layout.vswitches) > defaults.VPC_IPV6_VSWITCH_SLOTS:
        checks.append(
            Check("ipv6-slots", FAIL, f"{len(layout.vswitches)} vSwitches but the VPC's IPv6 /56 has 256 /64 slots", "use fewer vSwitches")
        )
    if layout.dual_stack_capable is False:
        checks.append(
            Check(
                "ipv6-instance-type",
                FAIL,
                "the instance type cannot run shared-ENI dual stack (IPv6 per ENI != IPv4 per ENI)",
                "pick a type where both are equal (see 'terwayctl capacity --ipv6')",
            )
        )
    if not checks:
        checks.append(Check("ipv6", OK, "each vSwitch gets one IPv6 /64 of the VPC's /56"))
    return checks


def _report(layout: Layout, checks: list[Check]) -> PlanReport:
    rows = [
        VSwitchRow(
            zone=v.zone,
            role=v.role,
            cidr=str(v.cidr),
            usable_addresses=v.usable,
            holds=_holds(v, layout),
            ipv6_slot=index if layout.ipv6 else None,
        )
        for index, v in enumerate(layout.vswitches)
    ]
    free = free_space(layout.vpc, [v.cidr for v in layout.vswitches] + list(layout.avoid) + [layout.service_cidr])
    return PlanReport(
        vpc=str(layout.vpc),
        vswitches=rows,
        service_cidr=str(layout.service_cidr),
        service_addresses=layout.service_cidr.num_addresses,
        free_cidrs=[str(n) for n in free],
        free_addresses=sum(n.num_addresses for n in free),
        checks=checks,
    )


def _holds(vsw: VSwitch, layout: Layout) -> str:
    if vsw.role == NODE:
        return f"{vsw.usable} nodes"
    if layout.pods_per_node:
        return f"{vsw.usable} pods ({vsw.usable // layout.pods_per_node} nodes at {layout.pods_per_node} pods)"
    return f"{vsw.usable} pods"


def free_space(vpc: Net, used: Iterable[Net]) -> list[Net]:
    """The VPC minus every range in `used`, as the fewest CIDRs, in address order."""
    free = [vpc]
    for block in used:
        if not block.overlaps(vpc):
            continue
        next_free: list[Net] = []
        for net in free:
            if not net.overlaps(block):
                next_free.append(net)
            elif block.subnet_of(net):
                next_free.extend(net.address_exclude(block))
            # else: block covers net entirely, drop it
        free = next_free
    return sorted(ipaddress.collapse_addresses(free))


@dataclass(frozen=True)
class CheckRequest:
    """An existing layout to validate with the same checks as a plan (`plan check`)."""

    vpc: str
    node_vswitches: tuple[str, ...]
    pod_vswitches: tuple[str, ...]
    service_cidr: str = defaults.DEFAULT_SERVICE_CIDR
    avoid: tuple[str, ...] = ()
    nodes: int | None = None  # per zone, as in PlanRequest; a check's vSwitches are one zone
    pods_per_node: int | None = None
    growth: float = 1.0  # applied as in PlanRequest (nodes x growth); the CLI defaults both to 2
    allow_public_vpc: bool = False
    ipv6: bool = False


def check(request: CheckRequest) -> PlanReport:
    """Validate a given layout; vSwitches carry no zone, so capacity is checked in total."""
    if not request.node_vswitches or not request.pod_vswitches:
        raise InvalidInput(
            "plan check needs at least one --node-vswitch and one --pod-vswitch",
            hint="e.g. --node-vswitch 192.168.0.0/19 --pod-vswitch 192.168.32.0/19",
        )
    _validate_request(
        PlanRequest(nodes=request.nodes, pods_per_node=request.pods_per_node, growth=request.growth)
    )
    vswitches = tuple(
        VSwitch(zone="", role=role, cidr=parse_cidr(text, f"{role} vSwitch"))
        for role, texts in ((NODE, request.node_vswitches), (POD, request.pod_vswitches))
        for text in texts
    )
    layout = Layout(
        vpc=parse_cidr(request.vpc, "VPC CIDR"),
        vswitches=vswitches,
        service_cidr=parse_cidr(request.service_cidr, "service CIDR"),
        avoid=tuple(parse_cidr(a, "--avoid range") for a in request.avoid),
        nodes=request.nodes,
        pods_per_node=request.pods_per_node,
        growth=request.growth,
        allow_public_vpc=request.allow_public_vpc,
        ipv6=request.ipv6,
    )
    return _report(layout, check_layout(layout))


POD_VSWITCH_WIDEST_DEFAULT = 19
"""A new pod vSwitch is a /19 or wider unless the caller asks otherwise."""


def pod_vswitch_cidr(
    vpc: Net, taken: Iterable[Net], need_ips: int, *, widest_prefix: int = POD_VSWITCH_WIDEST_DEFAULT
) -> Net:
    """A free CIDR for one new pod vSwitch in `vpc`: sized for `need_ips` and at least a /`widest_prefix`,
    first fit, never overlapping `taken` (existing vSwitches, the service CIDR, ranges to avoid).

    InvalidInput when the VPC has no free block that large.
    """
    taken = list(taken)
    prefix = min(prefix_for(need_ips), widest_prefix)
    if prefix < defaults.VSWITCH_MIN_PREFIX:
        raise InvalidInput(f"one vSwitch cannot hold {need_ips} pod IPs (a vSwitch is at most a "
                           f"/{defaults.VSWITCH_MIN_PREFIX})", hint="add several vSwitches, or pass --cidr")
    cidr = _first_free(vpc, prefix, taken)
    if cidr is None:
        free = ", ".join(str(n) for n in free_space(vpc, taken)) or "none"
        raise InvalidInput(f"VPC {vpc} has no free /{prefix} for a new pod vSwitch (free: {free})",
                           hint="pass a smaller --cidr from the free space, or add a secondary CIDR to the VPC")
    return cidr
