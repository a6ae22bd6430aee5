"""Pod capacity per instance type, exactly as Terway and ACK compute it (docs/capacity.md).

Upstream AliyunContainerService/terway @89aadf8: pkg/aliyun/client/limit.go (the Limits of a type:
MultiIPPod, ExclusiveENIPod, TrunkPod, MaximumTrunkPod, ERDMARes, SupportMultiIPIPv6),
pkg/controller/node/node.go (the prefix-mode figure) and daemon/config.go (the eni_conf caps).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from terwayctl.core import defaults
from terwayctl.core.catalog import InstanceType
from terwayctl.core.eniconf import EniCaps
from terwayctl.core.errors import InvalidInput
from terwayctl.core.sorting import natural_text_key

MODES = ("all", "eniip", "eni", "trunk", "prefix")
SORT_KEYS = ("name", "pods", "vcpu", "memory")
IPS_PER_PREFIX = 16
"""An IPv4 prefix is a /28: 16 addresses."""
ERDMA_TWO_ENIS_FROM = 8
"""Types with this many ENIs or more give eRDMA two ENIs (multi-card instances), others one."""


@dataclass(frozen=True)
class CapacityOptions:
    """How to count: the Terway mode, dual stack, host-network pods and eni_conf caps."""

    mode: str = "all"
    ipv6: bool = False
    host_network_pods: int = defaults.DEFAULT_HOST_NETWORK_PODS
    caps: EniCaps = field(default_factory=EniCaps)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInput(
                f"unknown mode {self.mode!r}", hint="use one of " + ", ".join(MODES)
            )
        if self.host_network_pods < 0:
            raise InvalidInput(
                f"host-network pods must be 0 or more, got {self.host_network_pods}"
            )

    @property
    def max_pods_mode(self) -> str:
        """The mode MAX-PODS, --min-pods and --sort pods count: 'all' means the install's own mode."""
        if self.mode != "all":
            return self.mode
        return "prefix" if self.caps.enable_ip_prefix else "eniip"


@dataclass(frozen=True)
class Capacity:
    """What one instance type holds; None means the catalog does not know."""

    name: str
    family: str
    vcpu: int | None
    memory_gib: float | None
    enis: int | None
    usable_enis: int | None
    erdma_enis: int | None
    ipv4_per_eni: int | None
    ipv6_per_eni: int | None
    total_enis: int | None
    shared_eni_pods: int | None
    exclusive_eni_pods: int | None
    trunk_pods: int | None
    max_member_enis: int | None
    prefix_pods: int | None
    shared_eni_ok: bool | None
    exclusive_eni_ok: bool | None
    dual_stack: bool | None
    dual_stack_reason: str | None
    max_pods: int | None
    max_pods_mode: str
    source: str
    catalog_date: str | None
    notes: tuple[str, ...]

    def pods(self, mode: str) -> int | None:
        """The pod IPs a node of this type offers in `mode` ("all" means the default eniip)."""
        return pods_in_mode(mode, self.shared_eni_pods, self.exclusive_eni_pods, self.trunk_pods, self.prefix_pods)


def pods_in_mode(mode: str, shared: int | None, exclusive: int | None, trunk: int | None,
                 prefix: int | None) -> int | None:
    """The pod IPs of one mode from the per-mode figures ("all" means the default eniip)."""
    if mode == "eni":
        return exclusive
    if mode == "prefix":
        return prefix
    if mode == "trunk":
        return None if shared is None or trunk is None else shared + trunk
    return shared


def usable_enis(enis: int, caps: EniCaps) -> int:
    """Secondary ENIs Terway may create: int(EniQuantity x ratio) + shift - 1, capped by max_eni."""
    count = int(enis * caps.eni_cap_ratio) + caps.eni_cap_shift - 1
    if caps.max_eni > 0:
        count = min(count, caps.max_eni)
    return max(count, 0)


