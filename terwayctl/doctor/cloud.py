"""Cloud checks: SNAT coverage, the EIP trap, vSwitch free IPs, ENI slots, vSwitch zones."""

from __future__ import annotations

from terwayctl.cloud.models import VSwitch
from terwayctl.doctor.context import Context
from terwayctl.doctor.model import Check, Need, Scope, Verdict, fail, ok, warn
from terwayctl.doctor.topology import eips, nat_facts, snat_command, topology

NEEDS = frozenset({Need.CLOUD, Need.TOPOLOGY})


def snat_coverage(ctx: Context) -> Verdict:
    topo, facts = topology(ctx), nat_facts(ctx)
    evidence = [topo.describe_inputs()]
    if not facts.gateways:
        evidence.append(f"no NAT gateway in {', '.join(topo.vpc_ids) or 'the VPC'}")
    uncovered = []
    wanted = list(dict.fromkeys([*topo.all_pod_vswitch_ids(), *topo.node_vswitch_ids]))
    for vsw_id in wanted:
        vsw = topo.vswitches.get(vsw_id)
        if vsw is None:
            evidence.append(f"{vsw_id} ({topo.role(vsw_id)}): does not exist in this region")
            continue
        entries = facts.covering(vsw)
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
            evidence.append(f"pods on {', '.join(pods)} have no internet access (Terway never masquerades pods)")
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


CHECKS: list[Check] = [
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
]
