"""Pod capacity per instance type, exactly as Terway and ACK compute it (DESIGN.md §3)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from terwayctl.core import defaults
from terwayctl.core.catalog import InstanceType
from terwayctl.core.eniconf import EniCaps
from terwayctl.core.errors import InvalidInput

MODES = ("all", "eniip", "eni", "trunk")
SORT_KEYS = ("name", "pods", "vcpu", "memory")


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


@dataclass(frozen=True)
class Capacity:
    """What one instance type holds; None means the catalog does not know."""

    name: str
    family: str
    vcpu: int | None
    memory_gib: float | None
    enis: int | None
    usable_enis: int | None
    ipv4_per_eni: int | None
    ipv6_per_eni: int | None
    shared_eni_pods: int | None
    exclusive_eni_pods: int | None
    trunk_pods: int | None
    shared_eni_ok: bool | None
    exclusive_eni_ok: bool | None
    dual_stack: bool | None
    max_pods: int | None
    max_pods_mode: str
    source: str
    notes: tuple[str, ...]

    def pods(self, mode: str) -> int | None:
        """The pod IPs a node of this type offers in `mode` ("all" means the default eniip)."""
        if mode == "eni":
            return self.exclusive_eni_pods
        if mode == "trunk":
            if self.shared_eni_pods is None or self.trunk_pods is None:
                return None
            return self.shared_eni_pods + self.trunk_pods
        return self.shared_eni_pods


def usable_enis(enis: int, caps: EniCaps) -> int:
    """Secondary ENIs Terway may create: int(EniQuantity x ratio) + shift - 1, capped by max_eni."""
    count = int(enis * caps.eni_cap_ratio) + caps.eni_cap_shift - 1
    if caps.max_eni > 0:
        count = min(count, caps.max_eni)
    return max(count, 0)


def trunk_pods(it: InstanceType) -> int | None:
    """Trunk member ENIs: EniTotalQuantity - EniQuantity, or 0 where trunking is unsupported."""
    if it.eni_trunk_supported is False:
        return 0
    if it.eni_trunk_supported is None or it.eni_total_quantity is None or it.eni_quantity is None:
        return None
    return max(it.eni_total_quantity - it.eni_quantity, 0)


def dual_stack_possible(it: InstanceType) -> bool | None:
    """Shared-ENI dual stack needs as many IPv6 as IPv4 addresses per ENI."""
    if it.eni_ipv6_quantity is None or it.eni_private_ip_quantity is None:
        return None
    return it.eni_ipv6_quantity == it.eni_private_ip_quantity


def compute(it: InstanceType, options: CapacityOptions, source: str) -> Capacity:
    """Every capacity figure for one type, with a note for each one that cannot be known."""
    notes: list[str] = []
    secondary = usable_enis(it.eni_quantity, options.caps) if it.eni_quantity is not None else None
    if secondary is None:
        notes.append("ENI count (EniQuantity) unknown in the catalog: no pod figure")
    shared = _shared_pods(it, secondary, notes)
    trunk = trunk_pods(it)
    if trunk is None and options.mode == "trunk":
        notes.append(
            "trunk unknown: EniTotalQuantity/EniTrunkSupported come only from DescribeInstanceTypes"
        )
    dual = dual_stack_possible(it)
    if options.ipv6:
        notes.extend(_dual_stack_notes(it, dual))
    partial = Capacity(
        name=it.name,
        family=it.family,
        vcpu=it.vcpu,
        memory_gib=it.memory_gib,
        enis=it.eni_quantity,
        usable_enis=secondary,
        ipv4_per_eni=it.eni_private_ip_quantity,
        ipv6_per_eni=it.eni_ipv6_quantity,
        shared_eni_pods=shared,
        exclusive_eni_pods=secondary,
        trunk_pods=trunk,
        shared_eni_ok=None if shared is None else shared > defaults.ACK_MIN_SHARED_ENI_PODS,
        exclusive_eni_ok=(
            None if secondary is None else secondary > defaults.ACK_MIN_EXCLUSIVE_ENI_PODS
        ),
        dual_stack=dual,
        max_pods=None,
        max_pods_mode=_max_pods_mode(options.mode),
        source=source,
        notes=(),
    )
    ip_pods = partial.pods(options.mode)
    max_pods = None if ip_pods is None else ip_pods + options.host_network_pods
    return replace(partial, max_pods=max_pods, notes=tuple(notes))


def _max_pods_mode(mode: str) -> str:
    return "eniip" if mode == "all" else mode


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


def _dual_stack_notes(it: InstanceType, dual: bool | None) -> list[str]:
    if dual is None:
        return ["dual stack unknown: IPv6 per ENI (EniIpv6AddressQuantity) not in the catalog"]
    if not dual:
        return [
            f"IPv6 off on this node: {it.eni_ipv6_quantity} IPv6 vs "
            f"{it.eni_private_ip_quantity} IPv4 per ENI (they must be equal)"
        ]
    return []


def report(
    types: Iterable[InstanceType],
    options: CapacityOptions,
    source: str,
    *,
    min_pods: int | None = None,
    sort: str = "name",
    reverse: bool = False,
) -> list[Capacity]:
    """Capacity for each type, filtered by --min-pods and sorted (unknown values last)."""
    if min_pods is not None and min_pods < 0:
        raise InvalidInput(f"--min-pods must be 0 or more, got {min_pods}")
    if sort not in SORT_KEYS:
        raise InvalidInput(f"unknown sort key {sort!r}", hint="use one of " + ", ".join(SORT_KEYS))
    rows = [compute(it, options, source) for it in types]
    if min_pods is not None:
        rows = [r for r in rows if _reaches(r, options, min_pods)]
    return _sorted(rows, options.mode, sort, reverse)


def _reaches(row: Capacity, options: CapacityOptions, min_pods: int) -> bool:
    if options.ipv6 and row.dual_stack is not True and options.mode in ("all", "eniip", "trunk"):
        return False
    pods = row.pods(options.mode)
    return pods is not None and pods >= min_pods


def _sorted(rows: list[Capacity], mode: str, sort: str, reverse: bool) -> list[Capacity]:
    if sort == "name":
        return sorted(rows, key=lambda r: natural_key(r.name), reverse=reverse)

    def value(row: Capacity) -> float | None:
        if sort == "pods":
            return row.pods(mode)
        return row.vcpu if sort == "vcpu" else row.memory_gib

    keyed = [(v, r) for r in rows if (v := value(r)) is not None]
    keyed.sort(key=lambda pair: (pair[0], pair[1].name), reverse=reverse)
    unknown = sorted((r for r in rows if value(r) is None), key=lambda r: r.name)
    return [r for _, r in keyed] + unknown


SIZE_WORDS = ("nano", "micro", "small", "medium", "large", "xlarge")


def natural_key(name: str) -> tuple[tuple[tuple[int, str], ...], tuple[int, int, str]]:
    """Family, then size: ecs.g7.large < ecs.g7.xlarge < ecs.g7.2xlarge < ecs.g7.16xlarge."""
    family, _, size = name.rpartition(".")
    family_key = tuple(
        (int(part), "") if part.isdigit() else (-1, part) for part in re.split(r"(\d+)", family) if part
    )
    match = re.fullmatch(r"(\d*)([a-z]+)", size)
    if match and match.group(2) in SIZE_WORDS:
        return family_key, (SIZE_WORDS.index(match.group(2)), int(match.group(1) or 1), "")
    return family_key, (len(SIZE_WORDS), 0, size)


def explain(
    it: InstanceType,
    options: CapacityOptions,
    source: str,
    provenance: Mapping[str, str] | None = None,
) -> list[str]:
    """The formulas with the numbers put in, one line each, then where each input came from."""
    cap = compute(it, options, source)
    lines = [f"{it.name} ({source})"]
    lines.extend(_explain_enis(it, options.caps))
    lines.extend(_explain_modes(it, cap))
    lines.append(
        f"kubelet --max-pods ({cap.max_pods_mode}) = pod IPs + host-network pods = "
        + _fmt_sum(cap.pods(options.mode), options.host_network_pods, cap.max_pods)
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
        return [f"usable ENIs = EniQuantity - 1 = {enis} - 1 = {usable_enis(enis, caps)}"]
    raw = int(enis * caps.eni_cap_ratio) + caps.eni_cap_shift - 1
    line = (
        f"usable ENIs = int(EniQuantity x eni_cap_ratio) + eni_cap_shift - 1 = "
        f"int({enis} x {caps.eni_cap_ratio:g}) + {caps.eni_cap_shift} - 1 = {raw}"
    )
    if caps.max_eni > 0 and raw > caps.max_eni:
        line += f", capped by max_eni = {caps.max_eni}"
    return [line]


def _explain_modes(it: InstanceType, cap: Capacity) -> list[str]:
    shared = (
        f"shared ENI (eniip) = usable ENIs x EniPrivateIpAddressQuantity = "
        f"{_fmt(cap.usable_enis)} x {_fmt(it.eni_private_ip_quantity)} = {_fmt(cap.shared_eni_pods)}"
        f"  (ACK minimum > {defaults.ACK_MIN_SHARED_ENI_PODS}: {_yes_no(cap.shared_eni_ok)})"
    )
    exclusive = (
        f"exclusive ENI (eni) = usable ENIs = {_fmt(cap.exclusive_eni_pods)}"
        f"  (ACK minimum > {defaults.ACK_MIN_EXCLUSIVE_ENI_PODS}: {_yes_no(cap.exclusive_eni_ok)})"
    )
    if it.eni_trunk_supported is False:
        trunk = "trunk member ENIs = 0 (EniTrunkSupported = false)"
    else:
        trunk = (
            f"trunk member ENIs = EniTotalQuantity - EniQuantity = "
            f"{_fmt(it.eni_total_quantity)} - {_fmt(it.eni_quantity)} = {_fmt(cap.trunk_pods)}"
        )
    dual = (
        f"dual stack = EniIpv6AddressQuantity == EniPrivateIpAddressQuantity: "
        f"{_fmt(it.eni_ipv6_quantity)} == {_fmt(it.eni_private_ip_quantity)} -> {_yes_no(cap.dual_stack)}"
    )
    return [shared, exclusive, trunk, dual]


def _fmt(value: object) -> str:
    if value is None:
        return "unknown"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _fmt_sum(a: int | None, b: int, total: int | None) -> str:
    return f"{_fmt(a)} + {b} = {_fmt(total)}"
