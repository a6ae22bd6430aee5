"""Cloud checks: SNAT coverage, the EIP trap, vSwitch free IPs, ENI slots, vSwitch zones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from terwayctl.cloud.models import NetworkInterface, VSwitch
from terwayctl.core.errors import InvalidInput
from terwayctl.doctor.context import Context
from terwayctl.doctor.model import Check, CheckSkipped, Need, Scope, Verdict, fail, ok, warn
from terwayctl.doctor.topology import eips, eni_conf, load_eni_conf_file, nat_facts, snat_command, topology

NEEDS = frozenset({Need.CLOUD, Need.TOPOLOGY})


def snat_coverage(ctx: Context) -> Verdict:
    topo, facts = topology(ctx), nat_facts(ctx)
    evidence = [topo.describe_inputs()]
    if not facts.gateways:
        evidence.append(f"no NAT gateway in {', '.join(topo.vpc_ids) or 'the VPC'}")
    uncovered = []
    partly: list[str] = []
    wanted = list(dict.fromkeys([*topo.all_pod_vswitch_ids(), *topo.node_vswitch_ids]))
    for vsw_id in wanted:
        vsw = topo.vswitches.get(vsw_id)
        if vsw is None:
            evidence.append(f"{vsw_id} ({topo.role(vsw_id)}): does not exist in this region")
            continue
        entries = facts.covering(vsw)
        if not entries:
            parts, uncovered_parts = facts.partial(vsw)
            if parts:
                covered = ", ".join(f"{e.source_cidr} by {e.snat_entry_id} in {e.snat_table_id} (-> {e.snat_ip})"
                                    for e in parts)
                evidence.append(f"{vsw_id} ({topo.role(vsw_id)}, {vsw.cidr_block}, {vsw.zone_id}): only partly "
                                f"covered: {covered}; not covered: {', '.join(uncovered_parts)}")
                uncovered.append(vsw)
                partly.append(vsw_id)
                continue
        if entries:
            entry = entries[0]
            source = f"SourceVSwitchId {entry.source_vswitch_id}" if entry.source_vswitch_id == vsw_id else \
                f"SourceCIDR {entry.source_cidr}"
            evidence.append(f"{vsw_id} ({topo.role(vsw_id)}, {vsw.cidr_block}): {entry.snat_entry_id} in "
                            f"{entry.snat_table_id} ({source} -> {entry.snat_ip})")
        else:
            evidence.append(f"{vsw_id} ({topo.role(vsw_id)}, {vsw.cidr_block}, {vsw.zone_id}): no SNAT entry")
            uncovered.append(vsw)
    if uncovered:
        fix = "\n".join(snat_command(ctx, facts, v) for v in uncovered)
        pods = [v.vswitch_id for v in uncovered if "pod" in topo.role(v.vswitch_id)]
        if pods:
            part = " (with an address in the part not covered)" if set(pods) & set(partly) else ""
            evidence.append(f"pods on {', '.join(pods)}{part} have no internet access (Terway never masquerades pods)")
        return fail(evidence, fix)
    return ok(*evidence)


def eip_trap(ctx: Context) -> Verdict:
    topo, facts = topology(ctx), nat_facts(ctx)
    by_instance = {e.instance_id: e for e in eips(ctx) if e.instance_id and e.instance_type in ("", "EcsInstance")}
    evidence: list[str] = []
    trapped: list[VSwitch] = []
    for instance in topo.instances:
        eip = by_instance.get(instance.instance_id)
        if eip is None:
            continue
        pod_vsws = [topo.vswitches[v] for v in topo.pod_vswitch_ids(instance.zone_id) if v in topo.vswitches]
        bare = [v for v in pod_vsws if not facts.covering(v)]
        if bare:
            trapped.extend(v for v in bare if v not in trapped)
            evidence.append(
                f"{instance.instance_id} ({instance.zone_id}) has EIP {eip.ip_address}: the node reaches the "
                f"internet, but its pods on {', '.join(v.vswitch_id for v in bare)} do not (no SNAT entry)")
        else:
            evidence.append(f"{instance.instance_id} has EIP {eip.ip_address}; its pod vSwitches have SNAT")
    if trapped:
        return fail(evidence, "\n".join(snat_command(ctx, facts, v) for v in trapped))
    if not evidence:
        evidence.append(f"none of the {len(topo.instances)} instance(s) has an EIP")
    return ok(*evidence)


def vswitch_free_ips(ctx: Context) -> Verdict:
    topo = topology(ctx)
    low = ctx.options.low_free_ips
    evidence, statuses = [], []
    ids = list(dict.fromkeys([*topo.all_pod_vswitch_ids(), *topo.node_vswitch_ids]))
    for vsw_id in ids:
        vsw = topo.vswitches.get(vsw_id)
        if vsw is None or vsw.available_ip_count is None:
            continue
        free = vsw.available_ip_count
        mark = "empty" if free == 0 else "low" if free < low else "ok"
        statuses.append(mark)
        evidence.append(f"{vsw_id} ({topo.role(vsw_id)}, {vsw.zone_id}, {vsw.cidr_block}): {free} free IPs"
                        + ("" if mark == "ok" else f" ({mark}, threshold {low})"))
    fix = ("add a pod vSwitch in the same zone (terwayctl vswitch add vsw-... ; a /19 or wider is recommended), "
           "or free addresses (delete unused ENIs: aliyun ecs DescribeNetworkInterfaces --Status Available)")
    if "empty" in statuses:
        return fail([*evidence, "pods on nodes using an empty vSwitch stay in ContainerCreating "
                     "(InvalidVSwitchId.IpNotEnough)"], fix)
    if "low" in statuses:
        return warn(evidence, fix)
    return ok(*evidence)


def eni_slots(ctx: Context) -> Verdict:
    topo = topology(ctx)
    types = {t.instance_type_id: t for t in ctx.cloud.describe_instance_types(
        sorted({i.instance_type for i in topo.instances if i.instance_type}))}
    evidence: list[str] = []
    full, exhausted = [], []
    for instance in topo.instances:
        it = types.get(instance.instance_type)
        if it is None or it.eni_quantity is None:
            evidence.append(f"{instance.instance_id} ({instance.instance_type}): ENI quota unknown")
            continue
        enis = [e for e in ctx.cloud.describe_network_interfaces(instance_id=instance.instance_id)
                if e.instance_id == instance.instance_id]
        ips = sum(len(e.private_ips) for e in enis)
        ip_quota = (it.eni_private_ip_quantity or 0) * it.eni_quantity
        line = (f"{instance.instance_id} ({instance.instance_type}): {len(enis)}/{it.eni_quantity} ENIs attached, "
                f"{ips}/{ip_quota} private IPs")
        if len(enis) >= it.eni_quantity:
            if it.eni_private_ip_quantity and all(len(e.private_ips) >= it.eni_private_ip_quantity for e in enis):
                exhausted.append(instance.instance_id)
                line += " (exhausted: no ENI and no IP can be added)"
            else:
                full.append(instance.instance_id)
                line += " (no ENI slot left; only the attached ENIs' free IP slots remain)"
        evidence.append(line)
    fix = ("lower kubelet --max-pods to the node's capacity (terwayctl capacity --cluster), detach ENIs Terway does "
           "not use, or move to a larger instance type (terwayctl capacity <type>)")
    if exhausted:
        return fail(evidence, fix)
    if full:
        return warn(evidence, fix)
    return ok(*evidence)


def vswitch_zones(ctx: Context) -> Verdict:
    topo = topology(ctx)
    node_zones = topo.node_zones()
    evidence: list[str] = []
    problems, warnings = [], []
    for instance_id in topo.unknown_instances:
        problems.append(f"instance {instance_id} (from {topo.instances_origin}) does not exist in region "
                        f"{ctx.cloud.region}: a deleted node, or the wrong region")
    for zone, ids in sorted(topo.configured.items()):
        for vsw_id in ids:
            vsw = topo.vswitches.get(vsw_id)
            if vsw is None:
                problems.append(f"{vsw_id} (eni_conf zone {zone}) does not exist in this region")
            elif vsw.zone_id != zone:
                problems.append(f"{vsw_id} is configured under zone {zone} but lives in {vsw.zone_id}")
        if not node_zones.get(zone):
            warnings.append(f"zone {zone} has pod vSwitches ({', '.join(ids)}) but no nodes")
    for zone, count in sorted(node_zones.items()):
        if topo.configured and not topo.configured.get(zone):
            fallback = ", ".join(topo.pod_vswitch_ids(zone)) or "none"
            problems.append(f"zone {zone} has {count} node(s) but no pod vSwitch in eni_conf: their pods fall back "
                            f"to the node vSwitch ({fallback})")
        else:
            evidence.append(f"zone {zone}: {count} node(s), pod vSwitches {', '.join(topo.pod_vswitch_ids(zone))}")
    if problems:
        return fail([*problems, *warnings, *evidence],
                    "give every zone with nodes a pod vSwitch of that zone: terwayctl vswitch add vsw-... "
                    "(a vSwitch belongs to one zone; remove wrong ones with terwayctl vswitch remove)")
    if warnings:
        return warn([*warnings, *evidence], "remove the unused zone's vSwitches (terwayctl vswitch remove) or add "
                                            "nodes in that zone")
    return ok(*evidence)


def eni_conf_file(ctx: Context) -> Verdict:
    """The eni_conf file doctor was given (--eni-conf or TERWAYCTL_ENI_CONF): it parses and validates."""
    from terwayctl.doctor.cluster import validate_eni_conf

    path = ctx.options.eni_conf_file
    if path is None:
        raise CheckSkipped("no eni_conf file given (--eni-conf / TERWAYCTL_ENI_CONF); the cluster's eni-config is "
                           "checked by cluster.eni-config")
    flag = ctx.options.eni_conf_origin
    fix = (f"repair {path} (it is the node's copy of the eni-config ConfigMap's eni_conf: kubectl -n kube-system get "
           f"configmap eni-config -o jsonpath='{{.data.eni_conf}}' > {path})")
    try:
        conf = load_eni_conf_file(path, flag)
    except InvalidInput as exc:
        return fail([exc.message, "the cloud checks cannot know the pod vSwitches: they are skipped"], fix)
    problems = validate_eni_conf(conf, f"{flag} {path}", security_group_required=False)
    zones = conf.get("vswitches")
    summary = f"{flag} {path}: {len(conf)} key(s), vswitches in {len(zones) if isinstance(zones, dict) else 0} zone(s)"
    if problems:
        return fail([summary, *problems], fix)
    return ok(summary)


def _mode(ctx: Context) -> tuple[str, str]:
    """The Terway mode (eniip / eni) and where it was read: the DaemonSet, else the node's daemon, else assumed."""
    try:
        daemonset = ctx.kube.terway_daemonset()
    except Exception:  # noqa: BLE001 - no cluster: look further
        daemonset = None
    if daemonset is not None:
        return daemonset.mode, f"DaemonSet {daemonset.namespace}/{daemonset.name}"
    try:
        status = ctx.node.daemon_status(str(ctx.options.socket), 5.0)
        if status.mode:
            return status.mode, "the node daemon's STATUS"
    except Exception:  # noqa: BLE001 - no node or no daemon
        pass
    return "eniip", "assumed: neither the cluster nor a node daemon says"


