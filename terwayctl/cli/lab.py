"""`terwayctl lab`: a Terway VPC on this machine from network namespaces (docs/lab.md)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from terwayctl.cli.options import Output, OutputOption
from terwayctl.cli.render import emit_structured
from terwayctl.cli.table import write_table

if TYPE_CHECKING:
    from terwayctl.lab import DownReport, FaultRecord, LabStatus

app = typer.Typer(no_args_is_help=True, help="A Terway VPC on this machine: router, NAT, internet, nodes with the real daemon and plugin, pods.")
pod_app = typer.Typer(no_args_is_help=True, help="Add and delete pods (the real CNI ADD/DEL, as kubelet runs it).")
fault_app = typer.Typer(no_args_is_help=True, help="Inject the faults 'doctor' must find; list and clear them.")
app.add_typer(pod_app, name="pod")
app.add_typer(fault_app, name="fault")

NameOption = Annotated[str, typer.Option("--lab", "--name", envvar="TERWAYCTL_LAB", help="Lab name: 1-10 lowercase letters and digits (--name: the old spelling).")]
DEFAULT_NAME = "default"
UP_STEPS = 4


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(part.strip() for value in values or () for part in value.split(",") if part.strip())


@contextmanager
def _progress(title: str, total: int) -> Iterator[Callable[[str], None]]:
    """A rich progress bar on a TTY, plain `title: step` lines on stderr otherwise."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task(title, total=total)

            def advance(step: str) -> None:
                bar.update(task, advance=1, description=f"{title}: {step}")

            yield advance
        return

    def line(step: str) -> None:
        print(f"{title}: {step}", file=sys.stderr, flush=True)

    yield line


