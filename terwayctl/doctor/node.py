"""Node checks, run against one network namespace (the current one, or --netns) and the node's
CNI directories and daemon socket."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from terwayctl.doctor.cniconf import ConfDir, NetworkConfig, read_conf_dir
from terwayctl.doctor.context import Context
from terwayctl.doctor.firewall import (
    Chain,
    Chains,
    HookResult,
    Packet,
    forward_path,
    legacy_chains,
    legacy_docker_ports,
    nft_chains,
    nft_docker_ports,
    other_family_chains,
)
from terwayctl.doctor.model import Check, CheckSkipped, Need, Scope, Verdict, fail, ok, warn
from terwayctl.doctor.readers import DaemonNotAnswering, DaemonStatus, DatapathState, PublishedPort
from terwayctl.doctor.topology import eni_conf, topology

NEEDS = frozenset({Need.NODE})
TERWAY_CONF = "10-terway.conf"
TERWAY_CONFLIST = "10-terway.conflist"
TERWAY_BINARY = "terway"
PRIMARY_IFNAME = "eth0"
POD_VETH = "cali*"
FORWARDING_KEYS = ("net.ipv4.ip_forward",)
TO_POD_PRIORITY = 512
FROM_POD_PRIORITY = 2048
SHARED_ENI_MODE = "eniip"
EXCLUSIVE_ENI_MODE = "eni"
CNI_PLUGINS_VERSION = "v1.5.1"
CNI_PLUGINS_URL = ("https://github.com/containernetworking/plugins/releases/download/" + CNI_PLUGINS_VERSION
                   + "/cni-plugins-linux-$(uname -m | sed 's/x86_64/amd64/;s/aarch64/arm64/')-" + CNI_PLUGINS_VERSION
                   + ".tgz")
PERSIST = "; persist it in /etc/sysctl.d/99-terway.conf so a reboot keeps it"


def _in(ctx: Context) -> str:
    return f"in netns {ctx.node.netns}"


def ns_prefix(ctx: Context) -> str:
    """What runs a command in the node namespace: nothing, ``ip netns exec NAME`` or ``nsenter --net=PATH``."""
    ns = ctx.options.netns
    if ns is None:
        return ""
    return f"nsenter --net={ns} " if "/" in ns else f"ip netns exec {ns} "


def _sysctl_fix(ctx: Context, assignments: list[str]) -> str:
    return f"{ns_prefix(ctx)}sysctl -w {' '.join(assignments)}{PERSIST}"


# --- is this a Terway node at all? ----------------------------------------------------------------


def not_a_terway_node(ctx: Context) -> str | None:
    """None on a Terway node; else why not (no Terway CNI configuration and nothing at the daemon socket).

    Checks that would print a fix changing the host are skipped there: doctor must not suggest
    turning on forwarding on a machine that is not a node.
    """

    def compute() -> str | None:
        socket = ctx.options.socket
        if os.path.lexists(socket):
            return None
        conf_dir = ctx.options.cni_conf_dir
        try:
            has_config = conf_dir.is_dir() and _terway_config(ctx) is not None
        except CheckSkipped:
            has_config = False
        if has_config:
            return None
        return (f"not a Terway node: no Terway CNI configuration in {conf_dir} and nothing at the daemon socket "
                f"{socket} (pass --cni-conf-dir / --socket if they live elsewhere)")

    result: str | None = ctx.cached("not-a-terway-node", compute)
    return result


def require_terway_node(ctx: Context) -> None:
    reason = not_a_terway_node(ctx)
    if reason is not None:
        raise CheckSkipped(reason)


# --- the interfaces and addresses pod traffic uses ------------------------------------------------


@dataclass(frozen=True)
class PodPath:
    veths: tuple[str, ...]
    """Host-side pod veths (cali*); empty when there is no pod yet."""
    enis: tuple[str, ...]
    """The devices of the ENI tables' default routes (where pod traffic leaves)."""
    pod_ips: tuple[str, ...]
    origin: str
    """Where these came from, for the evidence."""


def pod_path(ctx: Context) -> PodPath:
    def compute() -> PodPath:
        try:
            state = ctx.node.datapath()
        except Exception as exc:  # noqa: BLE001 - without the datapath, fall back to the names Terway uses
            return PodPath((), (), (), f"the datapath could not be read ({type(exc).__name__}: {exc}); assuming "
                                       f"pod veths {POD_VETH}")
        enis = tuple(sorted({d for d in state.eni_tables.values() if d}))
        ips = tuple(sorted({ip for ips in state.veths.values() for ip in ips}))
        return PodPath(tuple(sorted(state.veths)), enis, ips,
                       f"{len(state.veths)} pod veth(s), ENI device(s) {', '.join(enis) or 'none'}")

    result: PodPath = ctx.cached("pod-path", compute)
    return result


