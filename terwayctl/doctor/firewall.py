"""Pure readings of firewall dumps: FORWARD policies and docker-style published ports.

Sources: `nft -j list ruleset` (native nftables and iptables-nft, which keeps its tables in
nftables) and `iptables-legacy-save` (the legacy tables, invisible to nft).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from terwayctl.doctor.readers import PublishedPort

DOCKER_CHAIN = "DOCKER"


@dataclass(frozen=True)
class ForwardChain:
    where: str
    """``nft inet filter forward`` or ``iptables-legacy filter FORWARD``."""
    policy: str
    rules: int


def nft_forward_chains(ruleset: Iterable[Mapping[str, Any]]) -> list[ForwardChain]:
    """Base chains on the forward hook, with their policy and rule count."""
    chains: dict[tuple[str, str, str], dict[str, Any]] = {}
    rules: dict[tuple[str, str, str], int] = {}
    for item in ruleset:
        if "chain" in item:
            chain = item["chain"]
            key = (str(chain.get("family")), str(chain.get("table")), str(chain.get("name")))
            if chain.get("hook") == "forward":
                chains[key] = chain
        elif "rule" in item:
            rule = item["rule"]
            key = (str(rule.get("family")), str(rule.get("table")), str(rule.get("chain")))
            rules[key] = rules.get(key, 0) + 1
    return [
        ForwardChain(f"nft {family} {table} {name}", str(chain.get("policy") or "accept"), rules.get((family, table, name), 0))
        for (family, table, name), chain in sorted(chains.items())
    ]


def legacy_forward_chains(save: str) -> list[ForwardChain]:
    """`:FORWARD DROP [0:0]` of the filter table in iptables-save output."""
    table = ""
    policy = None
    count = 0
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif table == "filter" and line.startswith(":FORWARD "):
            policy = line.split()[1].lower()
        elif table == "filter" and line.startswith("-A FORWARD "):
            count += 1
    return [] if policy is None else [ForwardChain("iptables-legacy filter FORWARD", policy, count)]


def _dport(expr: Iterable[Mapping[str, Any]]) -> tuple[str, int] | None:
    for item in expr:
        match = item.get("match")
        if not isinstance(match, Mapping) or match.get("op") not in ("==", "in"):
            continue
        left = match.get("left")
        payload = left.get("payload") if isinstance(left, Mapping) else None
        right = match.get("right")
        if isinstance(payload, Mapping) and payload.get("field") == "dport" and isinstance(right, int):
            return str(payload.get("protocol") or "tcp"), right
    return None


def _dnat_target(expr: Iterable[Mapping[str, Any]]) -> str | None:
    for item in expr:
        dnat = item.get("dnat")
        if isinstance(dnat, Mapping):
            addr, port = dnat.get("addr"), dnat.get("port")
            return f"{addr}:{port}" if port else str(addr)
        xt = item.get("xt")
        if isinstance(xt, Mapping) and xt.get("name") == "DNAT":
            return "(iptables DNAT)"
    return None


def nft_docker_ports(ruleset: Iterable[Mapping[str, Any]]) -> list[PublishedPort]:
    """DNAT rules with a destination port in chains named DOCKER (any table and family)."""
    found = []
    for item in ruleset:
        rule = item.get("rule")
        if not isinstance(rule, Mapping) or rule.get("chain") != DOCKER_CHAIN:
            continue
        expr = rule.get("expr") or []
        dport, target = _dport(expr), _dnat_target(expr)
        if dport and target:
            found.append(PublishedPort(dport[0], dport[1], target,
                                       f"nft {rule.get('family')} {rule.get('table')} {DOCKER_CHAIN}"))
    return found


_SAVE_DNAT = re.compile(r"^-A DOCKER\b.*?-p (?P<proto>\w+)\b.*?--dport (?P<port>\d+)\b.*?-j DNAT\b"
                        r"(?:.*?--to-destination (?P<dest>\S+))?")


def legacy_docker_ports(save: str) -> list[PublishedPort]:
    """`-A DOCKER ... -p tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80` lines of the nat table."""
    table, found = "", []
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif table == "nat" and (m := _SAVE_DNAT.match(line)):
            found.append(PublishedPort(m["proto"], int(m["port"]), m["dest"] or "?", "iptables-legacy nat DOCKER"))
    return found
