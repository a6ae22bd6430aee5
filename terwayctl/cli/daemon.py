"""`terwayctl daemon`: run the node daemon (no subcommand), or ask a running one (`status`)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from terwayctl.cli.context import GlobalOptions, global_options
from terwayctl.cli.options import Output, OutputOption
from terwayctl.cli.table import write_table
from terwayctl.core.errors import InvalidInput

if TYPE_CHECKING:
    from collections.abc import Mapping

    from terwayctl.kube.client import KubeClient
    from terwayctl.node.config import DaemonConfig, NodeIdentity

app = typer.Typer(
    help="Run the Terway node daemon (IP pool, CNI socket), or ask a running one with 'status'.",
    invoke_without_command=True,
)

DEFAULT_SOCKET = "/var/run/eni/eni.socket"
DEFAULT_STATE_DIR = "/var/lib/cni/terway"
DEFAULT_DEVICE_PLUGIN_DIR = "/var/lib/kubelet/device-plugins"
DEFAULT_NODE_CHECKS_PERIOD = "60s"


@app.callback()
def daemon(
    ctx: typer.Context,
    mode: Annotated[str, typer.Option(help="eniip (shared ENI, many IPs) or eni (one exclusive ENI per pod).")] = "eniip",
    config: Annotated[Optional[Path], typer.Option("--config", help="eni_conf file (JSON, or a ConfigMap with data.eni_conf).")] = None,  # noqa: UP045
    instance_id: Annotated[Optional[str], typer.Option(help="ECS instance id (default: instance metadata).")] = None,  # noqa: UP045
    zone: Annotated[Optional[str], typer.Option(help="Zone of the node (default: metadata or DescribeInstances).")] = None,  # noqa: UP045
    vswitch_id: Annotated[Optional[str], typer.Option(help="The node's primary vSwitch (fallback pod vSwitch).")] = None,  # noqa: UP045
    instance_type: Annotated[Optional[str], typer.Option(help="Instance type (default: DescribeInstances).")] = None,  # noqa: UP045
    socket_path: Annotated[Path, typer.Option("--socket", envvar="TERWAY_DAEMON_SOCKET", help="CNI unix socket (mode 0600).")] = Path(DEFAULT_SOCKET),
    state_dir: Annotated[Path, typer.Option(help="State directory (the SQLite store).")] = Path(DEFAULT_STATE_DIR),
    node_netns: Annotated[Optional[str], typer.Option(help="Network namespace of the node's ENIs (a name or path; default: the current one).")] = None,  # noqa: UP045
    metrics: Annotated[Optional[str], typer.Option(help="Serve /metrics on 127.0.0.1:PORT or unix:/path.")] = None,  # noqa: UP045
    pod_annotations: Annotated[Optional[Path], typer.Option(help='JSON file {"ns/name": {annotation: value}} for bandwidth annotations (no API server: the lab).')] = None,  # noqa: UP045
    node_name: Annotated[Optional[str], typer.Option(envvar="NODE_NAME", help="This node's Node name in the API server (pod GC, terway-config label).")] = None,  # noqa: UP045
    gc_period: Annotated[str, typer.Option(help="How often to release the IPs of pods gone from the API server (Go duration).")] = "5m",
    gc_grace: Annotated[str, typer.Option(help="Never release an allocation younger than this (a pod being created).")] = "2m",
    device_plugin_dir: Annotated[str, typer.Option(help="kubelet's device-plugin directory: --mode eni advertises aliyun/eni there ('' turns it off).")] = DEFAULT_DEVICE_PLUGIN_DIR,
    node_checks_period: Annotated[str, typer.Option(envvar="TERWAYCTL_NODE_CHECKS_PERIOD", help="How often to run doctor's node checks and publish them on the Node (condition TerwayNetworkReady); needs an API server and --node-name; 0 turns it off.")] = DEFAULT_NODE_CHECKS_PERIOD,
    cni_conf_dir: Annotated[Path, typer.Option(envvar="TERWAYCTL_CNI_CONF_DIR", help="The node's CNI configuration directory (for the node checks).")] = Path("/etc/cni/net.d"),
    cni_bin_dir: Annotated[Path, typer.Option(envvar="TERWAYCTL_CNI_BIN_DIR", help="The node's CNI plugin directory (for the node checks).")] = Path("/opt/cni/bin"),
    log_format: Annotated[str, typer.Option(help="logfmt or json.")] = "logfmt",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the node daemon until SIGTERM/SIGINT: pool ENIs and IPs, answer the CNI plugin.

    With an API server (--kubeconfig, --context, KUBECONFIG, or in a pod: in-cluster) it reads each
    pod's bandwidth annotations, releases the IPs of pods deleted from it, and, without --config,
    takes eni_conf from the eni-config ConfigMap (-n) merged with the node's terway-config one.
    """
    if ctx.invoked_subcommand is not None:
        return
    from terwayctl.node import logfmt
    from terwayctl.node.config import parse_duration

    if log_format not in ("logfmt", "json"):
        raise InvalidInput(f"--log-format {log_format!r}: use logfmt or json")
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        raise InvalidInput(f"--log-level {log_level!r}: use debug, info, warning or error")
    logfmt.configure(log_format, log_level)
    options = global_options(ctx)
    durations = {"gc_period": parse_duration(gc_period, "--gc-period"),
                 "gc_grace": parse_duration(gc_grace, "--gc-grace")}
    checks_period = 0.0 if node_checks_period.strip() in ("0", "0s") else parse_duration(
        node_checks_period, "--node-checks-period")
    kube = connect_cluster(options, os.environ)
    try:
        daemon_config = _build_config(
            options, mode=mode, config=config, instance_id=instance_id, zone=zone, vswitch_id=vswitch_id,
            instance_type=instance_type, socket_path=socket_path, state_dir=state_dir, node_netns=node_netns,
            metrics=metrics, pod_annotations=pod_annotations, node_name=node_name or "", kube=kube, **durations,
        )
        _run(options, daemon_config, kube, explicit=_on_command_line(ctx, "region", "profile"),
             device_plugin_dir=Path(device_plugin_dir) if device_plugin_dir else None,
             node_checks=NodeChecks(checks_period, cni_conf_dir, cni_bin_dir))
    finally:
        if kube is not None:
            kube.close()