def _mode(ctx: Context) -> str | None:
    try:
        return _daemon(ctx).mode or None
    except DaemonNotAnswering:
        return None


def rp_filter(ctx: Context) -> Verdict:
    require_terway_node(ctx)
    path = pod_path(ctx)
    all_value = ctx.node.sysctl("net.ipv4.conf.all.rp_filter") or "0"
    default_value = ctx.node.sysctl("net.ipv4.conf.default.rp_filter") or "0"
    evidence = [f"net.ipv4.conf.all.rp_filter = {all_value} {_in(ctx)}",
                f"net.ipv4.conf.default.rp_filter = {default_value} {_in(ctx)} (what new pod veths get)"]
    strict: list[str] = []
    loose: list[str] = []
    to_zero: list[str] = []
    if all_value != "0":
        to_zero.append("net.ipv4.conf.all.rp_filter")
    if default_value != "0":
        to_zero.append("net.ipv4.conf.default.rp_filter")
    clean = 0
    for name, role in [(PRIMARY_IFNAME, "primary ENI"), *((e, "ENI") for e in path.enis if e != PRIMARY_IFNAME),
                       *((v, "pod veth") for v in path.veths), ("default", "new pod veths")]:
        key = f"net.ipv4.conf.{name}.rp_filter"
        value = default_value if name == "default" else ctx.node.sysctl(key)
        if value is None:
            if name == PRIMARY_IFNAME:
                evidence.append(f"{key}: no such interface {_in(ctx)}")
            continue
        effective = str(max(_int(all_value), _int(value)))
        if effective == "0":
            clean += 1
            continue
        if name != "default":
            evidence.append(f"{name} ({role}): rp_filter {value}, effective max(all {all_value}, {name} {value}) = "
                            f"{effective}")
            if value != "0":
                to_zero.append(key)
        (strict if effective == "1" else loose).append(name)
    if clean and not strict and not loose:
        evidence.append(f"effective rp_filter 0 on {clean} interface(s) pod traffic uses ({path.origin})")
    fix = _sysctl_fix(ctx, [f"{k}=0" for k in dict.fromkeys(to_zero)])
    if strict:
        evidence.append(f"strict reverse-path filtering on {', '.join(strict)}: pod packets arriving on an interface "
                        "that is not their reply route are dropped (the kernel uses max(all, interface))")
        return fail(evidence, fix)
    if loose:
        return warn([*evidence, f"loose reverse-path filtering on {', '.join(loose)}"], fix)
    return ok(*evidence)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def forwarding(ctx: Context) -> Verdict:
    require_terway_node(ctx)
    path = pod_path(ctx)
    evidence, off = [], []
    value = ctx.node.sysctl("net.ipv4.ip_forward")
    evidence.append(f"net.ipv4.ip_forward = {value if value is not None else '(missing)'} {_in(ctx)}")
    if value != "1":
        off.append("net.ipv4.ip_forward")
    # the kernel forwards a packet when the interface it arrived on has forwarding on
    for name in dict.fromkeys([PRIMARY_IFNAME, *path.enis, *path.veths, "default"]):
        key = f"net.ipv4.conf.{name}.forwarding"
        found = ctx.node.sysctl(key)
        if found is None:
            continue
        if found != "1":
            evidence.append(f"{key} = {found} {_in(ctx)}" + (" (what new pod veths get)" if name == "default" else ""))
            off.append(key)
    if off:
        evidence.append("without forwarding on the interface a packet arrives on, the node does not route between "
                        "pods' veths and the ENIs")
        return fail(evidence, _sysctl_fix(ctx, [f"{k}=1" for k in off]))
    evidence.append(f"forwarding on for every interface pod traffic uses ({path.origin})")
    return ok(*evidence)


def _families(ctx: Context) -> list[str]:
    try:
        conf = eni_conf(ctx)
    except Exception:  # noqa: BLE001 - a broken eni_conf is reported by its own check
        conf = None
    stack = str(conf.conf.get("ip_stack") or "ipv4").lower() if conf is not None else "ipv4"
    return {"dual": ["ipv4", "ipv6"], "ipv6": ["ipv6"]}.get(stack, ["ipv4"])


def _packets(ctx: Context, family: str) -> list[Packet]:
    path = pod_path(ctx)
    veths = path.veths or (POD_VETH,)
    enis = path.enis or ("~cali",)
    version = 4 if family == "ipv4" else 6
    ips = tuple(ip + ("/32" if version == 4 else "/128") for ip in path.pod_ips if (":" in ip) == (version == 6))
    pods = ips or _pod_cidrs(ctx, version)
    label = "IPv4" if version == 4 else "IPv6"
    return [Packet(family, f"{label} pod -> VPC/internet (new connection)", veths, enis, pods, None, "new"),
            Packet(family, f"{label} reply -> pod (established)", enis, veths, None, pods, "established")]


