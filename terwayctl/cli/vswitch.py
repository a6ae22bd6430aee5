"""`terwayctl vswitch`: add, list and remove the pod vSwitches of eni_conf in a running cluster."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Optional, TextIO

import typer

from terwayctl.cli.apply import DEFAULT_TIMEOUT, parse_duration, print_rollout_result, wait_with_progress
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

if TYPE_CHECKING:
    from terwayctl.cloud.api import VpcLayoutReader
    from terwayctl.kube.api import ObjectReader, ObjectWriter
    from terwayctl.kube.configmap import EditResult
    from terwayctl.kube.reads import NodeInfo

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


def _restart(kube: ObjectWriter, namespace: str, timeout: float, out: TextIO) -> int:
    from terwayctl.kube.reads import find_terway_daemonset
    from terwayctl.kube.rollout import restart_daemonset

    ds = find_terway_daemonset(kube, namespace)
    if ds is None:
        out.write(f"warning: no {defaults.DAEMONSET_ENIIP} or {defaults.DAEMONSET_ENI} DaemonSet in {namespace}: "
                  "restart the terway pods yourself\n")
        return 0
    restart_daemonset(kube, namespace, ds.name, datetime.datetime.now(datetime.UTC))
    out.write(f"restarting daemonset {namespace}/{ds.name}\n")
    result = wait_with_progress(kube, namespace, ds.name, timeout, out)
    print_rollout_result(out, result)
    return 0 if result.complete else 1


def _edit_eni_conf(
    kube: ObjectWriter, namespace: str, name: str, change: Callable[[str], str], dry_run: bool, out: TextIO
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
    out.write("dry run: nothing changed\n")
    return None


# --- add --------------------------------------------------------------------------------------------------


@app.command("add")
def add(
    ctx: typer.Context,
    vswitches: Annotated[list[str], typer.Argument(help="vSwitch ids to add, e.g. vsw-bp1...", show_default=False)],
    zone: Annotated[Optional[str], typer.Option("--zone", help="Expected zone; refuse vSwitches of another zone.")] = None,  # noqa: UP045
    configmap: ConfigMapOption = None,
    dry_run: DryRunOption = False,
    no_restart: NoRestartOption = False,
    timeout: TimeoutOption = DEFAULT_TIMEOUT,
) -> int:
    """Add vSwitches under their zone in eni_conf, then restart the terway pods."""
    from terwayctl.cloud.session import client_from_options
    from terwayctl.kube.client import connect
    from terwayctl.kube.reads import list_nodes

    options = global_options(ctx)
    seconds = parse_duration(timeout)
    name = configmap or defaults.ENI_CONFIG_NAME
    out = sys.stdout
    with connect(options.kubeconfig, options.context) as kube:
        text, _ = _eni_conf_of(kube, options.namespace, name)
        configured = configured_vswitches(parse_eni_conf_text(text, f"{name} eni_conf"), f"{name} eni_conf")
        reference = {f"{name}:{z}": ids for z, ids in configured.items()}
        if name != defaults.ENI_CONFIG_NAME:
            default_text, _ = _eni_conf_of(kube, options.namespace, defaults.ENI_CONFIG_NAME)
            reference.update({f"eni-config:{z}": ids for z, ids in configured_vswitches(
                parse_eni_conf_text(default_text, "eni-config eni_conf"), "eni-config eni_conf").items()})
        node_zones = _zone_counts(_target_nodes(list_nodes(kube), configmap))
        with client_from_options(options) as cloud:
            known = [v for ids in reference.values() for v in ids]
            found = _facts(cloud, [*vswitches, *known])
        plan = plan_vswitch_additions(vswitches, found, configured, node_zones, zone=zone, vpc_reference=reference)
        for warning in plan.warnings:
            typer.echo(f"warning: {warning}", err=True)

        result = _edit_eni_conf(
            kube, options.namespace, name, lambda text: add_vswitches_text(text, plan.additions, f"{name} eni_conf"),
            dry_run, out,
        )
        if result is None:
            return 0
        for zone_id, vsw in plan.additions:
            facts = found[vsw]
            free = "?" if facts.free_ips is None else str(facts.free_ips)
            out.write(f"added {vsw} ({facts.cidr}, {free} free IPs) under zone {zone_id} in configmap "
                      f"{options.namespace}/{name}\n")
        if result.attempts > 1:
            out.write(f"(the ConfigMap changed meanwhile: written on attempt {result.attempts})\n")
        out.write(NEW_ENIS_ONLY + "\n")
        if no_restart:
            out.write("not restarting the terway pods (--no-restart): they read eni_conf when they start\n")
            return 0
        return _restart(kube, options.namespace, seconds, out)


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
        node_zones = _zone_counts(_target_nodes(list_nodes(kube), configmap))

        def change(text: str) -> str:
            conf = parse_eni_conf_text(text, f"{name} eni_conf")
            plan_vswitch_removal(vswitch, configured_vswitches(conf, f"{name} eni_conf"), node_zones)
            return remove_vswitch_text(text, vswitch, f"{name} eni_conf")

        _eni_conf_of(kube, options.namespace, name)
        if _edit_eni_conf(kube, options.namespace, name, change, dry_run, out) is None:
            return 0
        out.write(f"removed {vswitch} from configmap {options.namespace}/{name}\n")
        out.write("note: ENIs already in this vSwitch keep working until they are released\n")
        if no_restart:
            return 0
        return _restart(kube, options.namespace, seconds, out)


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
        configured = configured_vswitches(parse_eni_conf_text(text, f"{name} eni_conf"), f"{name} eni_conf")
        node_zones = _zone_counts(_target_nodes(list_nodes(kube), configmap))
    with client_from_options(options) as cloud:
        found = _facts(cloud, [v for ids in configured.values() for v in ids])
    rows = vswitch_rows(configured, found, node_zones)
    if output is Output.table:
        print_vswitch_table(sys.stdout, rows, node_zones)
    else:
        emit_structured(rows, output.value)


def vswitch_rows(configured: Mapping[str, list[str]], found: Mapping[str, VSwitchFacts],
                 node_zones: Mapping[str, int]) -> list[VSwitchRow]:
    rows = []
    for zone in sorted(configured):
        for vsw in configured[zone]:
            facts = found.get(vsw)
            rows.append(VSwitchRow(zone, vsw, facts.cidr if facts else None, facts.free_ips if facts else None,
                                   node_zones.get(zone, 0), facts.vpc_id if facts else None, facts is not None))
    return rows


def print_vswitch_table(out: TextIO, rows: list[VSwitchRow], node_zones: Mapping[str, int]) -> None:
    headers = ["ZONE", "VSWITCH", "CIDR", "FREE-IPS", "NODES"]
    cells = [[r.zone, r.vswitch_id, r.cidr or "?", "?" if r.free_ips is None else str(r.free_ips), str(r.nodes)]
             for r in rows]
    write_table(out, headers, cells, right=["FREE-IPS", "NODES"])
    for row in rows:
        if not row.exists:
            out.write(f"warning: {row.vswitch_id} does not exist in the cloud (deleted?): remove it with "
                      f"'terwayctl vswitch remove {row.vswitch_id}'\n")
    bare = sorted(z for z, n in node_zones.items() if n and z not in {r.zone for r in rows})
    for zone in bare:
        out.write(f"warning: zone {zone} has {node_zones[zone]} node(s) but no vSwitch: its pods get no IP\n")