@dataclass(frozen=True)
class NodeChecks:
    """How the daemon publishes doctor's node checks on its Node (terwayctl.doctor.publish)."""

    period: float
    """Seconds; 0: off."""
    cni_conf_dir: Path
    cni_bin_dir: Path


def start_node_checks(kube: KubeClient | None, config: DaemonConfig, checks: NodeChecks | None) -> Any:
    """The doctor-owned reporter of the node's checks, started; None without an API server, a node name or a period."""
    import logging

    if checks is None or checks.period <= 0 or kube is None:
        return None
    if not config.node_name:
        logging.getLogger("terwayctl.node").warning(
            "no --node-name (NODE_NAME): the node checks are not published (condition TerwayNetworkReady)")
        return None
    from terwayctl.doctor.context import DoctorOptions
    from terwayctl.doctor.publish import daemon_reporter

    options = DoctorOptions(scopes=frozenset({"node"}), netns=config.node_netns, socket=config.socket_path,
                            cni_conf_dir=checks.cni_conf_dir, cni_bin_dir=checks.cni_bin_dir)
    return daemon_reporter(kube, config.node_name, checks.period, options).start()


def _on_command_line(ctx: typer.Context, *names: str) -> frozenset[str]:
    """Which of the global options `names` were given as flags (not from their environment variable)."""
    root = ctx.find_root()
    return frozenset(n for n in names if getattr(root.get_parameter_source(n), "name", "") == "COMMANDLINE")


def cluster_configured(options: GlobalOptions, environ: Mapping[str, str]) -> bool:
    """An API server is configured: --kubeconfig/KUBECONFIG, --context, or in a pod (in-cluster)."""
    return bool(options.kubeconfig or options.context or environ.get("KUBERNETES_SERVICE_HOST"))


def connect_cluster(options: GlobalOptions, environ: Mapping[str, str]) -> KubeClient | None:
    """The daemon's API server client (short timeouts: an ADD waits on a pod read), or None."""
    if not cluster_configured(options, environ):
        return None
    import logging

    from terwayctl.kube.client import connect

    kube = connect(options.kubeconfig, options.context, environ=environ, request_timeout=5.0)
    logging.getLogger("terwayctl.node").info("API server %s", kube.server)
    return kube


