"""Pure readings of firewall dumps: where pod traffic ends on the FORWARD hook, and docker's published ports.

Sources: `nft -j list ruleset` (native nftables and iptables-nft, which keeps its tables in
nftables) and `iptables-legacy-save` (the legacy tables, invisible to nft).

`forward_path(...)` walks a packet of pod traffic through every base chain on the forward hook of
the families it traverses (ip and inet for IPv4, ip6 and inet for IPv6; bridge, arp and netdev
never see routed traffic), in priority order, rule by rule, following jumps, gotos and returns,
the way the kernel does. A match doctor cannot decide for that packet (a port, an iptables
extension it cannot read, an address of the far end) is explored both ways: the result is then
"dropped on some paths", with the rule that decides it. Nothing here raises on odd input: an
expression it does not know is an undecidable match, a statement it does not know is ignored.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from terwayctl.doctor.readers import PublishedPort

DOCKER_CHAIN = "DOCKER"
MAX_DEPTH = 16
TERMINAL = ("accept", "drop", "reject")
IPV4_FAMILIES = ("ip", "inet")
IPV6_FAMILIES = ("ip6", "inet")
NON_TERMINAL = frozenset({"LOG", "NFLOG", "MARK", "CONNMARK", "TRACE", "CT", "TCPMSS", "CHECKSUM", "AUDIT", "TEE"})
NOT_ENIS = ("docker", "br-", "lo", "veth", "cni", "flannel", "kube-", "virbr", "tun", "wg")
"""Interface names that are never an ENI device."""
L4_FIELDS = ("sport", "dport", "type", "code", "flags", "protocol", "nexthdr", "l4proto")
LEGACY_HOOKS = {("mangle", "FORWARD"): -150, ("filter", "FORWARD"): 0}


# --- the model both sources are read into ---------------------------------------------------------


@dataclass(frozen=True)
class Cond:
    """One match of a rule. `field` is iif, oif, saddr, daddr, ctstate, nfproto or other (undecidable)."""

    field: str
    values: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True)
class Rule:
    conds: tuple[Cond, ...]
    verdict: str | None
    """accept, drop, reject, jump, goto, return, or None (no verdict: counter, log, ...)."""
    target: str | None
    text: str
    handle: int | None = None


@dataclass
class Chain:
    source: str
    """``nft`` or ``iptables-legacy``."""
    family: str
    table: str
    name: str
    hook: str | None = None
    priority: int = 0
    policy: str = "accept"
    rules: list[Rule] = field(default_factory=list)
    iptables_nft: bool = False
    """An nft table written by iptables-nft (fix it with iptables-nft, not nft)."""

    @property
    def where(self) -> str:
        return f"{self.source} {self.family} {self.table} {self.name}" if self.source == "nft" else \
            f"{self.source} {self.table} {self.name}"


Chains = dict[tuple[str, str, str, str], Chain]
"""(source, family, table, name) -> chain."""


# --- reading nft JSON -----------------------------------------------------------------------------


def _str(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _values(right: Any) -> tuple[str, ...] | None:
    """The right side of a match as strings (addresses as CIDRs); None when it is not a literal."""
    if isinstance(right, Mapping):
        if "set" in right and isinstance(right["set"], list):
            found: list[str] = []
            for item in right["set"]:
                one = _values(item)
                if one is None:
                    return None
                found += one
            return tuple(found)
        prefix = right.get("prefix")
        if isinstance(prefix, Mapping):
            return (f"{_str(prefix.get('addr'))}/{_str(prefix.get('len'))}",)
        if "range" in right:
            return None
        return None
    if isinstance(right, list):
        return tuple(_str(v) for v in right)
    if isinstance(right, (str, int)):
        return (_str(right),)
    return None


_META = {"iifname": "iif", "oifname": "oif", "nfproto": "nfproto"}


def _cond_of(match: Mapping[str, Any]) -> Cond:
    op = match.get("op")
    left, right = match.get("left"), match.get("right")
    negate = op == "!="
    values = _values(right)
    if op not in ("==", "!=", "in") or values is None or not isinstance(left, Mapping):
        return Cond("other", (_render_match(match),))
    meta = left.get("meta")
    if isinstance(meta, Mapping) and meta.get("key") in _META:
        return Cond(_META[str(meta["key"])], values, negate)
    ct = left.get("ct")
    if isinstance(ct, Mapping) and ct.get("key") == "state" and "dir" not in ct:
        return Cond("ctstate", tuple(v.lower() for v in values), negate)
    payload = left.get("payload")
    if isinstance(payload, Mapping) and payload.get("protocol") in ("ip", "ip6") \
            and payload.get("field") in ("saddr", "daddr"):
        return Cond(str(payload["field"]), values, negate)
    if (isinstance(payload, Mapping) and payload.get("field") in L4_FIELDS) or (
            isinstance(meta, Mapping) and meta.get("key") == "l4proto"):
        return Cond("l4", (_render_match(match),))
    return Cond("other", (_render_match(match),))


def _family_of(match: Mapping[str, Any]) -> str | None:
    left = match.get("left")
    payload = left.get("payload") if isinstance(left, Mapping) else None
    if isinstance(payload, Mapping) and payload.get("protocol") in ("ip", "ip6"):
        return "ipv4" if payload.get("protocol") == "ip" else "ipv6"
    return None


def _render_side(value: Any) -> str:
    if isinstance(value, Mapping):
        meta, ct, payload = value.get("meta"), value.get("ct"), value.get("payload")
        if isinstance(meta, Mapping):
            return _str(meta.get("key"))
        if isinstance(ct, Mapping):
            return f"ct {_str(ct.get('key'))}"
        if isinstance(payload, Mapping):
            return f"{_str(payload.get('protocol'))} {_str(payload.get('field'))}"
    found = _values(value)
    if found is None:
        return "?"
    if len(found) > 1:
        return "{ " + ", ".join(found) + " }" if not isinstance(value, list) else ",".join(found)
    text = found[0]
    return f'"{text}"' if isinstance(value, str) and not re.fullmatch(r"[0-9a-fA-F.:/]+", text) else text


def _render_match(match: Mapping[str, Any]) -> str:
    op = match.get("op")
    return f"{_render_side(match.get('left'))}{' != ' if op == '!=' else ' '}{_render_side(match.get('right'))}"


def _rule_of(raw: Mapping[str, Any]) -> Rule:
    conds: list[Cond] = []
    verdict: str | None = None
    target: str | None = None
    words: list[str] = []
    expr = raw.get("expr")
    for item in expr if isinstance(expr, list) else []:
        if not isinstance(item, Mapping) or not item:
            continue
        key = next(iter(item))
        value = item[key]
        if key == "match" and isinstance(value, Mapping):
            family = _family_of(value)
            if family is not None:
                conds.append(Cond("nfproto", (family,)))
            conds.append(_cond_of(value))
            words.append(_render_match(value))
        elif key in TERMINAL or key == "return":
            verdict = key
            words.append(key)
            break
        elif key in ("jump", "goto") and isinstance(value, Mapping):
            verdict, target = key, _str(value.get("target"))
            words.append(f"{key} {target}")
            break
        elif key == "xt" and isinstance(value, Mapping):
            name = _str(value.get("name"))
            if value.get("type") == "match":
                conds.append(Cond("other", (f"iptables match {name}",)))
                words.append(f"-m {name}")
            elif name in ("ACCEPT", "DROP", "REJECT"):
                verdict = name.lower()
                words.append(verdict)
                break
            else:
                words.append(f"-j {name}")
        elif key in ("limit", "quota", "meter", "set", "vmap"):
            conds.append(Cond("other", (key,)))
            words.append(key)
        elif key in ("counter", "log", "comment", "notrack", "mangle", "ct count"):
            continue
        else:
            words.append(key)
    handle = raw.get("handle")
    return Rule(tuple(conds), verdict, target, " ".join(words) or "(empty rule)",
                handle if isinstance(handle, int) else None)


def _prio(value: Any) -> int:
    if isinstance(value, int):
        return value
    named = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
    return named.get(_str(value), 0)


def nft_chains(ruleset: Iterable[Any]) -> Chains:
    """Every chain of an `nft -j list ruleset` listing, with its rules (odd items are ignored)."""
    chains: Chains = {}
    xt_tables: set[tuple[str, str]] = set()
    rules: list[Mapping[str, Any]] = []
    for item in ruleset:
        if not isinstance(item, Mapping):
            continue
        chain = item.get("chain")
        rule = item.get("rule")
        if isinstance(chain, Mapping):
            key = ("nft", _str(chain.get("family")), _str(chain.get("table")), _str(chain.get("name")))
            hook = chain.get("hook")
            chains[key] = Chain("nft", key[1], key[2], key[3], _str(hook) if hook else None, _prio(chain.get("prio")),
                                _str(chain.get("policy") or "accept").lower())
        elif isinstance(rule, Mapping):
            rules.append(rule)
    for rule in rules:
        key = ("nft", _str(rule.get("family")), _str(rule.get("table")), _str(rule.get("chain")))
        if key in chains:
            chains[key].rules.append(_rule_of(rule))
            expr = rule.get("expr")
            if isinstance(expr, list) and any(isinstance(e, Mapping) and "xt" in e for e in expr):
                xt_tables.add((key[1], key[2]))
    for chain in chains.values():
        # iptables-nft writes tables named after the iptables tables with upper-case built-in chains
        chain.iptables_nft = (chain.family, chain.table) in xt_tables or (
            chain.family in ("ip", "ip6") and chain.table in ("filter", "mangle", "raw", "nat")
            and chain.name.isupper() and chain.hook is not None)
    return chains


# --- reading iptables-save ------------------------------------------------------------------------


_KNOWN_OPTS = {"-s": "saddr", "--source": "saddr", "-d": "daddr", "--destination": "daddr",
               "-i": "iif", "--in-interface": "iif", "-o": "oif", "--out-interface": "oif"}


def _legacy_rule(tokens: list[str]) -> Rule:
    conds: list[Cond] = []
    verdict: str | None = None
    target: str | None = None
    negate = False
    module = ""
    i = 0
    while i < len(tokens):
        token = tokens[i]
        arg = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token == "!":
            negate = True
            i += 1
            continue
        if token in _KNOWN_OPTS:
            value = arg.replace("+", "*") if _KNOWN_OPTS[token] in ("iif", "oif") else arg
            conds.append(Cond(_KNOWN_OPTS[token], (value,), negate))
            i += 2
        elif token in ("-j", "--jump", "-g", "--goto"):
            name = arg
            if name in ("ACCEPT", "DROP", "REJECT", "RETURN"):
                verdict = name.lower()
            elif name in NON_TERMINAL or not name:
                verdict = None
            else:
                verdict, target = ("goto" if token in ("-g", "--goto") else "jump"), name
            i += 2
            while i < len(tokens) and tokens[i].startswith("--"):  # target options (--reject-with ...)
                i += 2
            continue
        elif token in ("-m", "--match"):
            module = arg
            i += 2
            if arg in ("tcp", "udp", "icmp", "multiport", "sctp"):
                pass  # its options are ports (l4, below)
        elif token in ("--ctstate", "--state") and module in ("conntrack", "state"):
            conds.append(Cond("ctstate", tuple(s.lower() for s in arg.split(",")), negate))
            i += 2
        elif token == "--comment":
            i += 2
        elif token in ("-p", "--protocol"):
            conds.append(Cond("l4", (f"{'! ' if negate else ''}-p {arg}",)))
            i += 2
        elif token in ("--dport", "--sport", "--dports", "--sports", "--destination-port", "--source-port",
                       "--icmp-type", "--tcp-flags", "--syn"):
            conds.append(Cond("l4", (f"{token} {arg}",)))
            i += 2 if token != "--syn" else 1
        elif token.startswith("-"):
            conds.append(Cond("other", (f"{'-m ' + module + ' ' if module else ''}{token} {arg}".strip(),)))
            i += 2 if arg and not arg.startswith("-") else 1
        else:
            i += 1
        negate = False
    return Rule(tuple(conds), verdict, target, " ".join(tokens))


def legacy_chains(save: str) -> Chains:
    """The chains of `iptables-legacy-save` output (filter and mangle FORWARD are the hooked ones)."""
    chains: Chains = {}
    table = ""
    for line in save.splitlines():
        line = line.strip()
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":") and table:
            parts = line[1:].split()
            if not parts:
                continue
            name = parts[0]
            policy = parts[1].lower() if len(parts) > 1 and parts[1] != "-" else "accept"
            hook_prio = LEGACY_HOOKS.get((table, name))
            chains[("iptables-legacy", "ip", table, name)] = Chain(
                "iptables-legacy", "ip", table, name, "forward" if hook_prio is not None else None,
                hook_prio or 0, policy)
        elif line.startswith("-A ") and table:
            try:
                tokens = shlex.split(line)
            except ValueError:
                tokens = line.split()
            if len(tokens) < 2:
                continue
            key = ("iptables-legacy", "ip", table, tokens[1])
            chain = chains.setdefault(key, Chain("iptables-legacy", "ip", table, tokens[1]))
            chain.rules.append(_legacy_rule(tokens[2:]))
    return chains


# --- the walk -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """Pod traffic as the FORWARD hook sees it; None for a field doctor does not know."""

    family: str
    """ipv4 or ipv6."""
    description: str
    iif: tuple[str, ...] | None
    """Interface names; a trailing * stands for any name with that prefix (cali*), a leading ~ for any name
    without that prefix (~cali: an ENI device whose name doctor does not know)."""
    oif: tuple[str, ...] | None
    saddr: tuple[str, ...] | None
    """Networks the source is in (pod IPs, or the pod vSwitch CIDRs)."""
    daddr: tuple[str, ...] | None
    ctstate: str


def _ifname_match(rule_value: str, candidate: str) -> bool | None:
    if candidate.startswith("~"):  # any name that does not start with this prefix (an unknown ENI device)
        name = rule_value.rstrip("*")
        return False if name.startswith((candidate[1:], *NOT_ENIS)) and name else None
    rule_wild, cand_wild = rule_value.endswith("*"), candidate.endswith("*")
    r, c = rule_value.rstrip("*"), candidate.rstrip("*")
    if not rule_wild and not cand_wild:
        return r == c
    if rule_wild and not cand_wild:
        return c.startswith(r)
    if rule_wild and cand_wild:
        return True if c.startswith(r) else None if r.startswith(c) else False
    return None if r.startswith(c) else False


def _addr_match(rule_value: str, candidate: str) -> bool | None:
    try:
        rule_net = ipaddress.ip_network(rule_value, strict=False)
        cand = ipaddress.ip_network(candidate, strict=False)
    except ValueError:
        return None
    if rule_net.version != cand.version:
        return False
    if cand.subnet_of(rule_net):  # type: ignore[arg-type]
        return True
    return None if rule_net.overlaps(cand) else False


def _all_or_none(results: Sequence[bool | None]) -> bool | None:
    if results and all(r is True for r in results):
        return True
    if results and all(r is False for r in results):
        return False
    return None


def _cond_holds(cond: Cond, packet: Packet) -> bool | None:
    result: bool | None
    if cond.field in ("iif", "oif", "saddr", "daddr"):
        candidates = getattr(packet, cond.field)
        if candidates is None:
            return None
        matcher = _ifname_match if cond.field in ("iif", "oif") else _addr_match
        per_candidate = []
        for candidate in candidates:
            hits = [matcher(v, candidate) for v in cond.values]
            per_candidate.append(True if True in hits else None if None in hits else False)
        result = _all_or_none(per_candidate)
    elif cond.field == "ctstate":
        result = packet.ctstate in cond.values
    elif cond.field == "nfproto":
        result = packet.family in cond.values
    else:
        return None
    if result is None:
        return None
    return not result if cond.negate else result


def _rule_holds(rule: Rule, packet: Packet) -> bool | None:
    results = [_cond_holds(c, packet) for c in rule.conds]
    if False in results:
        return False
    return None if None in results else True


@dataclass(frozen=True)
class Outcome:
    verdict: str
    """accept, drop, or return (fell off a non-base chain)."""
    where: str
    rule: str
    """The rule that decided, or ``policy drop`` / ``policy accept``."""
    undecided: tuple[str, ...] = ()
    """Matches doctor could not decide on the way (for the evidence)."""
    by_port: bool = True
    """Every undecided match on the way was a port or protocol match: some pod traffic surely ends here."""


def _walk(chains: Chains, chain: Chain, packet: Packet, start: int, depth: int,
          undecided: tuple[str, ...], by_port: bool = True) -> list[Outcome]:
    if depth > MAX_DEPTH:
        return [Outcome("accept", chain.where, "(jump depth exceeded)", undecided, by_port)]
    for index in range(start, len(chain.rules)):
        rule = chain.rules[index]
        if rule.verdict is None:
            continue
        holds = _rule_holds(rule, packet)
        if holds is False:
            continue
        label = f"'{rule.text}'" + (f" (handle {rule.handle})" if rule.handle is not None else "")
        why = undecided if holds else (*undecided, f"{label} matches")
        port_only = by_port and (holds is True or all(c.field == "l4" for c in rule.conds
                                                       if _cond_holds(c, packet) is None))
        taken: list[Outcome] = []
        if rule.verdict in TERMINAL:
            taken = [Outcome("drop" if rule.verdict != "accept" else "accept", chain.where, label, why, port_only)]
        elif rule.verdict == "return":
            taken = [Outcome("return", chain.where, label, why, port_only)]
        elif rule.target is not None:
            sub = chains.get((chain.source, chain.family, chain.table, rule.target))
            if sub is None:
                continue  # a jump to a chain that does not exist cannot be loaded; nothing to follow
            else:
                inner = _walk(chains, sub, packet, 0, depth + 1, why, port_only)
                for outcome in inner:
                    if outcome.verdict == "return":
                        if rule.verdict == "goto":
                            taken.append(Outcome("return", chain.where, label, outcome.undecided, outcome.by_port))
                        else:
                            taken += _walk(chains, chain, packet, index + 1, depth, outcome.undecided,
                                           outcome.by_port)
                    else:
                        taken.append(outcome)
                if rule.verdict == "jump" and holds:
                    return _dedupe(taken)
        if holds:
            return _dedupe(taken)
        return _dedupe([*taken, *_walk(chains, chain, packet, index + 1, depth,
                                       (*undecided, f"{label} does not match"), port_only)])
    if chain.hook is None:
        return [Outcome("return", chain.where, "end of chain", undecided, by_port)]
    verdict = "drop" if chain.policy == "drop" else "accept"
    return [Outcome(verdict, chain.where, f"policy {chain.policy} (no rule decided)", undecided, by_port)]


def _dedupe(outcomes: list[Outcome]) -> list[Outcome]:
    seen: dict[tuple[str, str, str], Outcome] = {}
    for outcome in outcomes:
        seen.setdefault((outcome.verdict, outcome.where, outcome.rule), outcome)
    return list(seen.values())


@dataclass(frozen=True)
class HookResult:
    packet: Packet
    chains: tuple[Chain, ...]
    """The base chains the packet traverses, in priority order."""
    outcomes: tuple[Outcome, ...]
    """Of the first chain that can drop, else of the last chain."""

    @property
    def dropped(self) -> bool:
        """Dropped on every path."""
        return bool(self.outcomes) and all(o.verdict == "drop" for o in self.outcomes)

    @property
    def dropped_by_port(self) -> bool:
        """Some pod traffic is surely dropped: what decides is only its port or protocol."""
        return any(o.verdict == "drop" and o.by_port for o in self.outcomes)

    @property
    def maybe_dropped(self) -> bool:
        return any(o.verdict == "drop" for o in self.outcomes)

    @property
    def dropping_chain(self) -> Chain | None:
        where = next((o.where for o in self.outcomes if o.verdict == "drop"), None)
        return next((c for c in self.chains if c.where == where), None)


def forward_path(chains: Chains, packet: Packet) -> HookResult:
    """Walk `packet` through the forward-hook base chains of its family, in priority order."""
    families = IPV4_FAMILIES if packet.family == "ipv4" else IPV6_FAMILIES
    base = sorted((c for c in chains.values() if c.hook == "forward" and c.family in families
                   and not (c.source == "iptables-legacy" and packet.family == "ipv6")),
                  key=lambda c: (c.priority, c.where))
    last: tuple[Outcome, ...] = ()
    for chain in base:
        outcomes = tuple(o if o.verdict != "return" else Outcome("accept", o.where, o.rule, o.undecided, o.by_port)
                         for o in _walk(chains, chain, packet, 0, 0, ()))
        if any(o.verdict == "drop" for o in outcomes):
            return HookResult(packet, tuple(base), outcomes)
        last = outcomes
    return HookResult(packet, tuple(base), last)


def other_family_chains(chains: Chains, family: str) -> list[Chain]:
    """Forward-hook chains pod traffic of `family` never traverses (ip6 for IPv4, bridge, netdev...)."""
    families = IPV4_FAMILIES if family == "ipv4" else IPV6_FAMILIES
    return [c for c in chains.values() if c.hook == "forward" and c.family not in families]


# --- docker's published ports ---------------------------------------------------------------------


def _dport(expr: Iterable[Any]) -> tuple[str, int] | None:
    for item in expr:
        match = item.get("match") if isinstance(item, Mapping) else None
        if not isinstance(match, Mapping) or match.get("op") not in ("==", "in"):
            continue
        left = match.get("left")
        payload = left.get("payload") if isinstance(left, Mapping) else None
        right = match.get("right")
        if isinstance(payload, Mapping) and payload.get("field") == "dport" and isinstance(right, int):
            return str(payload.get("protocol") or "tcp"), right
    return None


def _dnat_target(expr: Iterable[Any]) -> str | None:
    for item in expr:
        if not isinstance(item, Mapping):
            continue
        dnat = item.get("dnat")
        if isinstance(dnat, Mapping):
            addr, port = dnat.get("addr"), dnat.get("port")
            return f"{addr}:{port}" if port else str(addr)
        xt = item.get("xt")
        if isinstance(xt, Mapping) and xt.get("name") == "DNAT":
            return "(iptables DNAT)"
    return None


def _reaches(chains: Chains, start: Chain, wanted: str, depth: int = 0) -> bool:
    """Does a jump or goto lead from `start` to the chain named `wanted` (any condition)?"""
    if depth > MAX_DEPTH:
        return False
    for rule in start.rules:
        if rule.verdict in ("jump", "goto") and rule.target is not None:
            if rule.target == wanted:
                return True
            sub = chains.get((start.source, start.family, start.table, rule.target))
            if sub is not None and _reaches(chains, sub, wanted, depth + 1):
                return True
    return False


def docker_chain_hooked(chains: Chains, source: str, family: str, table: str) -> bool:
    """Whether the DOCKER chain of that table is reached from the nat PREROUTING hook (pods' packets)."""
    for chain in chains.values():
        if chain.source != source or chain.family != family or chain.table != table:
            continue
        is_prerouting = chain.hook == "prerouting" if source == "nft" else chain.name == "PREROUTING"
        if is_prerouting and _reaches(chains, chain, DOCKER_CHAIN):
            return True
    return False


def nft_docker_ports(ruleset: Iterable[Any]) -> list[PublishedPort]:
    """DNAT rules with a destination port in chains named DOCKER (any table and family)."""
    items = [i for i in ruleset if isinstance(i, Mapping)]
    chains = nft_chains(items)
    found = []
    for item in items:
        rule = item.get("rule")
        if not isinstance(rule, Mapping) or rule.get("chain") != DOCKER_CHAIN:
            continue
        expr = rule.get("expr")
        expr = expr if isinstance(expr, list) else []
        dport, target = _dport(expr), _dnat_target(expr)
        if dport and target:
            family, table = _str(rule.get("family")), _str(rule.get("table"))
            found.append(PublishedPort(dport[0], dport[1], target, f"nft {family} {table} {DOCKER_CHAIN}",
                                       dnat=True, hooked=docker_chain_hooked(chains, "nft", family, table)))
    return found


_SAVE_DNAT = re.compile(r"^-A DOCKER\b.*?-p (?P<proto>\w+)\b.*?--dport (?P<port>\d+)\b.*?-j DNAT\b"
                        r"(?:.*?--to-destination (?P<dest>\S+))?")


def legacy_docker_ports(save: str) -> list[PublishedPort]:
    """`-A DOCKER ... -p tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80` lines of the nat table."""
    hooked = docker_chain_hooked(legacy_chains(save), "iptables-legacy", "ip", "nat")
    table, found = "", []
    for line in save.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif table == "nat" and (m := _SAVE_DNAT.match(line)):
            found.append(PublishedPort(m["proto"], int(m["port"]), m["dest"] or "?", "iptables-legacy nat DOCKER",
                                       dnat=True, hooked=hooked))
    return found