def erdma_enis(enis: int) -> int:
    """ENI slots eRDMA takes (upstream Limits.ERDMARes with EriQuantity >= 2): 0 up to 2 ENIs, 2 from 8, else 1."""
    if enis <= 2:
        return 0
    return 2 if enis >= ERDMA_TWO_ENIS_FROM else 1


def trunk_pods(it: InstanceType) -> int | None:
    """Trunk member ENIs: EniTotalQuantity - EniQuantity, or 0 where trunking is unsupported."""
    if it.eni_trunk_supported is False:
        return 0
    if it.eni_trunk_supported is None or it.eni_total_quantity is None or it.eni_quantity is None:
        return None
    return max(it.eni_total_quantity - it.eni_quantity, 0)


def max_member_enis(it: InstanceType) -> int | None:
    """The member-ENI limit (upstream MaxMemberAdapterLimit): EniTotalQuantity - 2 (eth0 and the trunk ENI)."""
    if it.eni_trunk_supported is False:
        return 0
    if it.eni_trunk_supported is None or it.eni_total_quantity is None:
        return None
    return max(it.eni_total_quantity - 2, 0)


def prefix_pods(it: InstanceType) -> int | None:
    """IPv4 prefix mode: (IPv4PerAdapter - 1) x 16 x (TotalAdapters - 1), TotalAdapters = EniTotalQuantity."""
    if it.eni_private_ip_quantity is None or it.eni_total_quantity is None:
        return None
    return max(it.eni_private_ip_quantity - 1, 0) * IPS_PER_PREFIX * max(it.eni_total_quantity - 1, 0)


def dual_stack_possible(it: InstanceType) -> bool | None:
    """Shared-ENI dual stack needs as many IPv6 as IPv4 addresses per ENI (upstream SupportMultiIPIPv6)."""
    if it.eni_ipv6_quantity is None or it.eni_private_ip_quantity is None:
        return None
    return it.eni_ipv6_quantity == it.eni_private_ip_quantity


def dual_stack_reason(it: InstanceType) -> str | None:
    """Why shared-ENI dual stack is off or unknown on this type; None when it works."""
    if it.eni_ipv6_quantity is None:
        return "IPv6 per ENI (EniIpv6AddressQuantity) not in the catalog"
    if it.eni_private_ip_quantity is None:
        return "IPv4 per ENI (EniPrivateIpAddressQuantity) not in the catalog"
    if it.eni_ipv6_quantity == 0:
        return "the type has no IPv6 (EniIpv6AddressQuantity = 0)"
    if it.eni_ipv6_quantity != it.eni_private_ip_quantity:
        return (f"{it.eni_ipv6_quantity} IPv6 vs {it.eni_private_ip_quantity} IPv4 per ENI "
                "(they must be equal)")
    return None