def _identity(
    options: GlobalOptions, client: Any, instance_id: str | None, zone: str | None, vswitch_id: str | None,
    instance_type: str | None,
) -> NodeIdentity:
    from terwayctl.cloud.metadata import MetadataService
    from terwayctl.node.config import NodeIdentity

    service = MetadataService.from_environ(os.environ)

    def meta(path: str) -> str | None:
        text = service.get(path)
        return text.strip() if text else None

    instance_id = instance_id or meta("/latest/meta-data/instance-id")
    if not instance_id:
        raise InvalidInput("the node's instance id is unknown", hint="pass --instance-id (no instance metadata here)")
    zone = zone or meta("/latest/meta-data/zone-id")
    vswitch_id = vswitch_id or meta("/latest/meta-data/vswitch-id")
    instance_type = instance_type or meta("/latest/meta-data/instance/instance-type")
    if not (zone and vswitch_id and instance_type):
        found = client.describe_instances(instance_ids=[instance_id])
        if not found:
            raise InvalidInput(f"instance {instance_id} not found", hint="check --instance-id and --region")
        zone, vswitch_id = zone or found[0].zone_id, vswitch_id or found[0].vswitch_id
        instance_type = instance_type or found[0].instance_type
    return NodeIdentity(instance_id, zone or "", vswitch_id or "", instance_type or "")


def _build_config(options: GlobalOptions, **flags: Any) -> DaemonConfig:
    from terwayctl.node.config import (
        DaemonConfig,
        NodeIdentity,
        PoolMode,
        load_eni_conf,
        node_settings,
        pool_settings,
    )

    try:
        mode = PoolMode(flags["mode"])
    except ValueError:
        raise InvalidInput(f"--mode must be eniip or eni, got {flags['mode']!r}") from None
    kube = flags["kube"]
    origin = str(flags["config"] or "eni_conf")
    if flags["config"] is not None:
        conf = load_eni_conf(flags["config"])
    elif kube is not None:
        from terwayctl.node.cluster import eni_conf_from_cluster

        conf = eni_conf_from_cluster(kube, options.namespace, flags["node_name"])
        origin = f"{options.namespace}/eni-config"
    else:
        conf = {}
    # identity flags as given; what is missing is resolved in _run, once the cloud client exists
    identity = NodeIdentity(
        flags["instance_id"] or "", flags["zone"] or "", flags["vswitch_id"] or "", flags["instance_type"] or ""
    )
    settings = node_settings(conf, origin)  # refuses ip_stack ipv6 (IPv6 only) before anything starts
    return DaemonConfig(
        identity=identity,
        pool=pool_settings(conf, origin),
        virtual_type=settings.virtual_type,
        ip_stack=settings.ip_stack,
        region_id=settings.region_id,
        credential_path=settings.credential_path,
        mode=mode,
        socket_path=flags["socket_path"],
        state_dir=flags["state_dir"],
        node_netns=flags["node_netns"],
        metrics=flags["metrics"],
        pod_annotations=flags["pod_annotations"],
        node_name=flags["node_name"],
        gc_period=flags["gc_period"],
        gc_grace=flags["gc_grace"],
    )


