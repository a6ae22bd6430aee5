"""Cluster checks: the Terway DaemonSet, eni-config, kubelet max-pods, IP errors in events."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from terwayctl.core import defaults
from terwayctl.core.cluster_capacity import FLAG_MAX_PODS_ABOVE_IPS, NodeRecord, cluster_capacity
from terwayctl.core.eniconf import eni_caps_from_conf, merged_eni_conf, parse_eni_conf_text
from terwayctl.core.errors import InvalidInput, TerwayctlError
from terwayctl.doctor.context import Context
from terwayctl.doctor.model import Check, CheckSkipped, Need, Scope, Verdict, fail, ok, warn
from terwayctl.doctor.readers import TerwayLogReader
from terwayctl.kube.reads import pods_by_node
from terwayctl.manifests.values import InvalidValues, values_from_mapping

NEEDS = frozenset({Need.CLUSTER})
IP_ERROR_CODES = (
    "InvalidVSwitchId.IpNotEnough",
    "QuotaExceeded.PrivateIpAddress",
    "EniPerInstanceLimitExceeded",
    "InvalidOperation.Ipv4CountExceeded",
)
# eni_conf key -> the values key `terwayctl render` validates it as
_VALUES_KEYS = {
    "region_id": "region_id",
    "security_groups": "security_groups",
    "service_cidr": "service_cidr",
    "ip_stack": "ip_stack",
    "vswitch_selection_policy": "vswitch_selection_policy",
    "max_pool_size": "pool.max_size",
    "min_pool_size": "pool.min_size",
    "ip_pool_sync_period": "pool.sync_period",
    "enable_eni_trunking": "enable_eni_trunking",
}


def daemonset(ctx: Context) -> Verdict:
    kube = ctx.kube
    ds = kube.terway_daemonset()
    if ds is None:
        return fail([f"no {defaults.DAEMONSET_ENIIP} or {defaults.DAEMONSET_ENI} DaemonSet in {kube.namespace}"],
                    "install Terway: terwayctl apply (or check -n/--namespace)")
    evidence = [f"{ds.namespace}/{ds.name} ({ds.mode}): desired {ds.desired}, ready {ds.ready}, "
                f"updated {ds.updated}, available {ds.available}"]
    fix = (f"kubectl -n {ds.namespace} get pods -l app={ds.name} -o wide; kubectl -n {ds.namespace} describe pod "
           "<the unready one>; kubectl logs it")
    if ds.desired == 0:
        return warn([*evidence, "no node runs Terway (no node matches the DaemonSet)"], fix)
    if ds.ready < ds.desired:
        return fail([*evidence, f"{ds.desired - ds.ready} node(s) without a ready Terway pod: pods there get no "
                     "network"], fix)
    if ds.updated < ds.desired:
        return warn([*evidence, "a rollout is in progress or stuck"], fix)
    return ok(*evidence)


def validate_eni_conf(conf: Mapping[str, Any], origin: str, *, security_group_required: bool = True) -> list[str]:
    """The problems of an eni_conf under the values rules of `terwayctl render` (empty when valid)."""
    return _validate(conf, origin, security_group_required)


def _validate(conf: Mapping[str, Any], origin: str, security_group_required: bool = True) -> list[str]:
    problems = []
    try:
        eni_caps_from_conf(conf, origin)
    except InvalidInput as exc:
        problems.append(exc.message)
    given: dict[str, Any] = {v: conf[k] for k, v in _VALUES_KEYS.items() if k in conf and conf[k] is not None}
    if "security_groups" not in given and isinstance(conf.get("security_group"), str):
        given["security_groups"] = [conf["security_group"]]
    vswitches = conf.get("vswitches")
    if isinstance(vswitches, dict):
        given["vswitches"] = vswitches
    elif vswitches is not None:
        problems.append(f"{origin}: vswitches must map zones to lists of vSwitch ids")
    if "security_groups" not in given:
        if security_group_required:
            problems.append(f"{origin}: neither security_group nor security_groups is set (ENIs need 1 to 10)")
        given["security_groups"] = ["sg-placeholder"]
    try:
        values_from_mapping(given)
    except InvalidValues as exc:
        reverse = {v: k for k, v in _VALUES_KEYS.items()}
        for problem in exc.problems:
            message = problem.message.replace(" (in values)", "")
            for key, original in reverse.items():
                if message.startswith(key + ":"):
                    message = original + message[len(key):]
            problems.append(f"{origin}: {message}" + (f" ({problem.hint})" if problem.hint else ""))
    return problems


def eni_config(ctx: Context) -> Verdict:
    kube = ctx.kube
    name = f"{kube.namespace}/{defaults.ENI_CONFIG_NAME}"
    data = kube.config_map(defaults.ENI_CONFIG_NAME)
    fix = f"kubectl -n {kube.namespace} edit configmap {defaults.ENI_CONFIG_NAME} (or terwayctl render / apply)"
    if data is None:
        return fail([f"ConfigMap {name} does not exist"], "install Terway: terwayctl apply")
    text = data.get(defaults.ENI_CONF_KEY)
    if text is None:
        return fail([f"ConfigMap {name} has no key {defaults.ENI_CONF_KEY}"], fix)
    origin = f"{name} {defaults.ENI_CONF_KEY}"
    try:
        conf = parse_eni_conf_text(text, origin)
    except InvalidInput as exc:
        return fail([exc.message], fix)
    problems = _validate(conf, origin)
    for key in ("10-terway.conflist", "10-terway.conf"):
        if key in data:
            try:
                parsed = json.loads(data[key])
                if not isinstance(parsed, dict):
                    problems.append(f"{name} {key}: not a JSON object")
            except json.JSONDecodeError as exc:
                problems.append(f"{name} {key}: not valid JSON: {exc.msg} at line {exc.lineno}")
    overrides = sorted({n.terway_config for n in kube.nodes() if n.terway_config})
    for override in overrides:
        odata = kube.config_map(override)
        if odata is None or defaults.ENI_CONF_KEY not in odata:
            problems.append(f"nodes are labelled terway-config={override}, but {kube.namespace}/{override} has no "
                            f"{defaults.ENI_CONF_KEY}")
            continue
        try:
            merged = merged_eni_conf(text, odata[defaults.ENI_CONF_KEY], f"{kube.namespace}/{override} eni_conf")
        except InvalidInput as exc:
            problems.append(exc.message)
            continue
        problems += _validate(merged, f"{kube.namespace}/{override} merged over eni-config")
    raw_zones = conf.get("vswitches")
    zones: dict[str, Any] = raw_zones if isinstance(raw_zones, dict) else {}
    evidence = [f"{origin}: {len(conf)} key(s), vswitches in {len(zones)} zone(s)"
                + (f"; node overrides {', '.join(overrides)}" if overrides else "")]
    if problems:
        return fail([*evidence, *problems], fix)
    return ok(*evidence)


def max_pods(ctx: Context) -> Verdict:
    from terwayctl.data import embedded_catalog

    kube = ctx.kube
    nodes = kube.nodes()
    if not nodes:
        raise CheckSkipped("the cluster has no nodes")
    ds = kube.terway_daemonset()
    mode = ds.mode if ds is not None else "eniip"
    default = kube.config_map(defaults.ENI_CONFIG_NAME) or {}
    default_text = default.get(defaults.ENI_CONF_KEY) or "{}"
    per_node = pods_by_node(kube.pods())
    records, notes = [], []
    for node in nodes:
        override = (kube.config_map(node.terway_config) or {}).get(defaults.ENI_CONF_KEY) if node.terway_config \
            else None
        try:
            caps = eni_caps_from_conf(merged_eni_conf(default_text, override), f"eni_conf of node {node.name}")
        except TerwayctlError as exc:
            notes.append(f"{node.name}: {exc.message}; using no caps")
            caps = eni_caps_from_conf({}, "")
        pods = per_node.get(node.name, [])
        records.append(NodeRecord(
            name=node.name, instance_type=node.instance_type, zone=node.zone, max_pods=node.max_pods,
            allocatable_pods=node.allocatable_pods, pods=len([p for p in pods if not p.host_network]),
            host_network_pods=len([p for p in pods if p.host_network]), caps=caps))
    catalog = embedded_catalog()
    types = catalog.by_name()
    rows = cluster_capacity(records, types, mode, {n: catalog.source for n in types})
    evidence: list[str] = []
    bad: list[str] = []
    for row in rows:
        if FLAG_MAX_PODS_ABOVE_IPS in row.flags:
            bad.append(row.name)
            evidence.extend(f"{row.name}: {p}" for p in row.problems if "max-pods" in p)
        elif row.ip_capacity is None:
            evidence.append(f"{row.name}: instance type {row.instance_type or '?'} unknown to the catalog")
        else:
            evidence.append(f"{row.name} ({row.instance_type}): max-pods {row.max_pods if row.max_pods is not None else '?'}"
                            f" <= {row.ip_capacity} pod IPs + {max(row.host_network_pods, 2)} host-network")
    evidence += notes
    if bad:
        return fail(evidence, "set kubelet --max-pods (or maxPods in the kubelet config) to the recommended value on "
                              f"{', '.join(bad)}, or raise the capacity (eni_conf max_eni / a larger instance type); "
                              "see terwayctl capacity --cluster")
    return ok(*evidence)


def _parse_time(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


LOG_TAIL_LINES = 2000
"""Lines of each Terway pod's log read (the last ones, within --event-window)."""
_VSWITCH = re.compile(r"\bvsw-[0-9a-z]+")
_NO_FREE_IPS = re.compile(r"vSwitch (vsw-[0-9a-z]+) has no free IPs")
_LOG_TS = re.compile(r'(?:^|\s)ts=(\S+)|"ts":\s*"([^"]+)"')