def compute(it: InstanceType, options: CapacityOptions, source: str, date: str | None = None) -> Capacity:
    """Every capacity figure for one type, with a note for each one that cannot be known."""
    notes: list[str] = []
    caps = options.caps
    secondary = usable_enis(it.eni_quantity, caps) if it.eni_quantity is not None else None
    if secondary is None:
        notes.append("ENI count (EniQuantity) unknown in the catalog: no pod figure")
    erdma = _erdma(it, caps, notes)
    normal = None if secondary is None or erdma is None else max(secondary - erdma, 0)
    shared = _shared_pods(it, normal, notes)
    trunk = trunk_pods(it)
    if trunk is None and options.mode == "trunk":
        notes.append(
            "trunk unknown: EniTotalQuantity/EniTrunkSupported come only from DescribeInstanceTypes (--live)"
        )
    prefix = prefix_pods(it)
    if options.max_pods_mode == "prefix" or options.mode == "prefix":
        notes.extend(_prefix_notes(it, prefix, caps))
    if caps.min_eni and secondary is not None and caps.min_eni > secondary:
        notes.append(f"min_eni {caps.min_eni} is more than the {secondary} usable ENIs: "
                     f"Terway pre-attaches at most {secondary}")
    dual = dual_stack_possible(it)
    reason = dual_stack_reason(it)
    if options.ipv6:
        notes.extend(_dual_stack_notes(dual, reason))
    ip_pods = pods_in_mode(options.max_pods_mode, shared, normal, trunk, prefix)
    return Capacity(
        name=it.name,
        family=it.family,
        vcpu=it.vcpu,
        memory_gib=it.memory_gib,
        enis=it.eni_quantity,
        usable_enis=secondary,
        erdma_enis=erdma,
        ipv4_per_eni=it.eni_private_ip_quantity,
        ipv6_per_eni=it.eni_ipv6_quantity,
        total_enis=it.eni_total_quantity,
        shared_eni_pods=shared,
        exclusive_eni_pods=normal,
        trunk_pods=trunk,
        max_member_enis=max_member_enis(it),
        prefix_pods=prefix,
        shared_eni_ok=None if shared is None else shared > defaults.ACK_MIN_SHARED_ENI_PODS,
        exclusive_eni_ok=(
            None if normal is None else normal > defaults.ACK_MIN_EXCLUSIVE_ENI_PODS
        ),
        dual_stack=dual,
        dual_stack_reason=reason,
        max_pods=None if ip_pods is None else ip_pods + options.host_network_pods,
        max_pods_mode=options.max_pods_mode,
        source=source,
        catalog_date=date,
        notes=tuple(notes),
    )


def _erdma(it: InstanceType, caps: EniCaps, notes: list[str]) -> int | None:
    if not caps.enable_erdma:
        return 0
    if it.eni_quantity is None:
        return None
    slots = erdma_enis(it.eni_quantity)
    if slots == 0:
        notes.append(f"eRDMA off on this type: Terway uses it only with more than 2 ENIs ({it.eni_quantity})")
    return slots


def _prefix_notes(it: InstanceType, prefix: int | None, caps: EniCaps) -> list[str]:
    if prefix is None:
        missing = "EniTotalQuantity" if it.eni_total_quantity is None else "EniPrivateIpAddressQuantity"
        return [f"prefix unknown: {missing} not in the catalog (EniTotalQuantity comes only from "
                "DescribeInstanceTypes: try --live)"]
    holds = prefix // IPS_PER_PREFIX
    if caps.ipv4_prefix_count > holds:
        return [f"ipv4_prefix_count {caps.ipv4_prefix_count} is more than the {holds} prefixes the type holds"]
    return []


def _shared_pods(it: InstanceType, secondary: int | None, notes: list[str]) -> int | None:
    if secondary is None:
        return None
    if it.eni_private_ip_quantity is None:
        notes.append(
            "IPs per ENI (EniPrivateIpAddressQuantity) unknown in the catalog: no shared-ENI "
            "figure; check the type with DescribeInstanceTypes"
        )
        return None
    return secondary * it.eni_private_ip_quantity


def _dual_stack_notes(dual: bool | None, reason: str | None) -> list[str]:
    if dual is None:
        return [f"dual stack unknown: {reason}"]
    if not dual:
        return [f"IPv6 off on this node: {reason}"]
    return []


def report(
    types: Iterable[InstanceType],
    options: CapacityOptions,
    source: str,
    *,
    min_pods: int | None = None,
    sort: str = "name",
    reverse: bool = False,
    date: str | None = None,
) -> list[Capacity]:
    """Capacity for each type, filtered by --min-pods and sorted (unknown values last)."""
    if min_pods is not None and min_pods < 0:
        raise InvalidInput(f"--min-pods must be 0 or more, got {min_pods}")
    if sort not in SORT_KEYS:
        raise InvalidInput(f"unknown sort key {sort!r}", hint="use one of " + ", ".join(SORT_KEYS))
    rows = [compute(it, options, source, date) for it in types]
    if min_pods is not None:
        rows = [r for r in rows if _reaches(r, options, min_pods)]
    return _sorted(rows, options.max_pods_mode, sort, reverse)


