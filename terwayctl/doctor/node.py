"""Node checks, run against one network namespace (the current one, or --netns) and the node's
CNI directories and daemon socket."""

from __future__ import annotations

import os

from terwayctl.doctor.cniconf import ConfDir, NetworkConfig, read_conf_dir
from terwayctl.doctor.context import Context
from terwayctl.doctor.firewall import (
    legacy_docker_ports,
    legacy_forward_chains,
    nft_docker_ports,
    nft_forward_chains,
)
from terwayctl.doctor.model import Check, CheckSkipped, Need, Scope, Verdict, fail, ok, warn
from terwayctl.doctor.readers import DaemonNotAnswering, DaemonStatus, DatapathState, PublishedPort
from terwayctl.doctor.topology import eni_conf

NEEDS = frozenset({Need.NODE})
TERWAY_CONF = "10-terway.conf"
TERWAY_CONFLIST = "10-terway.conflist"
TERWAY_BINARY = "terway"
RP_FILTER_KEYS = ("all", "default", "eth0")
FORWARDING_KEYS = ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding")
TO_POD_PRIORITY = 512
FROM_POD_PRIORITY = 2048
SHARED_ENI_MODE = "eniip"


def _in(ctx: Context) -> str:
    return f"in netns {ctx.node.netns}"


def _sysctl_fix(ctx: Context, assignments: list[str]) -> str:
    prefix = "" if ctx.options.netns is None else f"ip netns exec {ctx.options.netns} "
    return (f"{prefix}sysctl -w {' '.join(assignments)}; persist it in /etc/sysctl.d/ "
            "(e.g. 99-terway.conf) so a reboot keeps it")


def rp_filter(ctx: Context) -> Verdict:
    evidence, strict, loose = [], [], []
    for name in RP_FILTER_KEYS:
        key = f"net.ipv4.conf.{name}.rp_filter"
        value = ctx.node.sysctl(key)
        if value is None:
            evidence.append(f"{key}: no such interface {_in(ctx)}")
            continue
        evidence.append(f"{key} = {value} {_in(ctx)}")
        if value == "1":
            strict.append(key)
        elif value == "2":
            loose.append(key)
    if strict:
        evidence.append("strict reverse-path filtering drops pod traffic that arrives on another interface than "
                        "its reply route (the kernel uses the larger of 'all' and the interface's value)")
        return fail(evidence, _sysctl_fix(ctx, [f"{k}=0" for k in strict + loose]))
    if loose:
        return warn(evidence, _sysctl_fix(ctx, [f"{k}=0" for k in loose]))
    return ok(*evidence)


def forwarding(ctx: Context) -> Verdict:
    evidence, off = [], []
    for key in FORWARDING_KEYS:
        value = ctx.node.sysctl(key)
        evidence.append(f"{key} = {value if value is not None else '(missing)'} {_in(ctx)}")
        if value != "1":
            off.append(key)
    if off:
        evidence.append("without forwarding the node does not route between pods' veths and the ENIs")
        return fail(evidence, _sysctl_fix(ctx, [f"{k}=1" for k in off]))
    return ok(*evidence)


def forward_policy(ctx: Context) -> Verdict:
    ruleset = ctx.node.nft_ruleset()
    legacy = ctx.node.iptables_legacy_save()
    if ruleset is None and legacy is None:
        raise CheckSkipped(f"neither nft nor iptables-legacy tables found {_in(ctx)}")
    chains = [*(nft_forward_chains(ruleset) if ruleset is not None else []),
              *(legacy_forward_chains(legacy) if legacy is not None else [])]
    if not chains:
        return ok(f"no chain on the forward hook {_in(ctx)}: forwarding is not filtered")
    evidence = [f"{c.where}: policy {c.policy}, {c.rules} rule(s) {_in(ctx)}" for c in chains]
    dropping = [c for c in chains if c.policy == "drop"]
    fix = ("accept pod traffic in the FORWARD chain (e.g. nft add rule <family> <table> <chain> accept for the pod "
           "vSwitch CIDRs, or iptables -P FORWARD ACCEPT); docker sets the policy to DROP when it starts")
    if any(c.rules == 0 for c in dropping):
        evidence.append("a forward chain drops everything: pod traffic through the node is dropped")
        return fail(evidence, fix)
    if dropping:
        evidence.append("a forward chain drops what its rules do not accept: pod traffic must match one of them")
        return warn(evidence, fix)
    return ok(*evidence)


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
        return fail([*evidence, f"no Terway configuration ({TERWAY_CONFLIST}) in {where}"], reinstall)
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
        fix = (f"restart the terway pod on this node (its init container installs {TERWAY_BINARY}); install the "
               f"reference plugins ({', '.join(m for m in missing if m != TERWAY_BINARY) or 'none'}) from "
               "containernetworking-plugins into " + str(bin_dir))
        return fail(evidence, fix)
    return ok(*evidence)


