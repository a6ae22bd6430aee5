"""`terwayctl doctor`: run the declared checks and print a line per check, its evidence and fix."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TextIO

import typer

from terwayctl.cli.context import global_options
from terwayctl.cli.errors import EXIT_FAILURE
from terwayctl.cli.options import Output, OutputOption
from terwayctl.cli.render import emit_structured
from terwayctl.core.errors import InvalidInput

if TYPE_CHECKING:
    from terwayctl.doctor import Report
    from terwayctl.doctor.readers import Target

# The node's identity, from the environment when the flags are not given (docs/doctor.md "Inputs"):
# `terwayctl lab exec NODE` exports them for the lab node; the daemon and the plugin read the same socket variable.
ENV_SOCKET = "TERWAY_DAEMON_SOCKET"
ENV_INSTANCE_ID = "TERWAYCTL_INSTANCE_ID"
ENV_ENI_CONF = "TERWAYCTL_ENI_CONF"
ENV_CNI_CONF_DIR = "TERWAYCTL_CNI_CONF_DIR"
ENV_CNI_BIN_DIR = "TERWAYCTL_CNI_BIN_DIR"
DEFAULT_CNI_CONF_DIR = Path("/etc/cni/net.d")
DEFAULT_CNI_BIN_DIR = Path("/opt/cni/bin")
DEFAULT_SOCKET = Path("/var/run/eni/eni.socket")
ENV_STATE_DIR = "TERWAYCTL_STATE_DIR"
DEFAULT_STATE_DIR = Path("/var/lib/cni/terway")

MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "-"}
COLORS = {"ok": "32", "warn": "33", "fail": "31"}
SCOPE_HELP = "cloud, node, cluster or all (repeatable)."


def parse_target(text: str | None, flag: str) -> Target | None:
    """`IP` or `IP:PORT` (an IPv4 address; a port 1-65535)."""
    import ipaddress

    from terwayctl.doctor.readers import Target

    if text is None:
        return None
    host, _, port = text.partition(":")
    try:
        ipaddress.IPv4Address(host)
        number = int(port) if port else None
    except ValueError:
        raise InvalidInput(f"{flag} {text!r} is not IP[:PORT]", hint=f"e.g. {flag} 198.51.100.10:443") from None
    if number is not None and not 0 < number < 65536:
        raise InvalidInput(f"{flag} {text!r}: the port must be 1-65535")
    return Target(host, number)


def _scopes(values: list[str]) -> frozenset[str]:
    from terwayctl.doctor.registry import SCOPES

    wanted = {v.strip() for value in values for v in value.split(",") if v.strip()}
    if "all" in wanted or not wanted:
        return frozenset(SCOPES)
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise InvalidInput(f"unknown --scope {', '.join(unknown)}", hint=f"use one of: {', '.join(SCOPES)}, all")
    return frozenset(wanted)


def _ipv4(text: str | None, flag: str) -> str | None:
    import ipaddress

    if text is None:
        return None
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise InvalidInput(f"{flag} {text!r} is not an IPv4 address", hint=f"e.g. {flag} 169.254.199.2") from None


def _check_netns(flag: str, name: str | None) -> None:
    if name is None:
        return
    path = Path(name) if "/" in name else Path("/run/netns") / name
    if not path.exists():
        raise InvalidInput(f"{flag} {name}: no such network namespace ({path})",
                           hint="ip netns list shows the named ones; a path such as /proc/<pid>/ns/net works too")


def doctor(
    ctx: typer.Context,
    scope: Annotated[list[str], typer.Option("--scope", help=SCOPE_HELP)] = ["all"],  # noqa: B006 - typer's default
    check: Annotated[Optional[list[str]], typer.Option("--check", help="Run only this check id (repeatable).")] = None,  # noqa: UP045
    netns: Annotated[Optional[str], typer.Option("--netns", help="Node network namespace, a name or path (default: the current one).")] = None,  # noqa: UP045
    eni_conf: Annotated[Optional[Path], typer.Option("--eni-conf", envvar=ENV_ENI_CONF, help="eni_conf JSON, or the eni-config ConfigMap, instead of the cluster's.")] = None,  # noqa: UP045
    instance_id: Annotated[Optional[list[str]], typer.Option("--instance-id", envvar=ENV_INSTANCE_ID, help="The cluster's instances (default: the nodes' providerID, else every instance of the VPC); the variable may hold several, space-separated.")] = None,  # noqa: UP045
    cni_conf_dir: Annotated[Path, typer.Option(envvar=ENV_CNI_CONF_DIR, help="CNI configuration directory.")] = DEFAULT_CNI_CONF_DIR,
    cni_bin_dir: Annotated[Path, typer.Option(envvar=ENV_CNI_BIN_DIR, help="CNI plugin directory.")] = DEFAULT_CNI_BIN_DIR,
    socket_path: Annotated[Path, typer.Option("--socket", envvar=ENV_SOCKET, help="The node daemon's unix socket.")] = DEFAULT_SOCKET,
    low_ips: Annotated[int, typer.Option(help="Warn when a vSwitch has fewer free IPs than this.")] = 64,
    event_window: Annotated[int, typer.Option(help="Minutes: events older than this are ignored.")] = 60,
    leak_grace: Annotated[int, typer.Option(help="Minutes: a leaked-looking ENI (or a secondary IP on an ENI) younger than this is not reported: it may be being attached.")] = 10,
    probe: Annotated[bool, typer.Option("--probe", help="Run the active probes (off by default).")] = False,
    probe_from: Annotated[Optional[str], typer.Option(help="Probe from this pod's namespace (a netns name or path, or pod/<namespace>/<name> of a pod on this node) instead of a temporary one; implies --probe.")] = None,  # noqa: UP045
    probe_source: Annotated[Optional[str], typer.Option(help="Source IPv4 of the temporary probe namespace (default 169.254.199.x).")] = None,  # noqa: UP045
    external_target: Annotated[Optional[str], typer.Option(help="IP[:PORT] outside the VPC to reach (no default).")] = None,  # noqa: UP045
    hostport_target: Annotated[Optional[str], typer.Option(help="NODE-IP:PORT of a hostPort on this node to reach.")] = None,  # noqa: UP045
    probe_timeout: Annotated[float, typer.Option(help="Seconds per probe attempt.")] = 3.0,
    state_dir: Annotated[Path, typer.Option(envvar=ENV_STATE_DIR, help="The node daemon's state directory (where --probe-from pod/... finds the pod, and cloud.leaked-enis what the daemon holds).")] = DEFAULT_STATE_DIR,
    all_nodes: Annotated[bool, typer.Option("--all-nodes", help="Show what every node's daemon published (TerwayNetworkReady), one line per node.")] = False,
    node: Annotated[Optional[str], typer.Option("--node", help="Show the full report one node's daemon published.")] = None,  # noqa: UP045
    output: OutputOption = Output.table,
) -> None:
    """Diagnose the cloud, the cluster and this node; print each check with evidence and fix; exit 1 on a failure."""
    from terwayctl.doctor import DoctorOptions, real_inputs, run

    if all_nodes or node is not None:
        from terwayctl.cli.doctor_fleet import show_fleet

        if all_nodes and node is not None:
            raise InvalidInput("--all-nodes and --node NAME do not go together", hint="give one of them")
        show_fleet(ctx, node, output)
        return
    if low_ips < 0 or event_window <= 0 or not 0 < probe_timeout <= 30 or leak_grace < 0:
        raise InvalidInput("--low-ips must be >= 0, --event-window > 0, --leak-grace >= 0 and --probe-timeout in "
                           "(0, 30]")
    _check_netns("--netns", netns)
    if probe_from is not None:
        probe = True
        probe_from = _pod_netns(ctx, probe_from, state_dir)
    _check_netns("--probe-from", probe_from)
    conf_origin = _origin(ctx, "eni_conf", "--eni-conf", ENV_ENI_CONF)
    if eni_conf is not None and conf_origin == "--eni-conf" and not eni_conf.exists():
        raise InvalidInput(f"--eni-conf {eni_conf}: no such file", hint="give the eni_conf JSON or the eni-config "
                                                                        "ConfigMap")
    options = DoctorOptions(
        scopes=_scopes(scope),
        check_ids=tuple(check or ()),
        netns=netns,
        eni_conf_file=eni_conf,
        eni_conf_origin=conf_origin,
        instance_ids=tuple(i for value in instance_id or () for i in value.split()),
        instance_ids_origin=_origin(ctx, "instance_id", "--instance-id", ENV_INSTANCE_ID),
        cni_conf_dir=cni_conf_dir,
        cni_bin_dir=cni_bin_dir,
        socket=socket_path,
        low_free_ips=low_ips,
        event_window=event_window * 60.0,
        probe=probe,
        probe_from=probe_from,
        probe_source=_ipv4(probe_source, "--probe-source"),
        external_target=parse_target(external_target, "--external-target"),
        hostport_target=parse_target(hostport_target, "--hostport-target"),
        probe_timeout=probe_timeout,
        leak_grace=leak_grace * 60.0,
        state_dir=state_dir,
    )
    g = global_options(ctx)
    inputs = real_inputs(options, kubeconfig=g.kubeconfig, context=g.context, namespace=g.namespace,
                         region=g.region, profile=g.profile, endpoint=g.endpoint)
    report = run(options, inputs)
    if output is Output.table:
        print_report(sys.stdout, report, color=sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    else:
        emit_structured(report_rows(report), output.value)
    if report.failed:
        raise typer.Exit(EXIT_FAILURE)


def _pod_netns(ctx: typer.Context, probe_from: str, state_dir: Path) -> str:
    """`--probe-from pod/NS/NAME`: the pod's netns on this node (from the daemon's store); else as given."""
    from terwayctl.doctor.podns import is_pod_ref, pod_netns

    if not is_pod_ref(probe_from):
        return probe_from
    g = global_options(ctx)
    opened: list[Any] = []

    def connect() -> Any:
        from terwayctl.kube.client import connect as kube_connect
        from terwayctl.kube.errors import KubeConfigError

        try:
            client = kube_connect(g.kubeconfig, g.context, request_timeout=10.0)
        except KubeConfigError:
            return None
        opened.append(client)
        return client

    try:
        return pod_netns(probe_from, state_dir, connect)
    finally:
        for client in opened:
            client.close()


def _origin(ctx: typer.Context, name: str, flag: str, variable: str) -> str:
    """The flag when the value came from the command line, the variable's name when from the environment."""
    try:
        source = ctx.get_parameter_source(name)
    except Exception:  # noqa: BLE001 - an older click: assume the flag
        return flag
    return variable if source is not None and source.name == "ENVIRONMENT" else flag