_REQUEST_ID = re.compile(r"\bRequest ?I[dD]:? ([0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12})")
_POOL_LOGGER = re.compile(r'logger=terwayctl\.node\.pool\b|"logger":\s*"terwayctl\.node\.pool"')


@dataclass
class _LogHit:
    node: str
    pod: str
    code: str
    vswitch: str
    lines: int = 0
    line: str = ""
    """The line shown: the pool's first report of the error (else the first line naming it)."""
    first_time: str = ""
    last_time: str = ""
    request_id: str = ""


def _log_code(line: str) -> tuple[str, str] | None:
    """(code, vSwitch or '') of a daemon log line that reports an IP / ENI quota error."""
    no_free = _NO_FREE_IPS.search(line)
    if no_free is not None:  # the pool's own line for IpNotEnough: 'vSwitch vsw-... has no free IPs; backing off'
        return "InvalidVSwitchId.IpNotEnough", no_free.group(1)
    code = next((c for c in IP_ERROR_CODES if c in line), None)
    if code is None:
        return None
    vswitch = _VSWITCH.search(line)
    return code, vswitch.group(0) if vswitch else ""


def _log_time(line: str) -> str:
    match = _LOG_TS.search(line)
    return next((g for g in match.groups() if g), "") if match else ""


def _log_hits(ctx: Context, window: float) -> tuple[list[_LogHit], list[str]]:
    """IP / quota errors in the Terway pods' logs (through the API server), and notes on what was read."""
    kube = ctx.kube
    if not isinstance(kube, TerwayLogReader):
        return [], []  # a reader without pod logs (a unit test's fake): events only
    logs = kube.terway_logs(max(1, int(window)), LOG_TAIL_LINES)
    if not logs:
        return [], ["no Terway pod: no daemon log to read"]
    now = ctx.now()
    hits: dict[tuple[str, str, str], _LogHit] = {}
    notes = []
    read = 0
    for log in logs:
        if log.error:
            notes.append(f"log of {log.namespace}/{log.pod} (node {log.node or '?'}) not read: {log.error}")
            continue
        read += 1
        for line in log.lines:
            found = _log_code(line)
            if found is None:
                continue
            when = _log_time(line)
            stamp = _parse_time(when) if when else None
            if stamp is not None and now - stamp > window:
                continue
            code, vswitch = found
            hit = hits.setdefault((log.node, vswitch, code), _LogHit(log.node, log.pod, code, vswitch))
            hit.lines += 1
            hit.first_time = hit.first_time or when
            hit.last_time = when or hit.last_time
            if not hit.line or (_POOL_LOGGER.search(line) and not _POOL_LOGGER.search(hit.line)):
                hit.line = line
            request = _REQUEST_ID.search(line)
            if request is not None and not hit.request_id:
                hit.request_id = request.group(1)
    notes.insert(0, f"{read} Terway pod log(s) read through the API server (the last {LOG_TAIL_LINES} lines of "
                    f"{window / 60:g} min each)")
    return sorted(hits.values(), key=lambda h: (h.node, h.vswitch, h.code)), notes


