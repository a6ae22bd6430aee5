"""`terwayctl vswitch`: add, list and remove the pod vSwitches of eni_conf in a running cluster."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Optional, TextIO

import typer

from terwayctl.cli.apply import DEFAULT_TIMEOUT, parse_duration
from terwayctl.cli.context import global_options
from terwayctl.cli.options import Output, OutputOption
from terwayctl.cli.render import emit_structured
from terwayctl.cli.table import write_table
from terwayctl.core import defaults
from terwayctl.core.eniconf import (
    VSwitchFacts,
    add_vswitches_text,
    configured_vswitches,
    eni_conf_diff,
    parse_eni_conf_text,
    plan_vswitch_additions,
    plan_vswitch_removal,
    remove_vswitch_text,
)
from terwayctl.core.errors import InvalidInput, NotFound
from terwayctl.core.sorting import natural_text_key

if TYPE_CHECKING:
    from terwayctl.cloud.api import VpcLayoutReader
    from terwayctl.cloud.models import VSwitch as CloudVSwitch
    from terwayctl.core.outbound import Outbound
    from terwayctl.kube.api import ObjectReader
    from terwayctl.kube.configmap import ConfigMapWriter, EditResult
    from terwayctl.kube.reads import NodeInfo
    from terwayctl.kube.rollout import NodeRestartResult, PodRestarter

app = typer.Typer(no_args_is_help=True, help="Add, list and remove the pod vSwitches Terway uses (eni_conf).")

NEW_ENIS_ONLY = ("note: existing ENIs keep their vSwitch; the new vSwitch serves only ENIs created from now on "
                 "(new nodes, or pods beyond the IPs of the existing ENIs)")

ConfigMapOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--configmap", help="Edit this per-node ConfigMap (node label terway-config=NAME) instead of eni-config."),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print the eni_conf diff; change nothing.")]
NoRestartOption = Annotated[bool, typer.Option("--no-restart", help="Do not restart the terway pods afterwards.")]
TimeoutOption = Annotated[str, typer.Option("--timeout", help="How long to wait for the terway pods, e.g. 90s or 5m.")]


@dataclass(frozen=True)
class VSwitchRow:
    zone: str
    vswitch_id: str
    cidr: str | None
    free_ips: int | None
    nodes: int
    vpc_id: str | None
    exists: bool


# --- reads shared by the commands ---------------------------------------------------------------------


def _eni_conf_of(reader: ObjectReader, namespace: str, name: str) -> tuple[str, str]:
    """(eni_conf text, resourceVersion) of a ConfigMap; NotFound / InvalidInput with hints."""
    from terwayctl.kube.errors import KubeNotFound
    from terwayctl.kube.reads import read_configmap

    try:
        cm = read_configmap(reader, namespace, name)
    except KubeNotFound:
        raise NotFound(f"ConfigMap {namespace}/{name} does not exist",
                       hint="is Terway installed ('terwayctl apply')? use -n for another namespace") from None
    text = cm.data.get(defaults.ENI_CONF_KEY)
    if text is None:
        raise InvalidInput(f"ConfigMap {namespace}/{name} has no {defaults.ENI_CONF_KEY} key",
                           hint="the eni_conf key holds Terway's JSON configuration")
    return text, cm.resource_version


def _target_nodes(nodes: Iterable[NodeInfo], configmap: str | None) -> list[NodeInfo]:
    if configmap is None or configmap == defaults.ENI_CONFIG_NAME:
        return list(nodes)
    chosen = [n for n in nodes if n.terway_config == configmap]
    if not chosen:
        raise InvalidInput(f"no node has the label terway-config={configmap}",
                           hint=f"label the nodes that use it: kubectl label node NODE terway-config={configmap}")
    return chosen


def _zone_counts(nodes: Iterable[NodeInfo]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in nodes:
        if node.zone:
            counts[node.zone] = counts.get(node.zone, 0) + 1
    return counts


def _facts(cloud: VpcLayoutReader, ids: Iterable[str]) -> dict[str, VSwitchFacts]:
    found: dict[str, VSwitchFacts] = {}
    for vsw in dict.fromkeys(ids):
        for item in cloud.describe_vswitches(vswitch_ids=[vsw]):
            if item.vswitch_id == vsw:
                found[vsw] = VSwitchFacts(item.vswitch_id, item.vpc_id, item.zone_id, item.cidr_block,
                                          item.available_ip_count)
    return found


def _restart_nodes(kube: PodRestarter, namespace: str, nodes: Sequence[str], timeout: float, out: TextIO) -> int:
    """Restart the terway pods of `nodes` only, in batches of the DaemonSet's maxUnavailable."""
    from terwayctl.kube.reads import find_terway_daemonset

    ds = find_terway_daemonset(kube, namespace)
    if ds is None:
        out.write(f"warning: no {defaults.DAEMONSET_ENIIP} or {defaults.DAEMONSET_ENI} DaemonSet in {namespace}: "
                  "restart the terway pods yourself\n")
        return 0
    if not nodes:
        out.write("no node uses the changed ConfigMap: no terway pod to restart\n")
        return 0
    result = restart_with_progress(kube, namespace, ds.name, nodes, timeout, out)
    return print_restart_result(out, result)