def _daemon(ctx: Context) -> DaemonStatus:
    socket = str(ctx.options.socket)
    return ctx.cached(f"daemon:{socket}", lambda: ctx.node.daemon_status(socket, 5.0))


def daemon_socket(ctx: Context) -> Verdict:
    socket = ctx.options.socket
    fix = ("start the daemon: check the terway pod on this node (kubectl -n kube-system get pods -o wide; "
           "kubectl logs); pass --socket if it listens elsewhere")
    try:
        status = _daemon(ctx)
    except DaemonNotAnswering as exc:
        if exc.missing:
            try:
                has_terway = _terway_config(ctx) is not None
            except CheckSkipped:
                has_terway = False
            if not has_terway:
                raise CheckSkipped(f"no daemon socket {socket} and no Terway CNI configuration: not a Terway "
                                   "node") from None
        return fail([f"{socket}: {exc.reason}"], fix)
    if not status.ready:
        return fail([f"{socket}: the daemon answers STATUS but is not ready"], fix)
    evidence = [f"{socket}: STATUS answered, ready"]
    if status.mode:
        evidence.append(f"mode {status.mode}")
    if status.allocations is not None:
        evidence.append(f"{len(status.allocations)} allocation(s)")
    return ok(*evidence)


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
    prefix = "" if ctx.options.netns is None else f"ip netns exec {ctx.options.netns} "
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
    for ip in leaked:
        problems.append(f"{ip}: {routed.get(ip, 'ip rules')} left behind: no allocation holds this IP")
    routed_veths = {veth for veth, ips in state.veths.items() if ips}
    for veth in sorted(set(state.veths) - routed_veths):
        problems.append(f"{veth}: a pod veth without a route or allocation")
    summary = (f"{len(allocated)} allocation(s), {len(state.veths)} pod veth(s), {len(state.from_pod_rules)} "
               f"from-pod rule(s), {len(state.eni_tables)} ENI table(s) {_in(ctx)}")
    if problems:
        return fail([summary, *problems],
                    "\n".join([*repairs, "compare with terwayctl ipam check; restarting the daemon reconciles "
                                "leftovers; recreate pods whose datapath is missing (kubectl delete pod)"]))
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
    ruleset = ctx.node.nft_ruleset()
    legacy = ctx.node.iptables_legacy_save()
    ports: list[PublishedPort] = [*(nft_docker_ports(ruleset) if ruleset is not None else []),
                                  *(legacy_docker_ports(legacy) if legacy is not None else []),
                                  *ctx.node.docker_proxies()]
    if not ports:
        return ok(f"no docker DNAT rules or docker-proxy listeners {_in(ctx)}")
    evidence = [f"{p.protocol}/{p.port} -> {p.destination} ({p.source}) {_in(ctx)}" for p in ports]
    fix = ("run the service as a pod with hostPort (portmap chained in 10-terway.conflist) or a "
           "NodePort/LoadBalancer Service instead of docker -p")
    mode, origin = _terway_mode(ctx)
    published = ", ".join(f"{p.protocol}/{p.port}" for p in ports)
    if mode == SHARED_ENI_MODE:
        return fail([*evidence, f"shared-ENI mode ({mode}, from {origin}): pods on this node cannot reach {published}: "
                     "after the DNAT, their policy rule ('from <pod IP> lookup <ENI table>', priority "
                     f"{FROM_POD_PRIORITY}) routes the packets out of the ENI into the VPC, not to the container"], fix)
    if mode is not None:
        return warn([*evidence, f"{mode} mode (from {origin}): pods reach the node's address through the VPC like any "
                     f"other host, so the DNAT applies; {published} is still published outside Kubernetes"], fix)
    return warn([*evidence, f"Terway mode unknown ({origin}): in shared-ENI mode (eniip) pods on this node cannot "
                 f"reach {published}"], fix)


def hostport_config(ctx: Context) -> Verdict:
    terway = _terway_config(ctx)
    if terway is None:
        raise CheckSkipped("no Terway CNI configuration (see node.cni-config)")
    plugin = terway.plugin("terway") or {}
    portmap = terway.plugin("portmap")
    symmetric = bool(plugin.get("symmetric_routing"))
    evidence = [f"{terway.file}: plugins {' -> '.join(terway.types)}; symmetric_routing {str(symmetric).lower()}"]
    if portmap is None and not symmetric:
        return ok(*evidence, "hostPort is off (no portmap): pods' hostPort fields are ignored")
    if portmap is not None and symmetric:
        if not (portmap.get("capabilities") or {}).get("portMappings"):
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