def ip_errors(ctx: Context) -> Verdict:
    kube = ctx.kube
    times = kube.event_times()
    window = ctx.options.event_window
    now = ctx.now()
    hits = []
    for event in kube.events():
        code = next((c for c in IP_ERROR_CODES if c in event.message or c in event.reason), None)
        if code is None:
            continue
        when = times.get((event.namespace, event.name))
        stamp = _parse_time(when) if when else None
        if stamp is not None and now - stamp > window:
            continue
        hits.append((code, event, when))
    log_hits, notes = _log_hits(ctx, window)
    if not hits and not log_hits:
        return ok(f"no {', '.join(IP_ERROR_CODES)} in the events of the last {window / 60:g} min", *notes)
    evidence = [f"{e.object_kind} {e.namespace}/{e.object_name}: {e.reason} x{e.count}"
                f"{f' at {when}' if when else ''}: {_short(e.message)}" for _, e, when in hits]
    evidence += [f"node {h.node or '?'} (log of {kube.namespace}/{h.pod}): {h.code}"
                 f"{f' on {h.vswitch}' if h.vswitch else ''}, {h.lines} line(s)"
                 f"{f' from {h.first_time} to {h.last_time}' if h.first_time else ''}"
                 f"{f', request {h.request_id}' if h.request_id else ''}: {_short(h.line, 300)}" for h in log_hits]
    evidence += notes
    codes = sorted({c for c, _, _ in hits} | {h.code for h in log_hits})
    fixes = []
    if "InvalidVSwitchId.IpNotEnough" in codes:
        zones = {n.name: n.zone for n in kube.nodes()}
        empty = sorted({(zones.get(h.node) or "", h.vswitch) for h in log_hits
                        if h.code == "InvalidVSwitchId.IpNotEnough"})
        for zone, vswitch in empty:
            where = f" (zone {zone})" if zone else ""
            fixes.append(f"{vswitch or 'a pod vSwitch'}{where} is out of IPs: terwayctl vswitch add "
                         f"{'--zone ' + zone + ' ' if zone else ''}vsw-<another vSwitch of the zone with free IPs>"
                         f" (or: terwayctl vswitch add{' --zone ' + zone if zone else ''} --create --snat)")
        if not empty or any(c == "InvalidVSwitchId.IpNotEnough" for c, _, _ in hits):
            fixes.append("the pod vSwitch is out of IPs: add one in the zone (terwayctl vswitch add vsw-...)")
    if set(codes) - {"InvalidVSwitchId.IpNotEnough"}:
        nodes = sorted({h.node for h in log_hits if h.code != "InvalidVSwitchId.IpNotEnough" and h.node})
        on = f" ({', '.join(nodes)})" if nodes else ""
        fixes.append(f"a node{on} hit its ENI/IP quota: lower kubelet --max-pods to the node's capacity "
                     "(terwayctl capacity --cluster) or use a larger instance type")
    return fail(evidence, "\n".join(fixes))


def _short(message: str, limit: int = 200) -> str:
    one = " ".join(message.split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


CHECKS: list[Check] = [
    Check("cluster.daemonset", "The Terway DaemonSet is ready", Scope.CLUSTER, NEEDS, daemonset,
          "terway-eniip / terway-eni in -n: desired vs ready vs updated vs available"),
    Check("cluster.eni-config", "eni-config parses and validates", Scope.CLUSTER, NEEDS, eni_config,
          "the eni-config ConfigMap: eni_conf JSON, the values rules of terwayctl render, each node's terway-config "
          "override merged over it, and the CNI conflist key"),
    Check("cluster.max-pods", "kubelet max-pods does not exceed the pod IPs", Scope.CLUSTER, NEEDS, max_pods,
          "nodes' capacity.pods against their instance type's pod IPs under eni_conf (as capacity --cluster)"),
    Check("cluster.ip-errors", "No recent IP or ENI quota errors", Scope.CLUSTER, NEEDS, ip_errors,
          "Events of every namespace, and the Terway pods' daemon logs (through the API server), within "
          "--event-window, naming InvalidVSwitchId.IpNotEnough or a quota code"),
]