def _run(
    options: GlobalOptions, config: DaemonConfig, kube: KubeClient | None = None, explicit: frozenset[str] = frozenset(),
    device_plugin_dir: Path | None = None, node_checks: NodeChecks | None = None,
) -> None:
    """`explicit`: the global options given as flags ("region", "profile"), which beat eni_conf."""
    import dataclasses
    import logging

    from terwayctl.cloud.session import build_client
    from terwayctl.node.cluster import KubeCluster
    from terwayctl.node.server import Running
    from terwayctl.node.service import Daemon

    # region: --region, else eni_conf region_id, else ALIBABA_CLOUD_REGION_ID, the profile, metadata.
    # credentials: eni_conf credential_path (re-read when kubelet updates the Secret; a missing or
    # empty file is an error, never a fallback) unless --profile is on the command line; else the
    # chain of every command: environment, profile (--profile, ALIBABA_CLOUD_PROFILE, the file's
    # current one), the ECS RAM role. docs/node.md has the table.
    region = options.region if "region" in explicit else (config.region_id or options.region)
    use_profile = "profile" in explicit or config.credential_path is None
    client = build_client(region=region, profile=options.profile if use_profile else None, endpoint=options.endpoint,
                          credential_path=config.credential_path)
    logging.getLogger("terwayctl.node").info("cloud region=%s %s", client.region, client.credentials_source)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        given = config.identity
        identity = _identity(options, client, given.instance_id or None, given.zone_id or None,
                             given.vswitch_id or None, given.instance_type or None)
        config = dataclasses.replace(config, identity=identity)
        cluster = KubeCluster(kube, config.node_name) if kube is not None else None
        with Running(Daemon(config, client, cluster=cluster)) as running:
            # exclusive-ENI mode: the aliyun/eni device plugin (grpc is imported only here, never at start-up)
            plugin = None
            if device_plugin_dir is not None and config.mode.value == "eni":
                from terwayctl.node.deviceplugin import start_for_daemon

                plugin = start_for_daemon(running.daemon, device_plugin_dir)
            reporter = start_node_checks(kube, config, node_checks)
            try:
                while not stop.wait(0.5):
                    pass
            finally:
                if reporter is not None:
                    reporter.stop()
                if plugin is not None:
                    plugin.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        client.close()


@app.command("status")
def status(
    ctx: typer.Context,
    output: OutputOption = Output.table,
    socket_option: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--socket", metavar="PATH", help="The daemon's CNI unix socket (as 'daemon --socket' before status)."),
    ] = None,
) -> None:
    """Ask the running daemon (over its socket) for its pool, ENIs and allocations; exit 1 when not ready."""
    socket_path = socket_option or (
        ctx.parent.params.get("socket_path", Path(DEFAULT_SOCKET)) if ctx.parent else Path(DEFAULT_SOCKET)
    )
    from terwayctl.node.client import DaemonUnavailable, ask_status

    doc = ask_status(Path(socket_path))
    if output is Output.json:
        typer.echo(json.dumps(doc, indent=2))
    elif output is Output.yaml:
        import yaml

        typer.echo(yaml.safe_dump(doc, sort_keys=False).rstrip())
    else:
        print_status(doc, sys.stdout)
    if not doc.get("ready"):
        raise DaemonUnavailable("the daemon is not ready", hint="see its log; 'terwayctl daemon status -o json'")


def print_status(doc: dict[str, Any], out: Any) -> None:
    pool = doc.get("pool", {})
    out.write(
        f"ready: {'yes' if doc.get('ready') else 'no'}   mode: {doc.get('mode')}   instance: {doc.get('instance_id')}"
        f"   zone: {doc.get('zone_id')}\n"
        f"pool: {pool.get('enis')}/{pool.get('max_enis')} ENIs, {pool.get('ips')} IPs, {pool.get('idle')} idle, "
        f"{pool.get('allocated')} allocated{f', {leased} leased' if (leased := pool.get('leased')) else ''} "
        f"(min {pool.get('min_pool_size')}, max {pool.get('max_pool_size')})\n"
    )
    datapath = doc.get("datapath") or {}
    if datapath:
        out.write(f"datapath: {datapath.get('mode')} ({datapath.get('reason')})\n")
    if pool.get("last_error"):
        out.write(f"last error: {pool['last_error']}\n")
    out.write("\n")
    write_table(out, ["ENI", "IFNAME", "MAC", "VSWITCH", "IPS", "ALLOCATED"],
                [[e["eni_id"], e["ifname"], e["mac"], e["vswitch_id"], f"{e['ips']}/{e['ip_limit']}",
                  str(e["allocated"])] for e in doc.get("enis", [])], right=["IPS", "ALLOCATED"])
    out.write("\n")
    write_table(out, ["IP", "POD", "CONTAINER", "IFNAME", "ENI"],
                [[a["ip"], a["pod"], a["container_id"][:12], a["ifname"], a["eni_id"]]
                 for a in doc.get("allocations", [])])
    leases = doc.get("leases") or []
    if leases:  # IPs kept for StatefulSet pods after their DEL (docs/node.md, "Stable IPs")
        out.write("\n")
        write_table(out, ["LEASED IP", "POD", "REASON", "EXPIRES", "IN"],
                    [[x["ip"], x["pod"], x["reason"], x["expires"], f"{x['expires_in']:g}s"] for x in leases],
                    right=["IN"])