def _pod_cidrs(ctx: Context, version: int) -> tuple[str, ...] | None:
    if "topology" not in ctx.cache:
        return None  # only when the cloud inputs were already read: the node checks do not call the cloud
    try:
        topo = topology(ctx)
    except Exception:  # noqa: BLE001
        return None
    cidrs = tuple(topo.vswitches[v].cidr_block for v in topo.all_pod_vswitch_ids() if v in topo.vswitches)
    return tuple(c for c in cidrs if (":" in c) == (version == 6)) or None


def _describe_packet(packet: Packet) -> str:
    def names(values: tuple[str, ...] | None) -> str:
        if values is None or values == ("~cali",):
            return "an ENI"
        return values[0] if len(values) == 1 else f"{values[0]} (+{len(values) - 1})"

    return f"{packet.description}, iif {names(packet.iif)}, oif {names(packet.oif)}"


def _accept_commands(ctx: Context, chain: Chain, chains: Chains) -> list[str]:
    """The commands that accept pod traffic first in `chain` (a base chain on the forward hook)."""
    prefix = ns_prefix(ctx)
    if chain.source == "iptables-legacy" or chain.iptables_nft:
        tool = "iptables-legacy" if chain.source == "iptables-legacy" else (
            "iptables-nft" if chain.family == "ip" else "ip6tables-nft")
        table = "" if chain.table == "filter" else f"-t {chain.table} "
        has_user = any(c.name == "DOCKER-USER" and c.table == chain.table and c.source == chain.source
                       and c.family == chain.family for c in chains.values())
        target = "DOCKER-USER" if has_user and chain.table == "filter" else chain.name
        return [f"{prefix}{tool} {table}-I {target} -i cali+ -j ACCEPT",
                f"{prefix}{tool} {table}-I {target} -o cali+ -j ACCEPT"]
    return [f"{prefix}nft insert rule {chain.family} {chain.table} {chain.name} iifname \"cali*\" accept",
            f"{prefix}nft insert rule {chain.family} {chain.table} {chain.name} oifname \"cali*\" accept"]


def firewall_chains(ctx: Context) -> Chains:
    def compute() -> Chains:
        ruleset = ctx.node.nft_ruleset()
        legacy = ctx.node.iptables_legacy_save()
        if ruleset is None and legacy is None:
            raise CheckSkipped(f"neither nft nor iptables-legacy tables found {_in(ctx)}")
        chains: Chains = {}
        if ruleset is not None:
            chains.update(nft_chains(ruleset if isinstance(ruleset, list) else []))
        if legacy is not None:
            chains.update(legacy_chains(legacy))
        return chains

    result: Chains = ctx.cached("firewall-chains", compute)
    return result


def forward_policy(ctx: Context) -> Verdict:
    require_terway_node(ctx)
    if _mode(ctx) == EXCLUSIVE_ENI_MODE:
        return ok("exclusive ENI mode (from the daemon's STATUS): each pod owns its ENI inside its namespace; pod "
                  "traffic does not cross this node's FORWARD hook")
    chains = firewall_chains(ctx)
    evidence: list[str] = []
    dropped: list[HookResult] = []
    maybe: list[HookResult] = []
    for family in _families(ctx):
        label = "IPv4" if family == "ipv4" else "IPv6"
        for index, packet in enumerate(_packets(ctx, family)):
            result = forward_path(chains, packet)
            if index == 0:
                traversed = ", ".join(f"{c.where} (prio {c.priority}, policy {c.policy}, {len(c.rules)} rule(s))"
                                      for c in result.chains)
                evidence.append(f"forward hook, {label} {_in(ctx)}: {traversed or 'no chain: not filtered'}")
            if not result.chains:
                continue
            decided = next((o for o in result.outcomes if o.verdict == "drop"), None)
            if result.dropped and decided is not None:
                dropped.append(result)
                evidence.append(f"{_describe_packet(packet)}: dropped by {decided.rule} in {decided.where}")
            elif result.dropped_by_port:
                decided = next(o for o in result.outcomes if o.verdict == "drop" and o.by_port)
                dropped.append(result)
                evidence.append(f"{_describe_packet(packet)}: dropped by {decided.rule} in {decided.where} whenever "
                                f"{' and '.join(decided.undecided)} (only ports or protocols decide: the rest of pod "
                                "traffic is dropped)")
            elif decided is not None:
                maybe.append(result)
                evidence.append(f"{_describe_packet(packet)}: may be dropped by {decided.rule} in {decided.where}, "
                                f"when {' and '.join(decided.undecided) or 'a match doctor cannot decide holds'}")
            else:
                evidence.append(f"{_describe_packet(packet)}: accepted")
    for family in _families(ctx):
        for other in other_family_chains(chains, family):
            evidence.append(f"{other.where} (policy {other.policy}): family {other.family}, pod {family} traffic never "
                            "traverses it")
    commands: list[str] = []
    for result in [*dropped, *maybe]:
        chain = result.dropping_chain
        if chain is not None:
            commands += _accept_commands(ctx, chain, chains)
    note = ["# docker rewrites FORWARD when it restarts; rules in DOCKER-USER stay"] if any(
        "DOCKER-USER" in c for c in commands) else []
    fix = "\n".join([*dict.fromkeys(commands), *note]) if commands else None
    if dropped:
        probe = _probe_reached(ctx, "external")
        if probe is not None:
            return warn([*evidence, f"probe.external: {probe}: the static reading says dropped, the probe says the "
                         "pod reaches it; trusting the probe"], fix)
        return fail(evidence, fix)
    if maybe:
        return warn(evidence, fix)
    return ok(*evidence)