@app.command("up")
def up(
    name: NameOption = DEFAULT_NAME,
    nodes: Annotated[int, typer.Option(help="Number of nodes (1-8).")] = 2,
    zones: Annotated[Optional[list[str]], typer.Option(help="Zones, comma-separated or repeated; nodes are spread over them.")] = None,  # noqa: UP045
    instance_type: Annotated[str, typer.Option("--instance-type", help="ECS instance type of every node.")] = "ecs.g7.xlarge",
    mode: Annotated[str, typer.Option(help="eniip (shared ENI, many IPs) or eni (one exclusive ENI per pod).")] = "eniip",
    vpc: Annotated[str, typer.Option(help="VPC CIDR; the vSwitches come from 'terwayctl plan'.")] = "192.168.0.0/16",
    service_cidr: Annotated[str, typer.Option("--service-cidr", help="Kubernetes service CIDR.")] = "172.21.0.0/20",
    no_snat: Annotated[bool, typer.Option("--no-snat", help="No SNAT entry for the pod vSwitches: pods have no internet.")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", help="eni_conf (JSON/YAML, or a ConfigMap) merged over the lab's default.")] = None,  # noqa: UP045
    external_daemon: Annotated[Optional[list[str]], typer.Option("--external-daemon", help="A node whose daemon the lab does not start (you run it, e.g. the packaged image); comma-separated or repeated.")] = None,  # noqa: UP045
    kube: Annotated[bool, typer.Option("--kube", help="Also run a Kubernetes API server (Nodes, eni-config, the terway DaemonSet, the pods); the daemons read eni-config there.")] = False,
    node_config: Annotated[Optional[list[str]], typer.Option("--node-config", metavar="NODE[=FILE]", help="NODE or NODE=FILE (--kube, repeatable): ConfigMap eni-config-NODE with the node's zone and its pod vSwitches (FILE's eni_conf merged over it), Node label terway-config=eni-config-NODE.")] = None,  # noqa: UP045
    output: OutputOption = Output.table,
) -> None:
    """Create the lab: VPC router, NAT gateway, internet, nodes with daemons; print a summary."""
    from terwayctl.lab import LabSpec, nodeconfig
    from terwayctl.lab import status as lab_status
    from terwayctl.lab import up as lab_up
    from terwayctl.lab.model import load_eni_conf_file

    spec = LabSpec(name=name, nodes=nodes, zones=_split(zones) or ("cn-hangzhou-i",), instance_type=instance_type,
                   mode=mode, vpc=vpc, service_cidr=service_cidr, snat=not no_snat,
                   eni_conf=load_eni_conf_file(config) if config is not None else {},
                   external_daemons=_split(external_daemon), kube=kube)
    node_configs = nodeconfig.parse(node_config or [], kube, nodes)
    with _progress(f"lab {name} up", UP_STEPS) as progress:
        result = lab_up(spec, progress)
    if node_configs:
        nodeconfig.apply(name, node_configs)
        result = lab_status(name)
    if output is not Output.table:
        emit_structured(result, output.value)
        return
    print_status(result)
    out = sys.stdout
    first = result.nodes[0].name if result.nodes else "node1"
    opt = "" if name == DEFAULT_NAME else f" --lab {name}"
    out.write("\nnext:\n"
              f"  terwayctl lab pod add web{opt} --node {first}\n"
              f"  terwayctl lab exec web{opt} -- curl -s http://203.0.113.10/\n"
              f"  terwayctl lab exec {first}{opt} -- terwayctl daemon status\n"
              + (f"  terwayctl --kubeconfig {result.kubeconfig} vswitch list\n" if result.kubeconfig else "")
              + f"  terwayctl lab fault list{opt}\n"
              f"  terwayctl lab down{opt}\n")


def print_status(result: LabStatus) -> None:
    out = sys.stdout
    running = "running" if result.supervisor_running else "NOT RUNNING"
    out.write(f"lab {result.name}: mode {result.mode}, {result.instance_type}, emulator {result.emulator or '-'} "
              f"(supervisor pid {result.supervisor_pid}, {running})\nstate: {result.lab_dir}\n")
    if result.kubeconfig:
        out.write(f"api server: {result.kube_api or 'NOT RUNNING'}, kubeconfig {result.kubeconfig}\n")
    out.write("\n")
    write_table(out, ["NODE", "INSTANCE", "ZONE", "NAMESPACE", "PRIMARY IP", "DAEMON", "ENIS", "POOL IPS", "IDLE", "PODS"],
                [[n.name, n.instance_id, n.zone, n.namespace, n.primary_ip or "-",
                  "external" if n.external else
                  ("ready" if n.ready else "running" if n.daemon_running else "down") + f" ({n.daemon_pid})",
                  str(n.enis), str(n.pool_ips), str(n.idle_ips), str(n.pods)] for n in result.nodes],
                right=["ENIS", "POOL IPS", "IDLE", "PODS"])
    out.write("\n")
    write_table(out, ["VSWITCH", "ZONE", "ROLE", "CIDR", "GATEWAY", "FREE IPS", "SNAT"],
                [[v.vswitch_id, v.zone, v.role, v.cidr, v.gateway, str(v.free_ips), "yes" if v.snat else "no"]
                 for v in result.vswitches], right=["FREE IPS"])
    if result.faults:
        out.write(f"\nactive faults: {', '.join(result.faults)}\n")


@app.command("status")
def status(name: NameOption = DEFAULT_NAME, output: OutputOption = Output.table) -> None:
    """Show the lab's processes, nodes, vSwitches and faults; exit 1 when a process is down."""
    from terwayctl.lab import status as lab_status

    result = lab_status(name)
    if output is Output.table:
        print_status(result)
    else:
        emit_structured(result, output.value)
    if not result.healthy:
        raise typer.Exit(1)


@app.command("down")
def down(name: NameOption = DEFAULT_NAME) -> None:
    """Remove the lab: processes (by recorded pid), namespaces and links (by prefix), state files."""
    from terwayctl.lab import down as lab_down

    with _progress(f"lab {name} down", 2) as progress:
        report = lab_down(name, progress)
    _print_down(report)


def _print_down(report: DownReport) -> None:
    if not report.anything:
        typer.echo(f"lab {report.name}: nothing to remove")
        return
    typer.echo(f"lab {report.name} removed: {len(report.stopped_pids)} process(es), "
               f"{len(report.namespaces)} namespace(s){', state files' if report.removed_dir else ''}")


@app.command("serve", hidden=True)
def serve(name: NameOption = DEFAULT_NAME) -> None:
    """Run the lab supervisor (started by 'lab up'; not for direct use)."""
    from terwayctl.lab.supervisor import serve as lab_serve

    lab_serve(name)


@app.command("pods")
def pods(name: NameOption = DEFAULT_NAME, output: OutputOption = Output.table) -> None:
    """List the lab's pods with their node, IP and namespace."""
    from terwayctl.lab import list_pods

    found = list_pods(name)
    if output is not Output.table:
        emit_structured(found, output.value)
        return
    write_table(sys.stdout, ["POD", "NODE", "IP", "NETNS", "BANDWIDTH"],
                [[p.name, p.node, p.ip, p.ns, _bandwidth(p.bandwidth)] for p in found])


def _bandwidth(values: dict[str, int]) -> str:
    parts = [f"{d} {values[f'{d}Rate'] / 1e6:g}Mbit/s" for d in ("ingress", "egress") if f"{d}Rate" in values]
    return ", ".join(parts) or "-"


@pod_app.command("add")
def pod_add(
    pod: Annotated[str, typer.Argument(help="Pod name (lowercase letters, digits, '-').")],
    node: Annotated[str, typer.Option("--node", help="The node to run it on (node1, node2, ...).")],
    name: NameOption = DEFAULT_NAME,
    annotation: Annotated[Optional[list[str]], typer.Option("--annotation", help="Pod annotation KEY=VALUE (repeatable), e.g. k8s.aliyun.com/ingress-bandwidth=10M.")] = None,  # noqa: UP045
    bandwidth_in: Annotated[Optional[str], typer.Option("--bandwidth-in", help="Ingress limit in bits/s (10M), sent as runtimeConfig.bandwidth.")] = None,  # noqa: UP045
    bandwidth_out: Annotated[Optional[str], typer.Option("--bandwidth-out", help="Egress limit in bits/s (10M), sent as runtimeConfig.bandwidth.")] = None,  # noqa: UP045
    owner: Annotated[Optional[str], typer.Option("--owner", help="The pod's controller as KIND/NAME (lab up --kube): StatefulSet/web keeps its IP across delete and re-add (stateful_ip_lease); ReplicaSet/web-5d8f is a Deployment's pod.")] = None,  # noqa: UP045
    output: OutputOption = Output.table,
) -> None:
    """Create a pod namespace and run the node's CNI plugin (ADD) for it."""
    from terwayctl.lab import PodSpec, add_pod, parse_annotations

    record = add_pod(name, PodSpec(pod, node, annotations=parse_annotations(annotation or []),
                                   bandwidth_in=bandwidth_in, bandwidth_out=bandwidth_out, owner=owner or ""))
    if output is not Output.table:
        emit_structured(record, output.value)
        return
    typer.echo(f"pod {record.name} on {record.node}: {record.ip} (netns {record.ns})")


@pod_app.command("del")
def pod_del(
    pod: Annotated[str, typer.Argument(help="Pod name.")],
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Run the CNI DEL for a pod and remove its namespace."""
    from terwayctl.lab import delete_pod
    from terwayctl.lab.pods import lease_of

    record = delete_pod(name, pod)
    lease = lease_of(name, record)
    if lease is not None:
        typer.echo(f"pod {record.name} deleted ({record.ip} kept for {lease.get('pod')} on {record.node}: "
                   f"{lease.get('reason')}, until {lease.get('expires')})")
        return
    typer.echo(f"pod {record.name} deleted ({record.ip} released on {record.node})")


@app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def exec_(
    target: Annotated[str, typer.Argument(help="A pod, a node (node1...), 'router' or 'internet'.")],
    command: Annotated[Optional[list[str]], typer.Argument(help="The command, after '--'.")] = None,  # noqa: UP045
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Run a command inside a pod or node (nodes get the cloud and daemon environment)."""
    from terwayctl.lab import exec_command

    argv, env = exec_command(name, target, command or [])
    # exec, not a child: a Ctrl-C (SIGINT) reaches the command alone, which stops as it chooses (a
    # foreground `terwayctl daemon` shuts down cleanly); as a child it was SIGKILLed by subprocess.run
    # 0.25 s later, under a KeyboardInterrupt traceback. Its exit status is ours.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(argv[0], argv, env)


@app.command("env")
def env(name: NameOption = DEFAULT_NAME) -> None:
    """Print shell exports pointing terwayctl on this host at the lab's cloud (and API server, with --kube): eval "$(terwayctl lab env)"."""
    import shlex

    from terwayctl.lab import lab_env

    for key, value in lab_env(name).items():
        typer.echo(f"export {key}={shlex.quote(value)}")


# --- faults ----------------------------------------------------------------------------------------


def _inject(name: str, kind: str, target: str | None, port: int = 8080, cidr: str | None = None) -> None:
    from terwayctl.lab import inject_fault

    record = inject_fault(name, kind, target, port, cidr)
    _print_fault(record)


def _print_fault(record: FaultRecord) -> None:
    from terwayctl.lab.faults import describe

    typer.echo(f"fault {record.kind} injected: {describe(record)}")


@fault_app.command("no-snat")
def fault_no_snat(
    vswitch: Annotated[Optional[str], typer.Option("--vswitch", help="vSwitch id (default: the first pod vSwitch).")] = None,  # noqa: UP045
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Delete the pod vSwitch's SNAT entry (DeleteSnatEntry); the router's NAT follows: no internet."""
    _inject(name, "no-snat", vswitch)


@fault_app.command("exhaust")
def fault_exhaust(
    vswitch: Annotated[Optional[str], typer.Option("--vswitch", help="vSwitch id (default: the first pod vSwitch).")] = None,  # noqa: UP045
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Take every free address of a vSwitch (AvailableIpAddressCount 0, IpNotEnough)."""
    _inject(name, "exhaust", vswitch)


@fault_app.command("rp-filter")
def fault_rp_filter(
    node: Annotated[Optional[str], typer.Option("--node", help="Node (default: node1).")] = None,  # noqa: UP045
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Set net.ipv4.conf.all/default.rp_filter=1 on a node."""
    _inject(name, "rp-filter", node)


@fault_app.command("forward-drop")
def fault_forward_drop(
    node: Annotated[Optional[str], typer.Option("--node", help="Node (default: node1).")] = None,  # noqa: UP045
    name: NameOption = DEFAULT_NAME,
) -> None:
    """FORWARD policy drop on a node (nftables 'table ip filter', as iptables-nft writes it)."""
    _inject(name, "forward-drop", node)


@fault_app.command("docker-port")
def fault_docker_port(
    node: Annotated[Optional[str], typer.Option("--node", help="Node (default: node1).")] = None,  # noqa: UP045
    port: Annotated[int, typer.Option("--port", help="The published host port.")] = 8080,
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Publish a port on a node the way docker does (docker0, DOCKER chain DNAT to 172.17.0.2:80)."""
    _inject(name, "docker-port", node, port)


@fault_app.command("del-rule")
def fault_del_rule(
    pod: Annotated[Optional[str], typer.Option("--pod", help="Pod (default: the only pod).")] = None,  # noqa: UP045
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Delete a pod's 'from <podIP> lookup <ENI table>' rule behind the daemon's back."""
    _inject(name, "del-rule", pod)


@fault_app.command("forward-rule")
def fault_forward_rule(
    node: Annotated[Optional[str], typer.Option("--node", help="Node (default: node1).")] = None,  # noqa: UP045
    name: NameOption = DEFAULT_NAME,
) -> None:
    """FORWARD policy accept, but a rule rejects pod traffic (iifname cali*), as a host firewall does."""
    _inject(name, "forward-rule", node)


@fault_app.command("leaked-rule")
def fault_leaked_rule(
    node: Annotated[Optional[str], typer.Option("--node", help="Node (default: node1).")] = None,  # noqa: UP045
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Leave a pod-IP policy rule no pod holds, as a daemon killed mid-teardown does."""
    _inject(name, "leaked-rule", node)


@fault_app.command("leaked-eni")
def fault_leaked_eni(
    vswitch: Annotated[Optional[str], typer.Option("--vswitch", help="vSwitch id (default: the first pod vSwitch).")] = None,  # noqa: UP045
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Create an Available ENI tagged by the daemon and attached to nothing (a leaked ENI)."""
    _inject(name, "leaked-eni", vswitch)


@fault_app.command("partial-snat")
def fault_partial_snat(
    vswitch: Annotated[Optional[str], typer.Option("--vswitch", help="vSwitch id, also one created after 'lab up' (default: the first pod vSwitch).")] = None,  # noqa: UP045
    cidr: Annotated[Optional[str], typer.Option("--cidr", help="The part the SNAT entry keeps covering (default: the vSwitch's upper half).")] = None,  # noqa: UP045
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Replace the vSwitch's SNAT entry by one whose SourceCIDR covers only part of it: pods in the rest have no internet."""
    _inject(name, "partial-snat", vswitch, cidr=cidr)


@fault_app.command("no-route")
def fault_no_route(
    vswitch: Annotated[Optional[str], typer.Option("--vswitch", help="vSwitch id, also one created after 'lab up' (default: the first pod vSwitch).")] = None,  # noqa: UP045
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Bind a new custom route table without a 0.0.0.0/0 route to the vSwitch: its pods have no internet."""
    _inject(name, "no-route", vswitch)


@fault_app.command("list")
def fault_list(name: NameOption = DEFAULT_NAME, output: OutputOption = Output.table) -> None:
    """Every fault kind, active or not."""
    from terwayctl.lab import list_faults

    rows = list_faults(name)
    if output is not Output.table:
        emit_structured(rows, output.value)
        return
    write_table(sys.stdout, ["FAULT", "TARGET", "ACTIVE", "WHAT"],
                [[r.kind, r.target, "yes" if r.active else "no", r.description] for r in rows])


@fault_app.command("clear")
def fault_clear(
    kind: Annotated[Optional[str], typer.Argument(help="Only this kind (default: every active fault).")] = None,  # noqa: UP045
    target: Annotated[Optional[str], typer.Option("--target", help="Only this vSwitch, node or pod.")] = None,  # noqa: UP045
    name: NameOption = DEFAULT_NAME,
) -> None:
    """Undo active faults."""
    from terwayctl.lab import clear_faults

    cleared = clear_faults(name, kind, target)
    if not cleared:
        typer.echo("no active fault to clear")
    for record in cleared:
        typer.echo(f"fault {record.kind} cleared on {record.target}")