def instance_types(ctx: Context) -> Verdict:
    topo = topology(ctx)
    conf = eni_conf(ctx)
    settings = conf.conf if conf is not None else {}
    mode, origin = _mode(ctx)
    dual = str(settings.get("ip_stack") or "ipv4").lower() == "dual"
    trunking = settings.get("enable_eni_trunking") is True
    names = sorted({i.instance_type for i in topo.instances if i.instance_type})
    types = {t.instance_type_id: t for t in ctx.cloud.describe_instance_types(names)}
    wanted = [f"mode {mode} ({origin})"] + (["dual stack"] if dual else []) + (["ENI trunking"] if trunking else [])
    evidence = [f"configured: {', '.join(wanted)}"]
    bad: dict[str, list[str]] = {}
    for name in names:
        it = types.get(name)
        holders = ", ".join(i.instance_id for i in topo.instances if i.instance_type == name)
        if it is None or it.eni_quantity is None:
            evidence.append(f"{name} ({holders}): unknown to DescribeInstanceTypes")
            continue
        problems = []
        ips = it.eni_private_ip_quantity or 0
        if mode == "eni":
            if it.eni_quantity - 1 <= 6:
                problems.append(f"exclusive ENI mode needs EniQuantity - 1 > 6, has {it.eni_quantity} - 1 = "
                                f"{it.eni_quantity - 1} (below the ACK minimum)")
        elif (it.eni_quantity - 1) * ips <= 11:
            problems.append(f"shared ENI mode needs (EniQuantity - 1) x IPs per ENI > 11, has ({it.eni_quantity} - 1) "
                            f"x {ips} = {(it.eni_quantity - 1) * ips} (below the ACK minimum)")
        if dual and it.eni_ipv6_quantity != it.eni_private_ip_quantity:
            problems.append(f"dual stack needs as many IPv6 as IPv4 addresses per ENI, has {it.eni_ipv6_quantity} "
                            f"IPv6 and {ips} IPv4")
        if trunking and not it.eni_trunk_supported:
            problems.append("ENI trunking is on, but the type does not support trunk ENIs (EniTrunkSupported false)")
        line = f"{name} ({holders}): EniQuantity {it.eni_quantity}, {ips} IPv4 / {it.eni_ipv6_quantity} IPv6 per ENI, " \
               f"trunk {'yes' if it.eni_trunk_supported else 'no'}"
        evidence.append(line + (": " + "; ".join(problems) if problems else ""))
        if problems:
            bad[name] = problems
    if bad:
        return fail(evidence, "move these nodes to a larger instance type (terwayctl capacity <type> shows what a type "
                              f"gives): {', '.join(bad)}; or change the configured mode")
    return ok(*evidence)