def _probe_reached(ctx: Context, which: str) -> str | None:
    """When --probe ran (or can run) the pod-side attempt of a probe and it got through: its line."""
    if not ctx.options.probe:
        return None
    target = ctx.options.external_target if which == "external" else ctx.options.hostport_target
    if target is None:
        return None
    try:
        from terwayctl.doctor.probe import pod_attempt

        attempt = pod_attempt(ctx, target)
    except Exception:  # noqa: BLE001 - the probe reports its own trouble
        return None
    return f"{attempt.how} {target} from {attempt.where}: {attempt.detail}" if attempt.reached else None


def _conf_dir(ctx: Context) -> ConfDir:
    path = ctx.options.cni_conf_dir
    if not path.is_dir():
        raise CheckSkipped(f"no CNI configuration directory {path} (not a Kubernetes node? pass --cni-conf-dir)")
    return ctx.cached(f"cni-conf:{path}", lambda: read_conf_dir(path))


def _terway_config(ctx: Context) -> NetworkConfig | None:
    conf_dir = _conf_dir(ctx)
    by_file = {c.file: c for c in conf_dir.configs}
    return by_file.get(TERWAY_CONFLIST) or by_file.get(TERWAY_CONF) or next(
        (c for c in conf_dir.configs if c.is_terway), None)


def cni_config(ctx: Context) -> Verdict:
    conf_dir = _conf_dir(ctx)
    where = conf_dir.path
    evidence = [f"{where}: {', '.join(c.file for c in conf_dir.configs) or 'no configuration files'}"]
    for config in conf_dir.configs:
        for problem in config.problems:
            evidence.append(f"{config.file}: {problem}")
    names = {c.file for c in conf_dir.configs}
    terway = _terway_config(ctx)
    chosen = conf_dir.chosen
    reinstall = ("reinstall the CNI configuration: restart the terway DaemonSet pod on this node (its init container "
                 "writes 10-terway.conflist), or terwayctl render and copy 10-terway.conflist")
    if terway is None:
        require_terway_node(ctx)  # another CNI's node: nothing of Terway's to check
        return fail([*evidence, f"no Terway configuration ({TERWAY_CONFLIST}) in {where}, but the daemon socket "
                     f"{ctx.options.socket} exists: this is a Terway node without its CNI configuration"], reinstall)
    if terway.problems:
        return fail(evidence, reinstall)
    if TERWAY_CONF in names and TERWAY_CONFLIST in names:
        evidence.append(f"stale {TERWAY_CONF} beside {TERWAY_CONFLIST}: the runtime loads files in lexical order "
                        f"and uses {TERWAY_CONF}, so the conflist (portmap, bandwidth) is ignored")
        return fail(evidence, f"rm {where / TERWAY_CONF}")
    if chosen is not None and chosen.file != terway.file:
        evidence.append(f"the runtime uses {chosen.file} ({', '.join(chosen.types)}), which sorts before "
                        f"{terway.file}")
        return fail(evidence, f"remove {where / chosen.file} (or rename it to sort after {terway.file})")
    evidence.append(f"the runtime uses {terway.file}: cniVersion {terway.cni_version}, plugins "
                    f"{' -> '.join(terway.types)}")
    return ok(*evidence)