def restart_with_progress(kube: PodRestarter, namespace: str, name: str, nodes: Sequence[str], timeout: float,
                          out: TextIO) -> NodeRestartResult:
    """restart_pods_on_nodes with a rich progress bar on a TTY, one line per batch otherwise."""
    from terwayctl.cli.apply import POLL_SECONDS
    from terwayctl.kube.rollout import restart_pods_on_nodes

    ref = f"daemonset {namespace}/{name}"
    out.write(f"restarting the terway pods ({ref}) of {len(nodes)} node(s): {', '.join(nodes)}\n")
    out.flush()
    if out.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=Console(file=out), transient=False) as bar:
            task = bar.add_task("restarting terway pods", total=len(nodes))

            def show(done: int, total: int, batch: Sequence[str]) -> None:
                bar.update(task, total=total, completed=done,
                           description=f"restarting {', '.join(batch)}" if batch else "restarted")

            return restart_pods_on_nodes(kube, namespace, name, nodes, timeout=timeout, poll=POLL_SECONDS,
                                         on_batch=show)

    def line(done: int, total: int, batch: Sequence[str]) -> None:
        if batch:
            out.write(f"restart {done}/{total} ready; now: {', '.join(batch)}\n")
        else:
            out.write(f"restart {done}/{total} ready\n")
        out.flush()

    return restart_pods_on_nodes(kube, namespace, name, nodes, timeout=timeout, poll=POLL_SECONDS, on_batch=line)


def print_restart_result(out: TextIO, result: NodeRestartResult) -> int:
    ref = f"daemonset {result.namespace}/{result.name}"
    if result.skipped:
        out.write(f"note: no terway pod runs on {', '.join(result.skipped)}: nothing to restart there (a new pod "
                  "reads eni_conf when it starts)\n")
    if result.complete:
        out.write(f"restarted the terway pods of {len(result.nodes)} node(s) ({ref}, batches of "
                  f"{result.batch_size}): all ready\n")
        return 0
    failed = result.batches[-1]
    out.write(f"stopped: the terway pods of {', '.join(failed.nodes)} did not become ready; "
              f"{result.restarted}/{len(result.nodes)} node(s) restarted, the rest keep their old pods\n")
    for pod in failed.unready:
        out.write(f"  pod {pod.name} on node {pod.node or '?'}: {pod.reason}\n")
    out.write(f"hint: kubectl -n {result.namespace} describe pod <pod>; kubectl -n {result.namespace} logs <pod>; "
              "then rerun the restart: kubectl -n "
              f"{result.namespace} delete pod -l <the DaemonSet's labels> --field-selector spec.nodeName=<node>\n")
    return 1


def _edit_eni_conf(
    kube: ConfigMapWriter, namespace: str, name: str, change: Callable[[str], str], dry_run: bool, out: TextIO,
    *, footer: bool = True,
) -> EditResult | None:
    """Change the eni_conf key of a ConfigMap with optimistic concurrency (re-applied on 409).

    With dry_run, prints the eni_conf diff and returns None: nothing is written.
    """
    from terwayctl.kube.configmap import edit_configmap

    def transform(data: Mapping[str, str]) -> Mapping[str, str]:
        current = data.get(defaults.ENI_CONF_KEY)
        if current is None:
            raise InvalidInput(f"ConfigMap {namespace}/{name} has no {defaults.ENI_CONF_KEY} key")
        return {**data, defaults.ENI_CONF_KEY: change(current)}

    result = edit_configmap(kube, namespace, name, transform, dry_run=dry_run)
    if not dry_run:
        return result
    out.write(eni_conf_diff(result.before[defaults.ENI_CONF_KEY], result.after[defaults.ENI_CONF_KEY],
                            f"{namespace}/{name}/eni_conf"))
    if footer:
        out.write("dry run: nothing changed\n")
    return None