def _reaches(row: Capacity, options: CapacityOptions, min_pods: int) -> bool:
    if options.ipv6 and row.dual_stack is not True and options.max_pods_mode in ("eniip", "trunk", "prefix"):
        return False
    pods = row.pods(options.max_pods_mode)
    return pods is not None and pods >= min_pods


def _sorted(rows: list[Capacity], mode: str, sort: str, reverse: bool) -> list[Capacity]:
    if sort == "name":
        return sorted(rows, key=lambda r: natural_key(r.name), reverse=reverse)

    def value(row: Capacity) -> float | None:
        if sort == "pods":
            return row.pods(mode)
        return row.vcpu if sort == "vcpu" else row.memory_gib

    keyed = [(v, r) for r in rows if (v := value(r)) is not None]
    keyed.sort(key=lambda pair: (pair[0], natural_key(pair[1].name)), reverse=reverse)
    unknown = sorted((r for r in rows if value(r) is None), key=lambda r: natural_key(r.name))
    return [r for _, r in keyed] + unknown


SIZE_WORDS = ("nano", "micro", "small", "medium", "large", "xlarge")


_SIZE = re.compile(r"(\d*)([a-z]+)")


def natural_key(name: str) -> tuple[tuple[tuple[int, str], ...], tuple[int, int, str]]:
    """Family, then size: ecs.g7.large < ecs.g7.xlarge < ecs.g7.2xlarge < ecs.g7.16xlarge."""
    family, _, size = name.rpartition(".")
    family_key = natural_text_key(family)
    match = _SIZE.fullmatch(size)
    if match and match.group(2) in SIZE_WORDS:
        return family_key, (SIZE_WORDS.index(match.group(2)), int(match.group(1) or 1), "")
    return family_key, (len(SIZE_WORDS), 0, size)


def explain(
    it: InstanceType,
    options: CapacityOptions,
    source: str,
    provenance: Mapping[str, str] | None = None,
    date: str | None = None,
) -> list[str]:
    """The formulas with the numbers put in, one line each, then where each input came from."""
    cap = compute(it, options, source, date)
    header = f"{it.name} ({source})"
    if date and date not in source:
        header = f"{it.name} ({source}, figures as of {date})"
    lines = [header]
    lines.extend(_explain_enis(it, options.caps))
    lines.extend(_explain_modes(it, cap, options.caps))
    lines.append(
        f"kubelet --max-pods ({cap.max_pods_mode}) = pod IPs + host-network pods = "
        + _fmt_sum(cap.pods(cap.max_pods_mode), options.host_network_pods, cap.max_pods)
    )
    lines.extend(f"note: {n}" for n in cap.notes)
    if provenance:
        lines.append("inputs:")
        lines.extend(
            f"  {k} = {_fmt(getattr(it, k, None))}  [{v or 'no source'}]" for k, v in provenance.items()
        )
    return lines


def _explain_enis(it: InstanceType, caps: EniCaps) -> list[str]:
    enis = it.eni_quantity
    if enis is None:
        return ["usable ENIs = EniQuantity - 1 = unknown (EniQuantity not in the catalog)"]
    if caps.is_default:
        lines = [f"usable ENIs = EniQuantity - 1 = {enis} - 1 = {usable_enis(enis, caps)}"]
    else:
        raw = int(enis * caps.eni_cap_ratio) + caps.eni_cap_shift - 1
        line = (
            f"usable ENIs = int(EniQuantity x eni_cap_ratio) + eni_cap_shift - 1 = "
            f"int({enis} x {caps.eni_cap_ratio:g}) + {caps.eni_cap_shift} - 1 = {raw}"
        )
        if caps.max_eni > 0 and raw > caps.max_eni:
            line += f", capped by max_eni = {caps.max_eni}"
        lines = [line]
    if caps.enable_erdma:
        lines.append(
            f"eRDMA ENIs (enable_erdma) = {erdma_enis(enis)}: 0 with 2 ENIs or fewer, 2 from "
            f"{ERDMA_TWO_ENIS_FROM} ENIs, else 1; EniQuantity = {enis} (assumes the type has eRDMA: "
            "EriQuantity is not in the catalog)"
        )
    return lines