def cni_plugin(ctx: Context) -> Verdict:
    require_terway_node(ctx)
    bin_dir = ctx.options.cni_bin_dir
    if not bin_dir.is_dir():
        raise CheckSkipped(f"no CNI plugin directory {bin_dir} (not a Kubernetes node? pass --cni-bin-dir)")
    wanted = [TERWAY_BINARY]
    try:
        terway = _terway_config(ctx)
    except CheckSkipped:
        terway = None
    if terway is not None:
        wanted += [t for t in terway.types if t and t not in wanted]
    evidence, missing = [], []
    for name in wanted:
        path = bin_dir / name
        if path.is_file() and os.access(path, os.X_OK):
            evidence.append(f"{path}: present, executable")
        else:
            evidence.append(f"{path}: {'not executable' if path.exists() else 'missing'}")
            missing.append(name)
    if missing:
        lines = []
        plugins = [m for m in missing if m != TERWAY_BINARY]
        if plugins:
            members = " ".join(f"./{m}" for m in plugins)
            lines.append(f"curl -fsSL {CNI_PLUGINS_URL} | tar -xz -C {bin_dir} {members}")
        if TERWAY_BINARY in missing:
            lines.append(f"# {TERWAY_BINARY}: the terway pod's init container installs it; delete that pod "
                         "(kubectl -n kube-system delete pod <the terway pod on this node>): doctor does not know "
                         "the node's Kubernetes name")
        return fail(evidence, "\n".join(lines))
    return ok(*evidence)


def _daemon(ctx: Context) -> DaemonStatus:
    socket = str(ctx.options.socket)
    return ctx.cached(f"daemon:{socket}", lambda: ctx.node.daemon_status(socket, 5.0))


def daemon_socket(ctx: Context) -> Verdict:
    socket = ctx.options.socket
    pods = ("kubectl -n kube-system get pods -o wide | grep terway   # the terway pod of this node; then: kubectl "
            "-n kube-system logs <it> -c terway (doctor does not know the node's Kubernetes name)")
    fix = f"{pods}\n# pass --socket if the daemon listens elsewhere"
    try:
        status = _daemon(ctx)
    except DaemonNotAnswering as exc:
        if exc.missing:
            require_terway_node(ctx)
        if exc.not_socket:
            fix = (f"rm -r {socket}\n# then restart the terway pod of this node: it creates the socket when it "
                   f"starts\n{pods}")
        elif exc.stale:
            fix = f"# the daemon is not running\n{pods}"
        return fail([f"{socket}: {exc.reason}"], fix)
    if not status.ready:
        return fail([f"{socket}: the daemon answers STATUS but is not ready"], fix)
    evidence = [f"{socket}: STATUS answered, ready"]
    if status.mode:
        evidence.append(f"mode {status.mode}")
    if status.allocations is not None:
        evidence.append(f"{len(status.allocations)} allocation(s)")
    return ok(*evidence)


IP_ERROR_CODES = ("InvalidVSwitchId.IpNotEnough", "QuotaExceeded.PrivateIpAddress", "EniPerInstanceLimitExceeded",
                  "InvalidOperation.Ipv4CountExceeded")