# --- nodes and the ConfigMaps they use -------------------------------------------------------------------


@dataclass(frozen=True)
class NodeView:
    """Which pod vSwitches a node really uses: its zone's list in its effective eni_conf."""

    name: str
    zone: str | None
    source: str
    """The ConfigMap the zone's list comes from: eni-config, or the node's terway-config override."""
    vswitches: tuple[str, ...]
    terway_config: str | None


def _override_texts(kube: ObjectReader, namespace: str, nodes: Iterable[NodeInfo]) -> dict[str, str | None]:
    """eni_conf of every ConfigMap named by a node label terway-config (None: missing ConfigMap or key)."""
    from terwayctl.kube.errors import KubeNotFound
    from terwayctl.kube.reads import read_configmap

    texts: dict[str, str | None] = {}
    for name in sorted({n.terway_config for n in nodes if n.terway_config}):
        try:
            texts[name] = read_configmap(kube, namespace, name).data.get(defaults.ENI_CONF_KEY)
        except KubeNotFound:
            texts[name] = None
    return texts


def node_views(nodes: Iterable[NodeInfo], default_text: str, overrides: Mapping[str, str | None]) -> list[NodeView]:
    from terwayctl.core.eniconf import merged_eni_conf

    views = []
    for node in nodes:
        override = overrides.get(node.terway_config) if node.terway_config else None
        merged = merged_eni_conf(default_text, override, f"{node.terway_config} eni_conf")
        zone_ids = tuple(configured_vswitches(merged, "effective eni_conf").get(node.zone or "", []))
        source = defaults.ENI_CONFIG_NAME
        if override is not None and node.terway_config:
            own = parse_eni_conf_text(override, f"{node.terway_config} eni_conf").get("vswitches")
            if isinstance(own, dict) and node.zone in own:
                source = node.terway_config
        views.append(NodeView(node.name, node.zone, source, zone_ids, node.terway_config))
    return views


def _names(views: Iterable[NodeView]) -> str:
    return ", ".join(v.name for v in views)


@dataclass(frozen=True)
class Targets:
    configmaps: tuple[str, ...]
    """The ConfigMaps to edit, eni-config (when edited) first."""
    nodes: tuple[str, ...]
    """The nodes that will use the new vSwitches: their terway pods restart."""
    warnings: tuple[str, ...]


def choose_targets(views: Sequence[NodeView], zones: Iterable[str], vswitches: Sequence[str], configmap: str | None,
                   all_configmaps: bool) -> Targets:
    """Where the vSwitches go and which nodes will see them; refuses when no node of a zone would."""
    targets: list[str] = []
    nodes: list[str] = []
    warnings: list[str] = []
    shown = ", ".join(vswitches)
    for zone in dict.fromkeys(zones):
        in_zone = [v for v in views if v.zone == zone]
        if configmap is not None and configmap != defaults.ENI_CONFIG_NAME:
            chosen = [v for v in in_zone if v.terway_config == configmap]
            targets.append(configmap)
            nodes += [v.name for v in chosen]
            continue
        overridden = [v for v in in_zone if v.source != defaults.ENI_CONFIG_NAME]
        others = sorted({v.source for v in overridden})
        targets.append(defaults.ENI_CONFIG_NAME)
        if all_configmaps:
            targets += others
            nodes += [v.name for v in in_zone if any(x not in v.vswitches for x in vswitches)]
            continue
        plain = [v for v in in_zone if v.source == defaults.ENI_CONFIG_NAME]
        flags = " or ".join(f"--configmap {c}" for c in others)
        if overridden and not plain:
            raise InvalidInput(
                f"every node of zone {zone} ({_names(overridden)}) takes its vSwitches from ConfigMap(s) "
                f"{', '.join(others)} (node label terway-config): no node would use {shown}",
                hint=f"add it there: --all-configmaps (eni-config and {', '.join(others)}), or {flags}",
            )
        if overridden:
            warnings.append(
                f"node(s) {_names(overridden)} of zone {zone} take their vSwitches from ConfigMap(s) "
                f"{', '.join(others)} and will not use {shown}; add it there too with --all-configmaps or {flags}")
        nodes += [v.name for v in plain]
    return Targets(tuple(dict.fromkeys(targets)), tuple(dict.fromkeys(nodes)), tuple(warnings))