def _creator_tag() -> str:
    from terwayctl.node.config import ENI_CREATOR_TAG

    return ENI_CREATOR_TAG


def _age(ctx: Context, eni: NetworkInterface) -> float | None:
    """Seconds since the ENI's CreationTime, by doctor's clock; None when the cloud gave no time."""
    if eni.creation_time is None:
        return None
    return ctx.now() - eni.creation_time.timestamp()


def _minutes(seconds: float) -> str:
    value = seconds / 60
    return f"{value:.0f} min" if value >= 10 else f"{round(value, 1):g} min"


@dataclass(frozen=True)
class _DaemonHolds:
    """What this node's daemon holds, from its store (read-only): the instance, its ENIs' IPs, open intents."""

    instance_id: str
    source: str
    ips: frozenset[str]
    enis: frozenset[str]
    busy_enis: frozenset[str]
    """ENIs with an open intent (a cloud call in flight or left by a crash): their IPs are not judged."""


def _daemon_holds(ctx: Context) -> _DaemonHolds | str:
    """The node daemon's store when doctor runs on the node, else why the IPs cannot be judged."""
    from terwayctl.doctor.podns import STORE_FILE

    path = ctx.options.state_dir / STORE_FILE
    if not path.exists():
        return f"no daemon store at {path} (run doctor on a node, or pass --state-dir)"
    instance_id = ""
    try:
        detail = ctx.node.daemon_status(str(ctx.options.socket), 5.0).detail
        instance_id = str(detail.get("instance_id") or "")
    except Exception:  # noqa: BLE001 - no node reader or no daemon: fall back to --instance-id
        instance_id = ""
    if not instance_id and len(ctx.options.instance_ids) == 1:
        instance_id = ctx.options.instance_ids[0]
    if not instance_id:
        return (f"the daemon store {path} names no instance: the daemon did not answer at {ctx.options.socket} "
                "and not exactly one --instance-id was given")
    from terwayctl.node.store import Store

    try:
        store = Store(path, readonly=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable store is a reason, not a crash
        return f"cannot read the daemon store {path}: {exc}"
    try:
        ips = frozenset(r.ip for r in store.ips())
        enis = frozenset(r.eni_id for r in store.enis())
        busy = frozenset(i.eni_id for i in store.intents() if i.eni_id)
    finally:
        store.close()
    return _DaemonHolds(instance_id, f"the daemon store {path}", ips, enis, busy)


def leaked_enis(ctx: Context) -> Verdict:
    topo = topology(ctx)
    tag = _creator_tag()
    grace = ctx.options.leak_grace
    cluster = {i.instance_id for i in topo.instances}
    region = f" --RegionId {ctx.cloud.region}" if ctx.cloud.region else ""
    evidence: list[str] = []
    leaks: list[str] = []
    fixes: list[str] = []
    young: list[str] = []
    enis = [e for vpc in topo.vpc_ids for e in ctx.cloud.describe_network_interfaces(vpc_id=vpc)]
    ours = [e for e in enis if any(k == tag for k, _ in e.tags)]
    known_instances: set[str] = set()
    attached = sorted({e.instance_id for e in ours if e.instance_id})
    if attached:
        known_instances = {i.instance_id for i in ctx.cloud.describe_instances(instance_ids=attached)}
    for eni in ours:
        creator = next(v for k, v in eni.tags if k == tag)
        age = _age(ctx, eni)
        if eni.status == "Available" and not eni.instance_id:
            if age is not None and age < grace:
                young.append(f"{eni.network_interface_id} ({eni.vswitch_id}): Available, created {_minutes(age)} ago "
                             f"by the daemon of {creator or '?'}: within the {_minutes(grace)} grace period (it may "
                             "be being attached), not reported")
                continue
            made = (f" (created {eni.creation_time.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}, past the {_minutes(grace)} "
                    "grace period)" if eni.creation_time else " (no CreationTime: age unknown)")
            leaks.append(f"{eni.network_interface_id} ({eni.vswitch_id}, {len(eni.private_ips)} IP(s)): Available, "
                         f"created by the daemon of {creator or '?'} ({tag}), attached to nothing{made}")
            fixes.append(f"aliyun ecs DeleteNetworkInterface{region} --NetworkInterfaceId {eni.network_interface_id}")
        elif eni.instance_id and eni.instance_id not in known_instances:
            leaks.append(f"{eni.network_interface_id}: attached to {eni.instance_id}, which no longer exists")
            fixes.append(f"aliyun ecs DeleteNetworkInterface{region} --NetworkInterfaceId {eni.network_interface_id}")
        elif eni.instance_id and cluster and eni.instance_id not in cluster and topo.instances_origin.startswith(
                "the cluster"):  # --instance-id names some nodes (a node's own run), not the whole cluster
            leaks.append(f"{eni.network_interface_id}: attached to {eni.instance_id}, which is not a node of the "
                         "cluster")
            fixes.append(f"aliyun ecs DetachNetworkInterface{region} --InstanceId {eni.instance_id} "
                         f"--NetworkInterfaceId {eni.network_interface_id}")
    evidence.append(f"{len(ours)} ENI(s) tagged {tag} in {', '.join(topo.vpc_ids) or 'the VPC'}; {len(enis)} ENI(s) "
                    "in all")
    evidence += young
    ip_leaks, ip_fixes, ip_note = _leaked_ips(ctx, ours, region)
    evidence.append(ip_note)
    leaks += ip_leaks
    fixes += ip_fixes
    if leaks:
        return fail([*evidence, *leaks, "leaked ENIs and IPs hold vSwitch addresses and count against the ENI and IP "
                     "quotas"], "\n".join(fixes))
    return ok(*evidence)


def _leaked_ips(ctx: Context, ours: list[NetworkInterface], region: str) -> tuple[list[str], list[str], str]:
    """Secondary IPs on this node's daemon-created ENIs that its store does not know (leaks, fixes, a note).

    The cloud gives no per-IP time: an ENI younger than the grace period, or with an open intent in the store (an
    assign in flight), is not judged. The store is read after the cloud, so an IP assigned before the cloud read
    is in the store unless its call is still open."""
    holds = _daemon_holds(ctx)
    if isinstance(holds, str):
        return [], [], f"secondary IPs no daemon knows: not checked: {holds}"
    grace = ctx.options.leak_grace
    leaks: list[str] = []
    fixes: list[str] = []
    judged = 0
    for eni in ours:
        if eni.instance_id != holds.instance_id or eni.network_interface_id in holds.busy_enis:
            continue
        age = _age(ctx, eni)
        if age is not None and age < grace:
            continue
        judged += 1
        unknown = [ip for ip in eni.secondary_ips if ip not in holds.ips]
        if not unknown:
            continue
        known = "an ENI the store knows" if eni.network_interface_id in holds.enis else "an ENI the store does not know"
        leaks.append(f"{eni.network_interface_id} on {eni.instance_id} ({eni.vswitch_id}, {known}): secondary IP(s) "
                     f"{', '.join(unknown)} assigned in the cloud, unknown to {holds.source}")
        for start in range(0, len(unknown), 10):  # UnassignPrivateIpAddresses takes 10 per call
            batch = unknown[start:start + 10]
            fixes.append(f"aliyun ecs UnassignPrivateIpAddresses{region} --NetworkInterfaceId "
                         f"{eni.network_interface_id} "
                         + " ".join(f"--PrivateIpAddress.{i} {ip}" for i, ip in enumerate(batch, start=1)))
    note = (f"secondary IPs of {judged} ENI(s) of {holds.instance_id} (older than {_minutes(grace)}, no call in "
            f"flight) against {holds.source}: {len(holds.ips)} IP(s) known")
    return leaks, fixes, note


def eni_drift(ctx: Context) -> Verdict:
    """Nodes whose pod ENIs sit on vSwitches no longer configured for their zone."""
    topo = topology(ctx)
    if not topo.configured:
        raise CheckSkipped("no eni_conf vswitches: every ENI uses its node's vSwitch")
    evidence: list[str] = []
    drift: list[str] = []
    fixes: list[str] = []
    region = f" --RegionId {ctx.cloud.region}" if ctx.cloud.region else ""
    for instance in topo.instances:
        enis = [e for e in ctx.cloud.describe_network_interfaces(instance_id=instance.instance_id)
                if e.instance_id == instance.instance_id and e.type != "Primary"
                and e.network_interface_id not in instance.network_interface_ids[:1]]
        allowed = set(topo.pod_vswitch_ids(instance.zone_id))
        off = [e for e in enis if e.vswitch_id not in allowed and e.vswitch_id != instance.vswitch_id]
        for eni in off:
            drift.append(f"{instance.instance_id} ({instance.zone_id}): {eni.network_interface_id} on "
                         f"{eni.vswitch_id}, which eni_conf no longer lists for {instance.zone_id} "
                         f"({', '.join(sorted(allowed)) or 'none'}): its pods keep IPs from a vSwitch you removed")
            fixes += [f"# after moving the pods off {instance.instance_id} (kubectl drain <its node>):",
                      f"aliyun ecs DetachNetworkInterface{region} --InstanceId {instance.instance_id} "
                      f"--NetworkInterfaceId {eni.network_interface_id}",
                      f"aliyun ecs DeleteNetworkInterface{region} --NetworkInterfaceId {eni.network_interface_id}"]
        evidence.append(f"{instance.instance_id}: {len(enis)} secondary ENI(s), {len(off)} on unconfigured vSwitches")
    if drift:
        return fail([*drift, *evidence], "\n".join([*fixes, "# or put the vSwitch back: terwayctl vswitch add <it>"]))
    return ok(*evidence)


def pod_routes(ctx: Context) -> Verdict:
    """Every pod vSwitch's route table (its custom table, else the VPC's system table) sends 0.0.0.0/0 to a NAT."""
    topo, facts = topology(ctx), nat_facts(ctx)
    if not facts.gateways:
        raise CheckSkipped(f"no NAT gateway in {', '.join(topo.vpc_ids) or 'the VPC'} (see cloud.snat-coverage)")
    region = f" --RegionId {ctx.cloud.region}" if ctx.cloud.region else ""
    tables = [t for vpc in topo.vpc_ids for t in ctx.cloud.describe_route_table_list(vpc_id=vpc)]
    evidence: list[str] = []
    bad: list[str] = []
    fixes: list[str] = []
    entries: dict[str, list[str]] = {}
    for vsw_id in topo.all_pod_vswitch_ids():
        vsw = topo.vswitches.get(vsw_id)
        if vsw is None:
            continue
        table = next((t for t in tables if t.route_table_type != "System" and vsw_id in t.vswitch_ids), None) or \
            next((t for t in tables if t.route_table_type == "System" and t.vpc_id == vsw.vpc_id), None)
        if table is None:
            evidence.append(f"{vsw_id}: no route table found for it")
            continue
        if table.route_table_id not in entries:
            entries[table.route_table_id] = [
                f"{kind}:{hop}" for e in ctx.cloud.describe_route_entry_list(table.route_table_id,
                                                                            destination_cidr_block="0.0.0.0/0")
                if e.destination_cidr_block == "0.0.0.0/0" for kind, hop in e.next_hops]
        hops = entries[table.route_table_id]
        where = f"{vsw_id} (pod): route table {table.route_table_id} ({table.route_table_type})"
        nat_ids = {g.nat_gateway_id for g in facts.gateways}
        if any(h.startswith("NatGateway:") and h.split(":", 1)[1] in nat_ids for h in hops):
            evidence.append(f"{where}: 0.0.0.0/0 -> {', '.join(hops)}")
            continue
        gateway = next((g for g in facts.gateways if g.vpc_id in ("", vsw.vpc_id)), facts.gateways[0])
        bad.append(f"{where}: {'0.0.0.0/0 -> ' + ', '.join(hops) if hops else 'no 0.0.0.0/0 route'}, not to a NAT "
                   f"gateway: pods on {vsw_id} never reach the SNAT entries of {gateway.nat_gateway_id}")
        fixes.append(f"aliyun vpc CreateRouteEntry{region} --RouteTableId {table.route_table_id} --DestinationCidrBlock "
                     f"0.0.0.0/0 --NextHopType NatGateway --NextHopId {gateway.nat_gateway_id}")
    if bad:
        return fail([*bad, *evidence], "\n".join(dict.fromkeys(fixes)))
    return ok(*evidence)


CHECKS: list[Check] = [
    Check("cloud.eni-conf", "The eni_conf file parses and validates", Scope.CLOUD, frozenset(), eni_conf_file,
          "the file of --eni-conf / TERWAYCTL_ENI_CONF: JSON (or the eni-config ConfigMap) and the values rules"),
    Check("cloud.snat-coverage", "Every pod and node vSwitch has an SNAT entry", Scope.CLOUD, NEEDS, snat_coverage,
          "DescribeNatGateways and DescribeSnatTableEntries of the VPC: SourceVSwitchId, or a SourceCIDR containing "
          "the vSwitch CIDR"),
    Check("cloud.eip-trap", "No node has an EIP while its pods lack SNAT", Scope.CLOUD, NEEDS, eip_trap,
          "DescribeEipAddresses (EcsInstance) of the nodes against SNAT coverage of their zone's pod vSwitches"),
    Check("cloud.vswitch-free-ips", "vSwitches have free IPs", Scope.CLOUD, NEEDS, vswitch_free_ips,
          "AvailableIpAddressCount of every pod and node vSwitch (warn below --low-ips, fail at 0)"),
    Check("cloud.eni-slots", "Instances have ENI slots left", Scope.CLOUD, NEEDS, eni_slots,
          "attached ENIs (DescribeNetworkInterfaces) against EniQuantity and EniPrivateIpAddressQuantity "
          "(DescribeInstanceTypes)"),
    Check("cloud.vswitch-zones", "Every zone with nodes has pod vSwitches, and only those", Scope.CLOUD, NEEDS,
          vswitch_zones, "eni_conf vswitches zones against the instances' zones and the vSwitches' real zones"),
    Check("cloud.instance-types", "The nodes' instance types can run the configured mode", Scope.CLOUD, NEEDS,
          instance_types, "DescribeInstanceTypes of the nodes against the mode (eniip: (EniQuantity-1) x IPs per ENI "
          "> 11; eni: EniQuantity-1 > 6), dual stack (IPv6 = IPv4 per ENI) and trunking (EniTrunkSupported)"),
    Check("cloud.leaked-enis", "No ENI the daemon created is leaked", Scope.CLOUD, NEEDS, leaked_enis,
          "DescribeNetworkInterfaces of the VPC: ENIs tagged terway.node that are Available past the grace period "
          "(--leak-grace), or attached to an instance that no longer exists or is not in the cluster; on a node, the "
          "secondary IPs of its ENIs that the daemon's store does not know"),
    Check("cloud.eni-drift", "Pod ENIs sit on configured vSwitches", Scope.CLOUD, NEEDS, eni_drift,
          "the nodes' secondary ENIs against the eni_conf vSwitches of their zone"),
    Check("cloud.pod-routes", "Pod vSwitches route 0.0.0.0/0 to a NAT gateway", Scope.CLOUD, NEEDS, pod_routes,
          "DescribeRouteTableList / DescribeRouteEntryList: the route table of each pod vSwitch (its custom table, "
          "else the VPC's system table) and its 0.0.0.0/0 next hop"),
]
