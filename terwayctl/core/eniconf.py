"""The eni_conf model: the parts of the `eni-config` ConfigMap that terwayctl reads."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from terwayctl.core.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class EniCaps:
    """The eni_conf keys that decide a node's pod capacity (Terway's daemon.Config).

    max_eni 0 means no cap; eni_cap_ratio 0 is Go's zero value, which Terway treats as 1. min_eni
    only pre-allocates (it never changes the capacity); ipv4_prefix_count is how many /28 prefixes
    the controller pre-allocates in prefix mode.
    """

    max_eni: int = 0
    eni_cap_ratio: float = 1.0
    eni_cap_shift: int = 0
    min_eni: int = 0
    enable_ip_prefix: bool = False
    ipv4_prefix_count: int = 0
    enable_erdma: bool = False

    @property
    def is_default(self) -> bool:
        """True when max_eni, eni_cap_ratio and eni_cap_shift leave the ENI count alone."""
        return (self.max_eni, self.eni_cap_ratio, self.eni_cap_shift) == (0, 1.0, 0)


def parse_eni_conf_text(text: str, origin: str) -> dict[str, Any]:
    """Parse eni_conf JSON; unknown keys are kept as they are."""
    import json  # here, not at the top: `capacity` without --eni-conf never needs it (start-up)

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{origin} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            hint="eni_conf is the JSON value of the eni_conf key of the eni-config ConfigMap",
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{origin} must hold a JSON object, not {type(data).__name__}")
    return data


CAPACITY_KEYS = (
    "max_eni", "min_eni", "eni_cap_ratio", "eni_cap_shift", "enable_ip_prefix", "ipv4_prefix_count", "enable_erdma",
)
"""The eni_conf keys `capacity` reads; every other key is kept as it is and ignored."""

MAX_COUNT_FIELD = 10_000
"""The largest max_eni, min_eni or ipv4_prefix_count that is not a typo (no node has that many)."""

MAX_ENI_SHIFT = 64
"""|eni_cap_shift| above this is a typo: no ECS type has that many ENIs."""


def eni_caps_from_conf(conf: Mapping[str, Any], origin: str) -> EniCaps:
    """Read the capacity keys (CAPACITY_KEYS), validating each; InvalidInput with a hint otherwise."""
    max_eni = _int_field(conf, "max_eni", origin, default=0)
    if max_eni < 0:
        raise InvalidInput(f"{origin}: max_eni must be 0 (no cap) or positive, got {max_eni}",
                           hint="max_eni caps the ENIs Terway creates on a node; 0 or leaving it out means no cap")
    min_eni = _int_field(conf, "min_eni", origin, default=0)
    if min_eni < 0:
        raise InvalidInput(f"{origin}: min_eni must be 0 or positive, got {min_eni}",
                           hint="min_eni is how many ENIs Terway attaches in advance, e.g. 1")
    if max_eni and min_eni > max_eni:
        raise InvalidInput(f"{origin}: min_eni {min_eni} is more than max_eni {max_eni}",
                           hint="min_eni (pre-attached ENIs) must not exceed max_eni (the cap)")
    shift = _int_field(conf, "eni_cap_shift", origin, default=0)
    if abs(shift) > MAX_ENI_SHIFT:
        raise InvalidInput(f"{origin}: eni_cap_shift must be between -{MAX_ENI_SHIFT} and {MAX_ENI_SHIFT}, got {shift}",
                           hint="eni_cap_shift adds to int(EniQuantity x eni_cap_ratio), e.g. -1 keeps one ENI free")
    ratio_raw = conf.get("eni_cap_ratio", 1.0)
    if isinstance(ratio_raw, bool) or not isinstance(ratio_raw, int | float):
        raise InvalidInput(f"{origin}: eni_cap_ratio must be a number, got {ratio_raw!r}",
                           hint="eni_cap_ratio is the share of the instance's ENIs Terway may use, e.g. 0.5")
    ratio = float(ratio_raw) or 1.0
    if not 0 < ratio <= 1:
        raise InvalidInput(
            f"{origin}: eni_cap_ratio must be in (0, 1], got {ratio_raw}",
            hint="eni_cap_ratio is the share of the instance's ENIs Terway may use, e.g. 0.5",
        )
    prefix_count = _int_field(conf, "ipv4_prefix_count", origin, default=0)
    if prefix_count < 0:
        raise InvalidInput(f"{origin}: ipv4_prefix_count must be 0 or positive, got {prefix_count}",
                           hint="ipv4_prefix_count is the number of /28 prefixes to pre-allocate per node")
    return EniCaps(
        max_eni=max_eni, eni_cap_ratio=ratio, eni_cap_shift=shift, min_eni=min_eni,
        enable_ip_prefix=_bool_field(conf, "enable_ip_prefix", origin),
        ipv4_prefix_count=prefix_count,
        enable_erdma=_bool_field(conf, "enable_erdma", origin),
    )


def _bool_field(conf: Mapping[str, Any], key: str, origin: str) -> bool:
    value = conf.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"{origin}: {key} must be true or false, got {value!r}",
                           hint=f'write "{key}": true (a JSON boolean, not a string)')
    return value


def _int_field(conf: Mapping[str, Any], key: str, origin: str, default: int) -> int:
    value = conf.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{origin}: {key} must be a whole number, got {value!r}",
                           hint=f'write "{key}": 3 (a JSON number, not a string)')
    if abs(value) > MAX_COUNT_FIELD:
        raise InvalidInput(f"{origin}: {key} {value} is out of range (at most {MAX_COUNT_FIELD})",
                           hint=f"{key} counts ENIs or prefixes of one node: a small number")
    return value


# --- vSwitch editing, per-node merge and diff (pure; used by `terwayctl vswitch` and `capacity --cluster`)

LOW_FREE_IPS = 64
"""Warn when a vSwitch being added has fewer free IPs than this."""


@dataclass(frozen=True)
class VSwitchFacts:
    """What the cloud says about a vSwitch (DescribeVSwitches), as core needs it."""

    vswitch_id: str
    vpc_id: str
    zone_id: str
    cidr: str
    free_ips: int | None


@dataclass(frozen=True)
class VSwitchAddPlan:
    additions: tuple[tuple[str, str], ...]
    """(zone, vSwitch id) pairs to add, in the order asked."""
    warnings: tuple[str, ...]


def configured_vswitches(conf: Mapping[str, Any], origin: str) -> dict[str, list[str]]:
    """eni_conf `vswitches` as {zone: [ids]}; InvalidInput when it has another shape."""
    raw = conf.get("vswitches", {})
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(z, str) and isinstance(ids, list) and all(isinstance(i, str) for i in ids) for z, ids in raw.items()
    ):
        raise InvalidInput(
            f"{origin}: vswitches must map zones to lists of vSwitch ids",
            hint='e.g. "vswitches": {"cn-hangzhou-i": ["vsw-aaa", "vsw-bbb"]}',
        )
    return {zone: list(ids) for zone, ids in raw.items()}


def json_style(text: str) -> tuple[int | str | None, tuple[str, str], bool]:
    """(indent, separators, trailing newline) of a JSON text, so a rewrite keeps its look."""
    indent: int | str | None = None
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped and len(stripped) < len(line):
            prefix = line[: len(line) - len(stripped)]
            indent = "\t" if prefix.startswith("\t") else len(prefix)
            break
    if indent is None and "\n" in text.strip():
        indent = 0
    if indent is not None:
        separators = (",", ": " if '": ' in text else ":")
    else:
        separators = (", " if ", " in text else ",", ": " if '": ' in text else ":")
    return indent, separators, text.endswith("\n")


def dump_like(conf: Mapping[str, Any], original: str) -> str:
    """conf as JSON in the style of `original`: key order kept, same indent and separators."""
    indent, separators, newline = json_style(original)
    import json

    text = json.dumps(conf, indent=indent, separators=separators, ensure_ascii=False)
    return text + "\n" if newline else text


def _with_vswitches(text: str, origin: str, change: Callable[[dict[str, list[str]]], dict[str, list[str]]]) -> str:
    conf = parse_eni_conf_text(text, origin)
    current = configured_vswitches(conf, origin)
    updated = change({zone: list(ids) for zone, ids in current.items()})
    if updated == current:
        return text
    if "vswitches" in conf:
        conf["vswitches"] = updated
    else:
        conf = {**conf, "vswitches": updated}
    return dump_like(conf, text)


def add_vswitches_text(text: str, additions: Iterable[tuple[str, str]], origin: str = "eni_conf") -> str:
    """eni_conf text with each (zone, id) appended under its zone; every other key and value kept.

    Raises InvalidInput when an id is already configured (in any zone).
    """
    wanted = list(additions)

    def change(vswitches: dict[str, list[str]]) -> dict[str, list[str]]:
        for zone, vsw in wanted:
            owner = next((z for z, ids in vswitches.items() if vsw in ids), None)
            if owner is not None:
                raise InvalidInput(
                    f"vSwitch {vsw} is already configured under zone {owner} in {origin}",
                    hint="see 'terwayctl vswitch list'",
                )
            vswitches.setdefault(zone, []).append(vsw)
        return vswitches

    return _with_vswitches(text, origin, change)


def remove_vswitch_text(text: str, vswitch_id: str, origin: str = "eni_conf") -> str:
    """eni_conf text without `vswitch_id` (a zone left empty is dropped); InvalidInput when absent."""

    def change(vswitches: dict[str, list[str]]) -> dict[str, list[str]]:
        zone = next((z for z, ids in vswitches.items() if vswitch_id in ids), None)
        if zone is None:
            raise InvalidInput(f"vSwitch {vswitch_id} is not configured in {origin}",
                               hint="see 'terwayctl vswitch list'")
        vswitches[zone] = [v for v in vswitches[zone] if v != vswitch_id]
        if not vswitches[zone]:
            del vswitches[zone]
        return vswitches

    return _with_vswitches(text, origin, change)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merged_eni_conf(default_text: str, node_text: str | None, node_origin: str = "node eni_conf") -> dict[str, Any]:
    """A node's effective eni_conf: its `terway-config=<cm>` ConfigMap's eni_conf merged over the default."""
    base = parse_eni_conf_text(default_text, "eni-config eni_conf")
    if node_text is None:
        return base
    merged = merge_patch(base, parse_eni_conf_text(node_text, node_origin))
    assert isinstance(merged, dict)
    return merged


def eni_conf_diff(before: str, after: str, label: str = "eni_conf") -> str:
    """A unified diff of two eni_conf texts ('' when equal)."""
    lines_before = before.splitlines(keepends=True)
    lines_after = after.splitlines(keepends=True)
    for lines in (lines_before, lines_after):
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
    return "".join(difflib.unified_diff(lines_before, lines_after, f"a/{label}", f"b/{label}"))


def _cluster_vpcs(configured: Mapping[str, Sequence[str]], found: Mapping[str, VSwitchFacts]) -> set[str]:
    return {found[v].vpc_id for ids in configured.values() for v in ids if v in found and found[v].vpc_id}


def plan_vswitch_additions(
    requested: Sequence[str],
    found: Mapping[str, VSwitchFacts],
    configured: Mapping[str, Sequence[str]],
    node_zones: Mapping[str, int],
    *,
    zone: str | None = None,
    low_free_ips: int = LOW_FREE_IPS,
    vpc_reference: Mapping[str, Sequence[str]] | None = None,
) -> VSwitchAddPlan:
    """Check every requested vSwitch and say under which zone it goes; InvalidInput for the first refusal.

    `found` holds the cloud's facts for the requested and the configured vSwitches; `node_zones`
    counts the cluster's nodes per zone (label topology.kubernetes.io/zone). The cluster's VPC is
    the VPC of the vSwitches in `vpc_reference` (default: `configured`).
    """
    cluster_vpcs = _cluster_vpcs(configured if vpc_reference is None else vpc_reference, found)
    additions: list[tuple[str, str]] = []
    warnings: list[str] = []
    for vsw in dict.fromkeys(requested):
        facts = found.get(vsw)
        if facts is None:
            raise NotFound(f"vSwitch {vsw} does not exist in this region",
                           hint="check the id and --region (DescribeVSwitches lists the VPC's vSwitches)")
        if cluster_vpcs and facts.vpc_id not in cluster_vpcs:
            raise InvalidInput(
                f"vSwitch {vsw} is in VPC {facts.vpc_id}, but the cluster's vSwitches are in "
                f"{', '.join(sorted(cluster_vpcs))}",
                hint="pods can only use vSwitches of the cluster's own VPC",
            )
        if zone is not None and facts.zone_id != zone:
            raise InvalidInput(f"vSwitch {vsw} is in zone {facts.zone_id}, not {zone}",
                               hint="drop --zone: a vSwitch always goes under its own zone")
        if node_zones.get(facts.zone_id, 0) == 0:
            with_nodes = ", ".join(sorted(z for z, n in node_zones.items() if n)) or "none"
            raise InvalidInput(
                f"vSwitch {vsw} is in zone {facts.zone_id}, where the cluster has no nodes "
                f"(zones with nodes: {with_nodes})",
                hint="a node only uses the vSwitches of its own zone (label topology.kubernetes.io/zone); "
                     "pick a vSwitch in a zone with nodes",
            )
        owner = next((z for z, ids in configured.items() if vsw in ids), None)
        if owner is not None:
            raise InvalidInput(f"vSwitch {vsw} is already configured under zone {owner}",
                               hint="see 'terwayctl vswitch list'")
        if facts.free_ips is not None and facts.free_ips < low_free_ips:
            warnings.append(f"vSwitch {vsw} ({facts.cidr}) has only {facts.free_ips} free IPs; "
                            "a /19 or wider pod vSwitch is recommended")
        additions.append((facts.zone_id, vsw))
    return VSwitchAddPlan(tuple(additions), tuple(warnings))


def plan_vswitch_removal(vswitch_id: str, configured: Mapping[str, Sequence[str]], node_zones: Mapping[str, int]) -> str:
    """The zone `vswitch_id` is removed from; refuses an unknown one and the last one of a zone with nodes."""
    zone = next((z for z, ids in configured.items() if vswitch_id in ids), None)
    if zone is None:
        raise InvalidInput(f"vSwitch {vswitch_id} is not configured", hint="see 'terwayctl vswitch list'")
    if list(configured[zone]) == [vswitch_id] and node_zones.get(zone, 0) > 0:
        raise InvalidInput(
            f"vSwitch {vswitch_id} is the last vSwitch of zone {zone}, which has {node_zones[zone]} node(s)",
            hint="add another vSwitch in that zone first ('terwayctl vswitch add'), then remove this one",
        )
    return zone