# --- add --------------------------------------------------------------------------------------------------

NEW_VSWITCH = "vsw-(new)"
"""Stands for the vSwitch --create makes, in --dry-run output."""
GROWTH = 2.0
DEFAULT_PODS_PER_NODE = 110


def _validate_add_options(vswitches: Sequence[str], zone: str | None, create: bool, cidr: str | None,
                          snat: bool, no_internet: bool, configmap: str | None, all_configmaps: bool) -> None:
    if create and vswitches:
        raise InvalidInput("give vSwitch ids or --create, not both", hint="--create makes one new vSwitch in --zone")
    if create and zone is None:
        raise InvalidInput("--create needs --zone", hint="e.g. terwayctl vswitch add --zone cn-hangzhou-i --create")
    if not create and not vswitches:
        raise InvalidInput("no vSwitch to add", hint="give vSwitch ids, or --zone ZONE --create to make one")
    if cidr is not None and not create:
        raise InvalidInput("--cidr goes with --create", hint="an existing vSwitch keeps its CIDR")
    if snat and no_internet:
        raise InvalidInput("--snat and --no-internet contradict each other",
                           hint="--snat gives the vSwitch internet access; --no-internet says it needs none")
    if configmap is not None and all_configmaps:
        raise InvalidInput("--configmap and --all-configmaps contradict each other",
                           hint="--all-configmaps edits eni-config and every ConfigMap overriding the zone")