def daemon_ip_errors(ctx: Context) -> Verdict:
    """The cloud errors the daemon met while filling its pool (its log, as `daemon status` keeps them)."""
    require_terway_node(ctx)
    try:
        status = _daemon(ctx)
    except DaemonNotAnswering as exc:
        raise CheckSkipped(f"the daemon does not answer ({exc.reason}): its errors are unknown") from None
    pool = status.detail.get("pool") if isinstance(status.detail, dict) else None
    if not isinstance(pool, dict):
        raise CheckSkipped("the daemon does not expose its pool state (STATUS detail)")
    raw = pool.get("vswitch_errors")
    errors = [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []
    last = str(pool.get("last_error") or "")
    hits: list[str] = []
    fixes: list[str] = []
    for error in errors:
        text = f"{error.get('code', '')} {error.get('message', '')}"
        code = next((c for c in IP_ERROR_CODES if c in text), None)
        if code is None:
            continue
        backoff = error.get("backed_off_for")
        hits.append(f"{error.get('vswitch_id') or '?'}: {code} at {error.get('at') or '?'} (request "
                    f"{error.get('request_id') or '?'}){f', backing off {backoff}s' if backoff else ''}: "
                    f"{' '.join(str(error.get('message', '')).split())[:200]}")
        if isinstance(error.get("fix"), str) and error["fix"]:
            fixes.append(f"# {error['fix']}")
    if not hits and (code := next((c for c in IP_ERROR_CODES if c in last), None)) is not None:
        hits.append(f"last pool error: {' '.join(last.split())[:200]}")
    if not hits:
        return ok(f"no {', '.join(IP_ERROR_CODES)} among the daemon's {len(errors)} vSwitch error(s)")
    vswitches = sorted({str(e.get("vswitch_id")) for e in errors if e.get("vswitch_id")})
    lines = [f"terwayctl vswitch add <a vSwitch of the same zone>   # {', '.join(vswitches) or 'the pod vSwitch'} "
             "has no free IP or the node hit its ENI/IP quota", *dict.fromkeys(fixes)]
    return fail([*hits, "new pods on this node wait in ContainerCreating until the pool can grow"], "\n".join(lines))


def datapath_rules(ctx: Context) -> Verdict:
    try:
        status = _daemon(ctx)
    except DaemonNotAnswering as exc:
        raise CheckSkipped(f"the daemon does not answer ({exc.reason}): its pods are unknown") from None
    if status.allocations is None:
        raise CheckSkipped("the daemon does not expose its allocations (STATUS detail): nothing to compare with")
    if status.mode == "eni":
        return ok("exclusive ENI mode: pods own their ENI, no veths or policy rules to compare")
    state = ctx.node.datapath()
    allocated = {a.ip: a for a in status.allocations}
    routed = {ip: veth for veth, ips in state.veths.items() for ip in ips}
    tables = _eni_tables(status, state)
    problems: list[str] = []
    repairs: list[str] = []
    prefix = ns_prefix(ctx)
    for ip, alloc in sorted(allocated.items()):
        if ip not in routed:
            problems.append(f"{ip} ({alloc.pod}): allocated but no host veth routes it")
        missing = []
        if ip not in state.to_pod_rules:
            missing.append(f"'to {ip} lookup main' (priority {TO_POD_PRIORITY})")
            repairs.append(f"{prefix}ip rule add to {ip} lookup main priority {TO_POD_PRIORITY}")
        if ip not in state.from_pod_rules:
            table = tables.get(alloc.eni_id)
            of_eni = f", the table of {alloc.eni_id}" if table is not None else ""
            missing.append(f"'from {ip} lookup {table if table is not None else '<ENI table>'}' "
                           f"(priority {FROM_POD_PRIORITY}{of_eni})")
            if table is not None:
                repairs.append(f"{prefix}ip rule add from {ip} lookup {table} priority {FROM_POD_PRIORITY}")
        if missing:
            consequence = (": the pod's packets leave through the main table (the primary ENI), where the VPC's "
                           "source check drops them" if ip not in state.from_pod_rules else "")
            problems.append(f"{ip} ({alloc.pod}): missing ip rule {' and '.join(missing)}{consequence}")
        elif (table := state.from_pod_rules[ip]) not in state.eni_tables:
            problems.append(f"{ip} ({alloc.pod}): 'from {ip} lookup {table}' points at a table without a default route")
    leaked = sorted((set(routed) | set(state.from_pod_rules) | state.to_pod_rules) - set(allocated))
    cleanups: list[str] = []
    for ip in leaked:
        problems.append(f"{ip}: {routed.get(ip, 'ip rules')} left behind: no allocation holds this IP")
        if ip in state.to_pod_rules:
            cleanups.append(f"{prefix}ip rule del to {ip} lookup main priority {TO_POD_PRIORITY}")
        if ip in state.from_pod_rules:
            cleanups.append(f"{prefix}ip rule del from {ip} lookup {state.from_pod_rules[ip]} priority "
                            f"{FROM_POD_PRIORITY}")
        if ip in routed:
            cleanups.append(f"{prefix}ip link del {routed[ip]}")
    routed_veths = {veth for veth, ips in state.veths.items() if ips}
    for veth in sorted(set(state.veths) - routed_veths):
        problems.append(f"{veth}: a pod veth without a route or allocation")
        cleanups.append(f"{prefix}ip link del {veth}")
    summary = (f"{len(allocated)} allocation(s), {len(state.veths)} pod veth(s), {len(state.from_pod_rules)} "
               f"from-pod rule(s), {len(state.eni_tables)} ENI table(s) {_in(ctx)}")
    if problems:
        after = ["recreate pods whose veth is missing (kubectl delete pod)"] if any(
            "no host veth" in p for p in problems) else []
        return fail([summary, *problems], "\n".join([*repairs, *dict.fromkeys(cleanups), *after]))
    return ok(summary)


def _eni_tables(status: DaemonStatus, state: DatapathState) -> dict[str, int]:
    """ENI id -> its route table, from the daemon's ENIs (id, ifname) and the tables' default-route devices."""
    by_device = {device: table for table, device in state.eni_tables.items() if device}
    found = {}
    for eni in status.detail.get("enis") or ():
        if isinstance(eni, dict) and eni.get("eni_id") and str(eni.get("ifname")) in by_device:
            found[str(eni["eni_id"])] = by_device[str(eni["ifname"])]
    return found


def _configured_datapath(ctx: Context) -> tuple[str, str]:
    try:
        terway = _terway_config(ctx)
    except CheckSkipped:
        terway = None
    plugin = terway.plugin("terway") if terway else None
    for key in ("eniip_virtual_type", "datapath"):
        if plugin and isinstance(plugin.get(key), str):
            return str(plugin[key]).lower(), f"{terway.file if terway else ''} {key}"
    try:
        conf = eni_conf(ctx)
    except CheckSkipped:
        conf = None
    if conf is not None and isinstance(conf.conf.get("eniip_virtual_type"), str):
        return str(conf.conf["eniip_virtual_type"]).lower(), f"{conf.origin} eniip_virtual_type"
    return "veth", "default"


def datapath_kernel(ctx: Context) -> Verdict:
    require_terway_node(ctx)
    datapath, origin = _configured_datapath(ctx)
    release = ctx.node.kernel_release()
    if datapath != "ipvlan":
        return ok(f"datapath {datapath} ({origin}); kernel {release}")
    if ctx.node.ipvlan_supported():
        return ok(f"datapath ipvlan ({origin}); kernel {release} has ipvlan")
    return warn([f"datapath ipvlan ({origin}), but kernel {release} has no ipvlan (needs >= 4.19 and the ipvlan "
                 "module): pods fall back to veth + policy routing"],
                "load the module (modprobe ipvlan) or upgrade the kernel; or configure veth (drop eniip_virtual_type)")


def _terway_mode(ctx: Context) -> tuple[str | None, str]:
    """The node's Terway mode (eniip = shared ENI, eni = exclusive ENI) and where it was read:
    the daemon's STATUS, else the cluster's Terway DaemonSet; (None, why) when neither says."""
    try:
        status = _daemon(ctx)
    except DaemonNotAnswering:
        why = "the daemon does not answer"
    else:
        if status.mode:
            return status.mode, "the daemon's STATUS"
        why = "the daemon's STATUS names no mode"
    try:
        daemonset = ctx.kube.terway_daemonset()
    except CheckSkipped:
        daemonset = None
    except Exception:  # noqa: BLE001 - the mode is a refinement; an unreachable API server must not fail the check
        daemonset = None
    if daemonset is not None:
        return daemonset.mode, f"DaemonSet {daemonset.namespace}/{daemonset.name}"
    return None, why


def hostport_published(ctx: Context) -> Verdict:
    require_terway_node(ctx)
    ruleset = ctx.node.nft_ruleset()
    legacy = ctx.node.iptables_legacy_save()
    ports: list[PublishedPort] = [*(nft_docker_ports(ruleset) if isinstance(ruleset, list) else []),
                                  *(legacy_docker_ports(legacy) if legacy is not None else []),
                                  *ctx.node.docker_proxies()]
    if not ports:
        return ok(f"no docker DNAT rules or docker-proxy listeners {_in(ctx)}")
    evidence = [f"{p.protocol}/{p.port} -> {p.destination} ({p.source}) {_in(ctx)}" for p in ports]
    fix = ("run the service as a pod with hostPort (portmap chained in 10-terway.conflist) or a "
           "NodePort/LoadBalancer Service instead of docker -p")
    rewritten = sorted({(p.protocol, p.port) for p in ports if p.dnat and p.hooked})
    unhooked = sorted({(p.protocol, p.port) for p in ports if p.dnat and not p.hooked} - set(rewritten))
    proxied = sorted({(p.protocol, p.port) for p in ports if not p.dnat} - set(rewritten) - set(unhooked))
    notes = []
    if unhooked:
        notes.append(f"{_ports(unhooked)}: the DOCKER chain is not jumped to from the nat PREROUTING hook, so the "
                     "DNAT applies to no packet")
    if proxied:
        notes.append(f"{_ports(proxied)}: only docker-proxy (a userland listener) serves it, no DNAT rule: pods "
                     "reach it at the node's address like any other host")
    if not rewritten:
        return warn([*evidence, *notes, "published outside Kubernetes"], fix)
    published = _ports(rewritten)
    mode, origin = _terway_mode(ctx)
    if mode == SHARED_ENI_MODE:
        reached = _probe_reached(ctx, "hostport")
        line = (f"shared-ENI mode ({mode}, from {origin}): pods on this node cannot reach {published}: after the "
                f"DNAT, their policy rule ('from <pod IP> lookup <ENI table>', priority {FROM_POD_PRIORITY}) routes "
                "the packets out of the ENI into the VPC, not to the container")
        if reached is not None:
            return warn([*evidence, line, *notes, f"probe.hostport: {reached}: the static reading says unreachable, "
                         "the probe says the pod reaches it; trusting the probe"], fix)
        return fail([*evidence, line, *notes], fix)
    if mode is not None:
        return warn([*evidence, f"{mode} mode (from {origin}): pods reach the node's address through the VPC like any "
                     f"other host, so the DNAT applies; {published} is still published outside Kubernetes", *notes],
                    fix)
    return warn([*evidence, f"Terway mode unknown ({origin}): in shared-ENI mode (eniip) pods on this node cannot "
                 f"reach {published}", *notes], fix)


def _ports(ports: list[tuple[str, int]]) -> str:
    return ", ".join(f"{proto}/{port}" for proto, port in ports)


def hostport_config(ctx: Context) -> Verdict:
    require_terway_node(ctx)
    terway = _terway_config(ctx)
    if terway is None:
        raise CheckSkipped("no Terway CNI configuration (see node.cni-config)")
    plugin = terway.plugin("terway") or {}
    portmap = terway.plugin("portmap")
    raw = plugin.get("symmetric_routing")
    symmetric = raw is True
    shown = "unset (false)" if raw is None else json.dumps(raw)
    evidence = [f"{terway.file}: plugins {' -> '.join(terway.types)}; symmetric_routing {shown}"]
    if raw is not None and not isinstance(raw, bool):
        return fail([*evidence, f"symmetric_routing must be true or false, not {type(raw).__name__} {json.dumps(raw)}: "
                     "the daemon reads it as off"],
                    f"set \"symmetric_routing\": {'true' if portmap is not None else 'false'} on the terway plugin in "
                    f"{ctx.options.cni_conf_dir / terway.file} (terwayctl render --set host_port=true writes it)")
    capabilities = portmap.get("capabilities") if portmap is not None else None
    if portmap is not None and capabilities is not None and not isinstance(capabilities, dict):
        return fail([*evidence, f"portmap capabilities must be an object, not {type(capabilities).__name__} "
                     f"{json.dumps(capabilities)}: the runtime never hands portmap the ports"],
                    f'set "capabilities": {{"portMappings": true}} on portmap in '
                    f"{ctx.options.cni_conf_dir / terway.file}")
    if portmap is None and not symmetric:
        return ok(*evidence, "hostPort is off (no portmap): pods' hostPort fields are ignored")
    if portmap is not None and symmetric:
        if not isinstance(capabilities, dict) or capabilities.get("portMappings") is not True:
            return fail([*evidence, "portmap lacks capabilities.portMappings: the runtime never hands it the ports"],
                        'set "capabilities": {"portMappings": true} on portmap (terwayctl render --set host_port=true)')
        return ok(*evidence, "hostPort is on: portmap chained, symmetric routing")
    missing = "the portmap plugin" if portmap is None else "symmetric_routing on the terway plugin"
    return fail([*evidence, f"a hostPort configuration without {missing}: hostPort traffic is "
                 f"{'not forwarded' if portmap is None else 'answered through the wrong interface'}"],
                "render the conflist with hostPort on (terwayctl render --set host_port=true) and install it")


CHECKS: list[Check] = [
    Check("node.rp-filter", "Reverse-path filtering is off", Scope.NODE, NEEDS, rp_filter,
          "net.ipv4.conf.{all,default,eth0}.rp_filter in the node namespace (must be 0; 1 fails, 2 warns)"),
    Check("node.forwarding", "IPv4 forwarding is on", Scope.NODE, NEEDS, forwarding,
          "net.ipv4.ip_forward and net.ipv4.conf.all.forwarding (must be 1)"),
    Check("node.forward-policy", "The FORWARD hook does not drop pod traffic", Scope.NODE, NEEDS, forward_policy,
          "nft -j list ruleset (nftables and iptables-nft) and iptables-legacy-save: forward-hook chains' policy"),
    Check("node.cni-config", "The Terway CNI configuration is the one in use", Scope.NODE, NEEDS, cni_config,
          "the CNI conf dir (--cni-conf-dir): valid JSON, supported cniVersion, no stale 10-terway.conf beside "
          "10-terway.conflist, nothing sorting before it"),
    Check("node.cni-plugin", "The CNI plugin binaries are installed", Scope.NODE, NEEDS, cni_plugin,
          "the CNI bin dir (--cni-bin-dir): terway and every plugin the conflist chains"),
    Check("node.daemon-socket", "The node daemon answers", Scope.NODE, NEEDS, daemon_socket,
          "a STATUS request over the daemon's unix socket (--socket)"),
    Check("node.daemon-ip-errors", "The daemon met no IP or ENI quota errors", Scope.NODE, NEEDS, daemon_ip_errors,
          "the daemon's pool errors (STATUS detail pool.vswitch_errors and last_error, as daemon status shows "
          "them): InvalidVSwitchId.IpNotEnough and the ENI/IP quota codes"),
    Check("node.datapath-rules", "Pod veths and policy rules match the daemon's pods", Scope.NODE, NEEDS,
          datapath_rules, "the daemon's allocations against the cali* veths, 512/2048 ip rules and ENI tables"),
    Check("node.datapath-kernel", "The kernel supports the configured datapath", Scope.NODE, NEEDS, datapath_kernel,
          "eniip_virtual_type (conflist or eni_conf) against ipvlan support of the kernel"),
    Check("node.hostport-published", "No ports published outside Kubernetes", Scope.NODE, NEEDS, hostport_published,
          "DNAT rules in DOCKER chains (nft, iptables-legacy) and docker-proxy processes listening in the namespace; "
          "the Terway mode (daemon STATUS, else the DaemonSet)"),
    Check("node.hostport-config", "hostPort is configured completely or not at all", Scope.NODE, NEEDS,
          hostport_config, "portmap in the conflist together with symmetric_routing on the terway plugin"),
]
