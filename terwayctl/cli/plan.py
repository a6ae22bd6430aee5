"""`terwayctl plan` and `plan check`: VPC, vSwitch and service CIDRs for a Terway cluster."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Optional, TextIO

import typer

from terwayctl.cli.errors import EXIT_FAILURE, EXIT_USAGE, print_error
from terwayctl.cli.options import Output, OutputOption
from terwayctl.cli.render import emit_structured
from terwayctl.cli.table import write_table
from terwayctl.core import defaults
from terwayctl.core.capacity import CapacityOptions, compute
from terwayctl.core.errors import InvalidInput
from terwayctl.core.planning import FAIL, OK, WARN, CheckRequest, PlanReport, PlanRequest, check, plan

if TYPE_CHECKING:
    from terwayctl.cloud.session import ExistingVSwitch

app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    help="Plan the VPC, vSwitch and service CIDRs of a Terway cluster, or check an existing layout.",
)

MARKS = {OK: "✓", WARN: "!", FAIL: "✗"}
PLAN_MODES = ("eniip", "eni")


def _split(values: list[str] | None) -> tuple[str, ...]:
    """Accept both repeated options and comma-separated lists."""
    return tuple(part.strip() for value in values or () for part in value.split(",") if part.strip())


@app.callback()
def plan_command(
    ctx: typer.Context,
    vpc: Annotated[str, typer.Option(help="VPC CIDR.")] = defaults.DEFAULT_VPC_CIDR,
    zones: Annotated[Optional[list[str]], typer.Option(help="Zones, comma-separated or repeated; one node and one pod vSwitch each.")] = None,  # noqa: UP045
    nodes: Annotated[Optional[int], typer.Option(help="Nodes per zone (as in 'plan check'); sizes each zone's vSwitches for nodes x growth.")] = None,  # noqa: UP045
    pods_per_node: Annotated[Optional[int], typer.Option("--pods-per-node", help="Pod IPs per node.")] = None,  # noqa: UP045
    instance_type: Annotated[Optional[str], typer.Option("--instance-type", help="Derive --pods-per-node from this type's capacity.")] = None,  # noqa: UP045
    mode: Annotated[str, typer.Option(help="Terway mode for --instance-type: eniip or eni.")] = "eniip",
    service_cidr: Annotated[str, typer.Option("--service-cidr", help="Kubernetes service CIDR.")] = defaults.DEFAULT_SERVICE_CIDR,
    ipv6: Annotated[bool, typer.Option("--ipv6", help="Dual stack: give every vSwitch an IPv6 /64 of the VPC's /56.")] = False,
    avoid: Annotated[Optional[list[str]], typer.Option(help="CIDRs to keep clear: existing vSwitches, on-premises ranges.")] = None,  # noqa: UP045
    growth: Annotated[float, typer.Option(help="Headroom factor on nodes and pods: plans for nodes x growth (as 'plan check').")] = 2.0,
    allow_public_vpc: Annotated[bool, typer.Option("--allow-public-vpc", help="Accept a VPC CIDR outside the private ranges.")] = False,
    live: Annotated[bool, typer.Option("--live", help="Read the VPC CIDR and its existing vSwitches from the cloud (needs --vpc-id) and plan around them.")] = False,
    vpc_id: Annotated[Optional[str], typer.Option("--vpc-id", help="The existing VPC to plan in, with --live.")] = None,  # noqa: UP045
    output: OutputOption = Output.table,
) -> None:
    """Plan node and pod vSwitches per zone and the service CIDR; with no options, the documented default."""
    if ctx.invoked_subcommand is not None:
        return
    pods, dual = _pods_per_node(pods_per_node, instance_type, mode)
    zone_list = _split(zones)
    avoid_list = _split(avoid)
    if live or vpc_id:
        vpc, existing = _live_layout(ctx, live, vpc_id, vpc)
        avoid_list += tuple(v.cidr for v in existing)
        zone_list = zone_list or tuple(sorted({v.zone_id for v in existing}))
    request = PlanRequest(
        vpc=vpc,
        zones=zone_list or ("zone-1",),
        nodes=nodes,
        pods_per_node=pods,
        service_cidr=service_cidr,
        ipv6=ipv6,
        avoid=avoid_list,
        growth=growth,
        allow_public_vpc=allow_public_vpc,
        dual_stack_capable=dual,
    )
    result = plan(request)
    if result.failed:
        for failed in result.failed:
            print_error(failed.message, failed.fix)
        raise typer.Exit(EXIT_USAGE)
    _emit(result, output)


def _live_layout(ctx: typer.Context, live: bool, vpc_id: str | None, vpc: str) -> tuple[str, list[ExistingVSwitch]]:
    """The VPC's CIDR and existing vSwitches, read with DescribeVpcs and DescribeVSwitches."""
    if not (live and vpc_id):
        raise InvalidInput("--live and --vpc-id go together", hint="e.g. terwayctl plan --live --vpc-id vpc-bp1...")
    if vpc != defaults.DEFAULT_VPC_CIDR:
        raise InvalidInput("--vpc and --live exclude each other: with --live the VPC's own CIDR is used")
    from terwayctl.cli.context import global_options
    from terwayctl.cloud.session import client_from_options, describe_vpc_layout

    with client_from_options(global_options(ctx)) as cloud:
        layout = describe_vpc_layout(cloud, vpc_id)
    return layout.vpc_cidr, list(layout.vswitches)