@app.command("add")
def add(
    ctx: typer.Context,
    vswitches: Annotated[Optional[list[str]], typer.Argument(help="vSwitch ids to add, e.g. vsw-bp1...", show_default=False)] = None,  # noqa: UP045
    zone: Annotated[Optional[str], typer.Option("--zone", help="Expected zone; refuse vSwitches of another zone. The zone of --create.")] = None,  # noqa: UP045
    create: Annotated[bool, typer.Option("--create", help="Create a new pod vSwitch in --zone (CreateVSwitch) and add it.")] = False,
    cidr: Annotated[Optional[str], typer.Option("--cidr", help="The CIDR of --create (default: planned in the VPC's free space).")] = None,  # noqa: UP045
    avoid: Annotated[Optional[list[str]], typer.Option("--avoid", help="A CIDR --create must not use (repeatable), e.g. an on-premises range.")] = None,  # noqa: UP045
    snat: Annotated[bool, typer.Option("--snat", help="Create the missing SNAT entry on the NAT gateway instead of refusing.")] = False,
    no_internet: Annotated[bool, typer.Option("--no-internet", help="The vSwitch is deliberately private: skip the route and SNAT checks.")] = False,
    configmap: ConfigMapOption = None,
    all_configmaps: Annotated[bool, typer.Option("--all-configmaps", help="Also add to every terway-config ConfigMap that overrides the zone's vSwitches.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print every cloud call and the eni_conf diff; change nothing.")] = False,
    no_restart: NoRestartOption = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> int:
    """Check, then add vSwitches under their zone in eni_conf and restart the terway pods of the nodes that use them.

    Refused (exit 2, with the fix) unless pods on the vSwitch will work: same VPC, a zone with nodes,
    not configured yet, and outbound internet (0.0.0.0/0 to a NAT gateway with an SNAT entry covering
    the whole vSwitch) or --no-internet."""
    from terwayctl.cli import vswitch_cloud as vc
    from terwayctl.cloud.session import client_from_options
    from terwayctl.kube.client import connect
    from terwayctl.kube.reads import list_nodes

    requested = list(dict.fromkeys(vswitches or []))
    _validate_add_options(requested, zone, create, cidr, snat, no_internet, configmap, all_configmaps)
    options = global_options(ctx)
    seconds = parse_duration(timeout)
    name = configmap or defaults.ENI_CONFIG_NAME
    out = sys.stdout

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    with connect(options.kubeconfig, options.context) as kube:
        text, _ = _eni_conf_of(kube, options.namespace, name)
        default_text = text if name == defaults.ENI_CONFIG_NAME else _eni_conf_of(
            kube, options.namespace, defaults.ENI_CONFIG_NAME)[0]
        configured = configured_vswitches(parse_eni_conf_text(text, f"{name} eni_conf"), f"{name} eni_conf")
        reference = {f"{name}:{z}": ids for z, ids in configured.items()}
        if name != defaults.ENI_CONFIG_NAME:
            reference.update({f"eni-config:{z}": ids for z, ids in configured_vswitches(
                parse_eni_conf_text(default_text, "eni-config eni_conf"), "eni-config eni_conf").items()})
        all_nodes = list_nodes(kube)
        node_zones = _zone_counts(_target_nodes(all_nodes, configmap))
        overrides = _override_texts(kube, options.namespace, all_nodes)
        views = node_views(all_nodes, default_text, overrides)
        with client_from_options(options) as cloud:
            known = [v for ids in reference.values() for v in ids]
            cloud_vsw = {v.vswitch_id: v for v in _described(cloud, [*requested, *known])}
            found = {k: VSwitchFacts(v.vswitch_id, v.vpc_id, v.zone_id, v.cidr_block, v.available_ip_count)
                     for k, v in cloud_vsw.items()}
            planned: VSwitchFacts | None = None
            if create:
                assert zone is not None
                if node_zones.get(zone, 0) == 0:
                    with_nodes = ", ".join(sorted(z for z, n in node_zones.items() if n)) or "none"
                    raise InvalidInput(f"--create --zone {zone}: a zone where the cluster has no nodes (zones "
                                       f"with nodes: {with_nodes}); a new vSwitch there would serve no pod",
                                       hint="pick a --zone with nodes (label topology.kubernetes.io/zone)")
                planned = _plan_new_vswitch(cloud, found, reference, configured, default_text, all_nodes, zone,
                                            cidr, avoid or [])
                found[NEW_VSWITCH] = planned
                requested = [NEW_VSWITCH]
            plan = plan_vswitch_additions(requested, found, _configured_everywhere(configured, views, all_configmaps),
                                          node_zones, zone=zone, vpc_reference=reference)
            targets = choose_targets(views, [z for z, _ in plan.additions], requested, configmap, all_configmaps)
            # outbound internet, before anything changes
            snat_needed: list[tuple[str, vc.OutboundFacts]] = []
            checked: list[vc.OutboundFacts] = []
            if not no_internet:
                for _, vsw in plan.additions:
                    facts = found[vsw]
                    described = cloud_vsw.get(vsw)
                    outbound = vc.read_outbound(
                        cloud, vswitch_id=vsw, cidr=facts.cidr, vpc_id=facts.vpc_id,
                        route_table_id=described.route_table_id if described else "",
                        route_table_type=described.route_table_type if described else "")
                    if outbound.verdict.ok:
                        checked.append(outbound)
                    elif snat and outbound.verdict.fixable_by_snat:
                        snat_needed.append((vsw, outbound))
                    else:
                        raise vc.refusal(outbound, cloud.region)
            for warning in [*plan.warnings, *targets.warnings]:
                typer.echo(f"warning: {warning}", err=True)

            if dry_run:
                if planned is not None:
                    say(f"would call: CreateVSwitch VpcId={planned.vpc_id} ZoneId={planned.zone_id} "
                        f"CidrBlock={planned.cidr} VSwitchName=terway-pod-{planned.zone_id} (then wait until "
                        "Available)")
                for vsw, outbound in snat_needed:
                    say(f"would call: {vc.snat_call(outbound, vsw)} (then wait until Available)")
                for line in vc.describe(checked):
                    say(line)
                for target in targets.configmaps:
                    _edit_eni_conf(kube, options.namespace, target, _adder(target, plan.additions), True, out,
                                   footer=False)
                say("dry run: nothing changed")
                return 0

            additions = list(plan.additions)
            if planned is not None:
                new_id = vc.create_vswitch(cloud, vpc_id=planned.vpc_id, zone=planned.zone_id, cidr=planned.cidr,
                                           name=f"terway-pod-{planned.zone_id}", say=say, timeout=seconds)
                found[new_id] = VSwitchFacts(new_id, planned.vpc_id, planned.zone_id, planned.cidr, planned.free_ips)
                additions = [(z, new_id if v == NEW_VSWITCH else v) for z, v in additions]
                snat_needed = [(new_id if v == NEW_VSWITCH else v, f) for v, f in snat_needed]
                checked = [vc.OutboundFacts(_renamed(f.verdict, new_id), f.nat, f.entries) for f in checked]
            for vsw, outbound in snat_needed:
                vc.create_snat(cloud, outbound, vsw, say=say, region=cloud.region, timeout=seconds)
                checked.append(vc.read_outbound(cloud, vswitch_id=vsw, cidr=found[vsw].cidr, vpc_id=found[vsw].vpc_id,
                                                route_table_id=outbound.verdict.route_table_id,
                                                route_table_type=outbound.verdict.route_table_type))
        for line in vc.describe(checked):
            say(line)
        for target in targets.configmaps:
            result = _edit_eni_conf(kube, options.namespace, target, _adder(target, additions), False, out)
            assert result is not None
            if not result.changed:
                say(f"configmap {options.namespace}/{target} already lists {', '.join(v for _, v in additions)}: "
                    "unchanged")
                continue
            for zone_id, vsw in additions:
                facts = found[vsw]
                free = "?" if facts.free_ips is None else str(facts.free_ips)
                say(f"added {vsw} ({facts.cidr}, {free} free IPs) under zone {zone_id} in configmap "
                    f"{options.namespace}/{target}")
            if result.attempts > 1:
                say(f"(the ConfigMap changed meanwhile: written on attempt {result.attempts})")
        say(NEW_ENIS_ONLY)
        if no_restart:
            say("not restarting the terway pods (--no-restart): they read eni_conf when they start")
            return 0
        return _restart_nodes(kube, options.namespace, targets.nodes, seconds, out)


def _configured_everywhere(configured: Mapping[str, list[str]], views: Sequence[NodeView],
                           all_configmaps: bool) -> Mapping[str, list[str]]:
    """What counts as already configured: with --all-configmaps only a vSwitch every node of its zone
    already uses (eni-config and each override list it), so a later --all-configmaps completes a plain add."""
    if not all_configmaps:
        return configured
    return {zone: [v for v in ids if all(v in view.vswitches for view in views if view.zone == zone)]
            for zone, ids in configured.items()}


def _adder(target: str, additions: Sequence[tuple[str, str]]) -> Callable[[str], str]:
    """Add what is not there yet (another ConfigMap may already list a vSwitch)."""

    def change(text: str) -> str:
        present = {v for ids in configured_vswitches(parse_eni_conf_text(text, f"{target} eni_conf"),
                                                     f"{target} eni_conf").values() for v in ids}
        return add_vswitches_text(text, [(z, v) for z, v in additions if v not in present], f"{target} eni_conf")

    return change


def _renamed(verdict: Outbound, vswitch_id: str) -> Outbound:
    import dataclasses

    return dataclasses.replace(verdict, vswitch_id=vswitch_id)


def _described(cloud: VpcLayoutReader, ids: Iterable[str]) -> list[CloudVSwitch]:
    found = []
    for vsw in dict.fromkeys(ids):
        found += [item for item in cloud.describe_vswitches(vswitch_ids=[vsw]) if item.vswitch_id == vsw]
    return found


def _plan_new_vswitch(
    cloud: VpcLayoutReader, found: Mapping[str, VSwitchFacts], reference: Mapping[str, Sequence[str]],
    configured: Mapping[str, Sequence[str]], default_text: str, nodes: Sequence[NodeInfo], zone: str,
    cidr: str | None, avoid: Sequence[str],
) -> VSwitchFacts:
    """The vSwitch --create would make: the cluster's VPC, `zone`, and `cidr` or a planned CIDR."""
    import ipaddress

    from terwayctl.core.eniconf import _cluster_vpcs
    from terwayctl.core.planning import parse_cidr, pod_vswitch_cidr, usable_addresses

    vpcs = _cluster_vpcs(reference, found)
    if len(vpcs) != 1:
        raise InvalidInput("cannot tell the cluster's VPC from the configured vSwitches"
                           + (f" ({', '.join(sorted(vpcs))})" if vpcs else " (none of them exists)"),
                           hint="create the vSwitch in the console, then 'terwayctl vswitch add VSW'")
    vpc_id = vpcs.pop()
    vpc = next((v for v in cloud.describe_vpcs(vpc_ids=[vpc_id]) if v.vpc_id == vpc_id), None)
    if vpc is None:
        raise NotFound(f"VPC {vpc_id} does not exist", hint="check --region")
    networks = [ipaddress.IPv4Network(c) for c in (vpc.cidr_block, *vpc.secondary_cidr_blocks) if c]
    taken: list[tuple[str, ipaddress.IPv4Network]] = [
        (f"vSwitch {v.vswitch_id}", ipaddress.IPv4Network(v.cidr_block))
        for v in cloud.describe_vswitches(vpc_id=vpc_id) if v.cidr_block]
    service = parse_eni_conf_text(default_text, "eni-config eni_conf").get("service_cidr")
    if isinstance(service, str) and service:
        for part in service.split(","):
            try:
                taken.append(("the service CIDR", ipaddress.IPv4Network(part.strip(), strict=False)))
            except ValueError:
                continue
    taken += [(f"--avoid {a}", parse_cidr(a, "--avoid")) for a in avoid]
    if cidr is not None:
        net = parse_cidr(cidr, "--cidr")
        if not any(net.subnet_of(n) for n in networks):
            raise InvalidInput(f"--cidr {net} is not inside VPC {vpc_id} ({', '.join(map(str, networks))})",
                               hint="pick a CIDR inside the VPC ('terwayctl plan --live --vpc-id ...' shows the free space)")
        clash = next(((what, t) for what, t in taken if t.overlaps(net)), None)
        if clash is not None:
            raise InvalidInput(f"--cidr {net} overlaps {clash[0]} ({clash[1]})",
                               hint="leave --cidr out to get a free CIDR from the planner")
    else:
        in_zone = [n for n in nodes if n.zone == zone]
        need = int(sum((n.capacity_pods or DEFAULT_PODS_PER_NODE) for n in in_zone) * GROWTH)
        placed: ipaddress.IPv4Network | None = None
        errors: list[InvalidInput] = []
        for network in networks:
            try:
                placed = pod_vswitch_cidr(network, [t for _, t in taken], need)
                break
            except InvalidInput as exc:
                errors.append(exc)
        if placed is None:
            raise errors[0]
        net = placed
    return VSwitchFacts(NEW_VSWITCH, vpc_id, zone, str(net), usable_addresses(net))


# --- remove -----------------------------------------------------------------------------------------------


@app.command("remove")
def remove(
    ctx: typer.Context,
    vswitch: Annotated[str, typer.Argument(help="The vSwitch id to remove from eni_conf.", show_default=False)],
    configmap: ConfigMapOption = None,
    dry_run: DryRunOption = False,
    no_restart: NoRestartOption = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> int:
    """Remove a vSwitch from eni_conf (never the last one of a zone with nodes), then restart the terway pods."""
    from terwayctl.kube.client import connect
    from terwayctl.kube.reads import list_nodes

    options = global_options(ctx)
    seconds = parse_duration(timeout)
    name = configmap or defaults.ENI_CONFIG_NAME
    out = sys.stdout
    with connect(options.kubeconfig, options.context) as kube:
        all_nodes = list_nodes(kube)
        node_zones = _zone_counts(_target_nodes(all_nodes, configmap))

        def change(text: str) -> str:
            conf = parse_eni_conf_text(text, f"{name} eni_conf")
            plan_vswitch_removal(vswitch, configured_vswitches(conf, f"{name} eni_conf"), node_zones)
            return remove_vswitch_text(text, vswitch, f"{name} eni_conf")

        text, _ = _eni_conf_of(kube, options.namespace, name)
        default_text = text if name == defaults.ENI_CONFIG_NAME else _eni_conf_of(
            kube, options.namespace, defaults.ENI_CONFIG_NAME)[0]
        # only the nodes whose zone list comes from the edited ConfigMap see the removal
        users = [v.name for v in node_views(all_nodes, default_text,
                                            _override_texts(kube, options.namespace, all_nodes))
                 if vswitch in v.vswitches and v.source == name]
        if _edit_eni_conf(kube, options.namespace, name, change, dry_run, out) is None:
            return 0
        out.write(f"removed {vswitch} from configmap {options.namespace}/{name}\n")
        out.write("note: ENIs already in this vSwitch keep working until they are released\n")
        if no_restart:
            return 0
        return _restart_nodes(kube, options.namespace, users, seconds, out)


# --- list -------------------------------------------------------------------------------------------------


@app.command("list")
def list_(
    ctx: typer.Context,
    configmap: ConfigMapOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Per zone, the configured vSwitches with CIDR, free IPs (live) and node count."""
    from terwayctl.cloud.session import client_from_options
    from terwayctl.kube.client import connect
    from terwayctl.kube.reads import list_nodes

    options = global_options(ctx)
    name = configmap or defaults.ENI_CONFIG_NAME
    with connect(options.kubeconfig, options.context) as kube:
        text, _ = _eni_conf_of(kube, options.namespace, name)
        default_text = text if name == defaults.ENI_CONFIG_NAME else _eni_conf_of(
            kube, options.namespace, defaults.ENI_CONFIG_NAME)[0]
        configured = configured_vswitches(parse_eni_conf_text(text, f"{name} eni_conf"), f"{name} eni_conf")
        all_nodes = list_nodes(kube)
        node_zones = _zone_counts(_target_nodes(all_nodes, configmap))
        views = node_views(all_nodes, default_text, _override_texts(kube, options.namespace, all_nodes))
    with client_from_options(options) as cloud:
        found = _facts(cloud, [v for ids in configured.values() for v in ids])
    users = {vsw: sum(1 for v in views if vsw in v.vswitches) for ids in configured.values() for vsw in ids}
    rows = vswitch_rows(configured, found, users)
    if output is Output.table:
        print_vswitch_table(sys.stdout, rows, node_zones)
        for line in override_notes(views, name):
            sys.stdout.write(line + "\n")
    else:
        emit_structured(rows, output.value)


def vswitch_rows(configured: Mapping[str, list[str]], found: Mapping[str, VSwitchFacts],
                 users: Mapping[str, int]) -> list[VSwitchRow]:
    """One row per configured vSwitch; `users` counts the nodes that really use each (zone and ConfigMap)."""
    rows = []
    for zone in sorted(configured, key=natural_text_key):
        for vsw in configured[zone]:
            facts = found.get(vsw)
            rows.append(VSwitchRow(zone, vsw, facts.cidr if facts else None, facts.free_ips if facts else None,
                                   users.get(vsw, 0), facts.vpc_id if facts else None, facts is not None))
    return rows


def override_notes(views: Sequence[NodeView], shown: str) -> list[str]:
    """Nodes whose zone's vSwitches come from another ConfigMap than the one listed."""
    by_source: dict[tuple[str, str], list[str]] = {}
    for view in views:
        if view.zone and view.source != shown and (shown == defaults.ENI_CONFIG_NAME or view.terway_config == shown):
            by_source.setdefault((view.source, view.zone), []).append(view.name)
    return [f"note: {len(names)} node(s) of zone {zone} ({', '.join(names)}) use the vSwitches of ConfigMap {source}, "
            f"not these: 'terwayctl vswitch list --configmap {source}'"
            for (source, zone), names in sorted(by_source.items())]


def print_vswitch_table(out: TextIO, rows: list[VSwitchRow], node_zones: Mapping[str, int]) -> None:
    headers = ["ZONE", "VSWITCH", "CIDR", "FREE-IPS", "NODES"]
    cells = [[r.zone, r.vswitch_id, r.cidr or "?", "?" if r.free_ips is None else str(r.free_ips), str(r.nodes)]
             for r in rows]
    write_table(out, headers, cells, right=["FREE-IPS", "NODES"])
    for row in rows:
        if not row.exists:
            out.write(f"warning: {row.vswitch_id} does not exist in the cloud (deleted?): remove it with "
                      f"'terwayctl vswitch remove {row.vswitch_id}'\n")
    bare = sorted((z for z, n in node_zones.items() if n and z not in {r.zone for r in rows}), key=natural_text_key)
    for zone in bare:
        out.write(f"warning: zone {zone} has {node_zones[zone]} node(s) but no vSwitch: its pods get no IP\n")