def report_rows(report: Report) -> list[dict[str, Any]]:
    return [{"check_id": f.check_id, "title": f.title, "scope": f.scope.value, "status": f.status.value,
             "evidence": list(f.evidence), "fix": f.fix} for f in report.findings]


def print_report(out: TextIO, report: Report, *, color: bool = False) -> None:
    """One line per check, its evidence and fix, and the summary; ✓ green, ! yellow, ✗ red on a terminal."""
    lines = []
    for f in report.findings:
        mark = MARKS[f.status.value]
        if color and f.status.value in COLORS:
            mark = f"\033[{COLORS[f.status.value]}m{mark}\033[0m"
        lines.append(f"{mark} {f.check_id}: {f.title}")
        prefix = "skipped: " if f.status.value == "skip" else ""
        lines += [f"    {prefix if i == 0 else ''}{e}" for i, e in enumerate(f.evidence)]
        if f.fix and f.status.value in ("fail", "warn"):
            fix_lines = f.fix.splitlines()
            lines.append(f"    fix: {fix_lines[0]}")
            lines += [f"         {more}" for more in fix_lines[1:]]
    summary = report.summary()
    line = summary.line()
    if color:
        code = "31" if summary.fail else "33" if summary.warn else "32"
        line = f"\033[{code}m{line}\033[0m"
    lines.append(line)
    out.write("\n".join(lines) + "\n")