def _explain_modes(it: InstanceType, cap: Capacity, caps: EniCaps) -> list[str]:
    ips = _fmt(it.eni_private_ip_quantity)
    if caps.enable_erdma:
        shared_formula = (f"(usable ENIs - eRDMA ENIs) x EniPrivateIpAddressQuantity = "
                          f"({_fmt(cap.usable_enis)} - {_fmt(cap.erdma_enis)}) x {ips}")
        exclusive_formula = f"usable ENIs - eRDMA ENIs = {_fmt(cap.usable_enis)} - {_fmt(cap.erdma_enis)}"
    else:
        shared_formula = f"usable ENIs x EniPrivateIpAddressQuantity = {_fmt(cap.usable_enis)} x {ips}"
        exclusive_formula = "usable ENIs"
    shared = (
        f"shared ENI (eniip) = {shared_formula} = {_fmt(cap.shared_eni_pods)}"
        f"  (ACK minimum > {defaults.ACK_MIN_SHARED_ENI_PODS}: {_yes_no(cap.shared_eni_ok)})"
    )
    exclusive = (
        f"exclusive ENI (eni) = {exclusive_formula} = {_fmt(cap.exclusive_eni_pods)}"
        f"  (ACK minimum > {defaults.ACK_MIN_EXCLUSIVE_ENI_PODS}: {_yes_no(cap.exclusive_eni_ok)})"
    )
    if it.eni_trunk_supported is False:
        trunk = ["trunk member ENIs = 0 (EniTrunkSupported = false)",
                 "member-ENI limit = 0 (EniTrunkSupported = false)"]
    else:
        unsupported = " (EniTrunkSupported unknown)" if it.eni_trunk_supported is None else ""
        trunk = [
            f"trunk member ENIs = EniTotalQuantity - EniQuantity = "
            f"{_fmt(it.eni_total_quantity)} - {_fmt(it.eni_quantity)} = {_fmt(cap.trunk_pods)}{unsupported}",
            f"member-ENI limit = EniTotalQuantity - 2 = {_fmt(it.eni_total_quantity)} - 2 = "
            f"{_fmt(cap.max_member_enis)}{unsupported}",
        ]
    prefix = (
        f"IPv4 prefix (enable_ip_prefix) = (EniPrivateIpAddressQuantity - 1) x {IPS_PER_PREFIX} x "
        f"(EniTotalQuantity - 1) = ({ips} - 1) x {IPS_PER_PREFIX} x ({_fmt(it.eni_total_quantity)} - 1) = "
        f"{_fmt(cap.prefix_pods)}"
    )
    if caps.enable_ip_prefix and caps.ipv4_prefix_count:
        prefix += (f"  (ipv4_prefix_count = {caps.ipv4_prefix_count} pre-allocated prefixes = "
                   f"{caps.ipv4_prefix_count * IPS_PER_PREFIX} IPs)")
    dual = (
        f"dual stack = EniIpv6AddressQuantity == EniPrivateIpAddressQuantity: "
        f"{_fmt(it.eni_ipv6_quantity)} == {ips} -> {_yes_no(cap.dual_stack)}"
    )
    if cap.dual_stack_reason:
        dual += f" ({cap.dual_stack_reason})"
    return [shared, exclusive, *trunk, prefix, dual]


def _fmt(value: object) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _fmt_sum(a: int | None, b: int, total: int | None) -> str:
    return f"{_fmt(a)} + {b} = {_fmt(total)}"