def _pods_per_node(pods_per_node: int | None, instance_type: str | None, mode: str) -> tuple[int | None, bool | None]:
    if mode not in PLAN_MODES:
        raise InvalidInput(f"--mode must be eniip or eni, got {mode!r}")
    if instance_type is None:
        return pods_per_node, None
    if pods_per_node is not None:
        raise InvalidInput(
            "give either --pods-per-node or --instance-type, not both",
            hint="--instance-type derives pods per node from the catalog",
        )
    from terwayctl.data import embedded_catalog

    catalog = embedded_catalog()
    it = catalog.select([instance_type], [])[0]
    cap = compute(it, CapacityOptions(mode=mode), catalog.source)
    pods = cap.pods(mode)
    if not pods:
        raise InvalidInput(
            f"the catalog does not give {instance_type}'s {mode} pod capacity",
            hint="pass --pods-per-node instead; 'terwayctl capacity --explain' shows what is missing",
        )
    return pods, cap.dual_stack


@app.command("check")
def check_command(
    vpc: Annotated[str, typer.Option(help="VPC CIDR.")],
    node_vswitch: Annotated[list[str], typer.Option("--node-vswitch", help="Node vSwitch CIDRs (repeat or comma-separate).")],
    pod_vswitch: Annotated[list[str], typer.Option("--pod-vswitch", help="Pod vSwitch CIDRs (repeat or comma-separate).")],
    service_cidr: Annotated[str, typer.Option("--service-cidr", help="Kubernetes service CIDR.")] = defaults.DEFAULT_SERVICE_CIDR,
    avoid: Annotated[Optional[list[str]], typer.Option(help="CIDRs that must stay clear.")] = None,  # noqa: UP045
    nodes: Annotated[Optional[int], typer.Option(help="Nodes per zone (as in 'plan'); the vSwitches given are one zone, so: the nodes they serve.")] = None,  # noqa: UP045
    pods_per_node: Annotated[Optional[int], typer.Option("--pods-per-node", help="Pod IPs per node.")] = None,  # noqa: UP045
    growth: Annotated[float, typer.Option(help="Headroom factor on nodes and pods: checks room for nodes x growth (as 'plan'); 1 checks the load as it is.")] = 2.0,
    allow_public_vpc: Annotated[bool, typer.Option("--allow-public-vpc", help="Accept a VPC CIDR outside the private ranges.")] = False,
    ipv6: Annotated[bool, typer.Option("--ipv6", help="Check IPv6 /64 slots too.")] = False,
    output: OutputOption = Output.table,
) -> None:
    """Validate an existing layout with the planner's checks; exit 1 if any fails."""
    result = check(
        CheckRequest(
            vpc=vpc,
            node_vswitches=_split(node_vswitch),
            pod_vswitches=_split(pod_vswitch),
            service_cidr=service_cidr,
            avoid=_split(avoid),
            nodes=nodes,
            pods_per_node=pods_per_node,
            growth=growth,
            allow_public_vpc=allow_public_vpc,
            ipv6=ipv6,
        )
    )
    _emit(result, output)
    if result.failed:
        raise typer.Exit(EXIT_FAILURE)


def _emit(result: PlanReport, output: Output) -> None:
    if output is Output.table:
        print_plan(sys.stdout, result)
    else:
        emit_structured(result, output.value)


def print_plan(out: TextIO, result: PlanReport) -> None:
    with_ipv6 = any(v.ipv6_slot is not None for v in result.vswitches)
    headers = ["ZONE", "ROLE", "CIDR", "USABLE", "HOLDS", *(["IPv6-/64"] if with_ipv6 else [])]
    rows = [
        [v.zone or "-", v.role, v.cidr, str(v.usable_addresses), v.holds, *([f"slot {v.ipv6_slot}"] if with_ipv6 else [])]
        for v in result.vswitches
    ]
    out.write(f"VPC {result.vpc}\n")
    write_table(out, headers, rows, right=["USABLE"])
    free = ", ".join(result.free_cidrs) if result.free_cidrs else "none"
    lines = [
        f"service CIDR {result.service_cidr} ({result.service_addresses} addresses)",
        f"free in the VPC: {result.free_addresses} addresses ({free})",
        "usable = addresses minus the 4 that Alibaba Cloud reserves per vSwitch",
    ]
    for c in result.checks:
        lines.append(f"{MARKS[c.status]} {c.id}: {c.message}")
        if c.status != OK and c.fix:
            lines.append(f"    fix: {c.fix}")
    out.write("\n".join(lines) + "\n")
