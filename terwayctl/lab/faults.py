"""Faults `doctor` must find, injected into a running lab and undone again.

| kind | target | what it does |
|---|---|---|
| ``no-snat`` | pod vSwitch | DeleteSnatEntry of the vSwitch's entry; the router's NAT follows: no internet |
| ``exhaust`` | vSwitch | every free address of the vSwitch is taken (AvailableIpAddressCount 0) |
| ``rp-filter`` | node | ``net.ipv4.conf.{all,default}.rp_filter = 1`` in the node |
| ``forward-drop`` | node | ``table ip filter``, chain ``FORWARD`` with policy drop (what iptables-nft writes for ``iptables -P FORWARD DROP``) |
| ``docker-port`` | node | docker0 (172.17.0.1/16) and a published port the way docker does it: ``table ip nat`` with a ``DOCKER`` chain DNAT ``tcp dport <port>`` to 172.17.0.2:80, jumped to from PREROUTING and OUTPUT for local addresses, plus the MASQUERADE of 172.17.0.0/16 |
| ``del-rule`` | pod | the pod's ``from <podIP> lookup <ENI table>`` rule (priority 2048) deleted behind the daemon's back |
| ``forward-rule`` | node | ``table inet filter``, chain ``forward`` with policy accept but ``iifname "cali*" reject``: what a hand-written host firewall does |
| ``leaked-rule`` | node | a ``from <unused pod IP> lookup <ENI table>`` rule (priority 2048) no pod holds: what a daemon killed mid-teardown leaves |
| ``partial-snat`` | vswitch | the vSwitch's SNAT entry replaced by one whose SourceCIDR covers only part of it (``--cidr``, default the upper half): pods in the rest have no internet |
| ``no-route`` | vswitch | CreateRouteTable (no routes) + AssociateRouteTable with the vSwitch: no 0.0.0.0/0 route, its pods have no internet whatever the SNAT entries say |
| ``leaked-eni`` | vswitch | an ENI tagged ``terway.node=i-deleted-node`` created on the vSwitch through the cloud API and left Available: what the daemon of a node deleted between CreateNetworkInterface and AttachNetworkInterface leaves (no running daemon adopts it) |

The vSwitch faults work on any vSwitch of the lab's VPC, also one created after `up` (``vswitch add
--create``). Cloud changes go through the emulator's API (signed calls, as any client makes them);
the supervisor's router follows the SNAT table and the route tables (terwayctl.lab.vpcsim).

Each injected fault is recorded in ``state.json`` (kind:target) with what `clear` needs to undo it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from terwayctl.core.errors import InvalidInput, TerwayctlError
from terwayctl.kernel import netns
from terwayctl.lab import network
from terwayctl.lab.control import ask
from terwayctl.lab.model import Topology
from terwayctl.lab.state import FaultRecord, LabDir

DOCKER_BRIDGE = "docker0"
DOCKER_GATEWAY = "172.17.0.1"
DOCKER_CONTAINER = "172.17.0.2"
DOCKER_CIDR = "172.17.0.0/16"
DEFAULT_DOCKER_PORT = 8080
RULE_PRIORITY = 2048


@dataclass(frozen=True)
class FaultKind:
    kind: str
    target: str  # vswitch | node | pod
    description: str


KINDS: dict[str, FaultKind] = {k.kind: k for k in (
    FaultKind("no-snat", "vswitch", "the pod vSwitch's SNAT entry is deleted: pods have no internet"),
    FaultKind("exhaust", "vswitch", "the vSwitch has no free address left (InvalidVSwitchId.IpNotEnough)"),
    FaultKind("rp-filter", "node", "rp_filter=1 (strict reverse-path filtering) on the node"),
    FaultKind("forward-drop", "node", "FORWARD policy drop on the node (nftables table ip filter)"),
    FaultKind("docker-port", "node", "a docker-published port: DOCKER chain DNAT to 172.17.0.2 on the node"),
    FaultKind("del-rule", "pod", "the pod's 'from <podIP> lookup <ENI table>' rule deleted behind the daemon"),
    FaultKind("forward-rule", "node", "FORWARD policy accept, but a rule rejects pod traffic (iifname cali*)"),
    FaultKind("leaked-rule", "node", "a policy rule for a pod IP no pod holds (left behind by a killed daemon)"),
    FaultKind("leaked-eni", "vswitch", "an Available ENI tagged by the daemon, attached to nothing (leaked)"),
    FaultKind("partial-snat", "vswitch", "the SNAT entry covers only part of the vSwitch: pods in the rest have no "
              "internet"),
    FaultKind("no-route", "vswitch", "a custom route table without 0.0.0.0/0 bound to the vSwitch: pods have no "
              "internet"),
)}
CLOUD_VSWITCH_KINDS = frozenset({"partial-snat", "no-route"})
"""Kinds whose target may be any vSwitch of the VPC (one `vswitch add --create` made after `up` too)."""


@dataclass(frozen=True)
class FaultArgs:
    """The options of one injection: docker-port's --port, partial-snat's --cidr."""

    port: int = 8080
    cidr: str | None = None


@dataclass(frozen=True)
class FaultRow:
    kind: str
    target: str
    active: bool
    description: str
    detail: dict[str, Any]


def inject(lab_name: str, kind: str, target: str | None = None, port: int = DEFAULT_DOCKER_PORT,
           cidr: str | None = None) -> FaultRecord:
    """Inject one fault; `target` defaults to the first pod vSwitch, the first node or the only pod."""
    spec = _kind(kind)
    if cidr is not None and kind != "partial-snat":
        raise InvalidInput("--cidr goes with partial-snat", hint="terwayctl lab fault partial-snat --cidr CIDR")
    lab = LabDir(lab_name)
    topology = lab.topology()
    target = _cloud_vswitch(lab, topology, target)["VSwitchId"] if kind in CLOUD_VSWITCH_KINDS and target else \
        _target(lab, topology, spec, target)
    key = f"{kind}:{target}"
    if key in lab.read_state().faults:
        raise InvalidInput(f"fault {key} is already active", hint=f"clear it: terwayctl lab fault clear {kind}")
    record = FaultRecord(kind, target, INJECT[kind](lab, topology, target, FaultArgs(port, cidr)))
    with lab.locked() as state:
        state.faults[record.key] = record
    return record


def clear(lab_name: str, kind: str | None = None, target: str | None = None) -> list[FaultRecord]:
    """Undo the active faults (all, or of one kind, or one kind:target); returns what was undone."""
    if kind is not None:
        _kind(kind)
    lab = LabDir(lab_name)
    topology = lab.topology()
    chosen = [f for f in lab.read_state().faults.values()
              if (kind is None or f.kind == kind) and (target is None or f.target == target)]
    for record in chosen:
        CLEAR[record.kind](lab, topology, record)
        with lab.locked() as state:
            state.faults.pop(record.key, None)
    return chosen


def listing(lab_name: str) -> list[FaultRow]:
    """Every fault kind: its active instances, or one inactive row."""
    lab = LabDir(lab_name)
    lab.topology()
    active = lab.read_state().faults
    rows: list[FaultRow] = []
    for spec in KINDS.values():
        mine = [f for f in active.values() if f.kind == spec.kind]
        rows.extend(FaultRow(f.kind, f.target, True, spec.description, f.detail) for f in mine)
        if not mine:
            rows.append(FaultRow(spec.kind, "-", False, spec.description, {}))
    return rows


def describe(record: FaultRecord) -> str:
    """One line for a person: what the injection did."""
    detail = record.detail
    if record.kind == "no-snat":
        entries = ", ".join(f"{e.get('entry_id')} ({e.get('snat_ip')})" for e in detail.get("removed", []))
        return f"deleted SNAT entry {entries} of {record.target}"
    if record.kind == "exhaust":
        return f"took the {detail.get('taken')} free addresses of {record.target}"
    if record.kind == "rp-filter":
        return f"rp_filter=1 (all, default) on {record.target}"
    if record.kind == "forward-drop":
        return f"table ip filter, chain FORWARD policy drop on {record.target}"
    if record.kind == "docker-port":
        return f"docker0 and DNAT tcp/{detail.get('port')} -> {detail.get('to')} on {record.target}"
    if record.kind == "forward-rule":
        return f"table inet {FORWARD_RULE_TABLE}: policy accept, 'iifname \"cali*\" reject' on {record.target}"
    if record.kind == "leaked-rule":
        return f"added 'from {detail.get('ip')} lookup {detail.get('table')}' (priority {RULE_PRIORITY}) on " \
               f"{record.target}"
    if record.kind == "partial-snat":
        return (f"SNAT entry {detail.get('entry_id')} covers {detail.get('cidr')} of {record.target} "
                f"({detail.get('vswitch_cidr')}); no internet for {', '.join(detail.get('uncovered', []))}")
    if record.kind == "no-route":
        return (f"route table {detail.get('route_table_id')} ({ROUTE_TABLE_NAME}, no 0.0.0.0/0 route) bound to "
                f"{record.target}")
    if record.kind == "leaked-eni":
        return f"created {detail.get('eni')} on {record.target}, tagged {LEAK_TAG}={detail.get('instance')}, Available"
    return f"deleted 'from {detail.get('ip')} lookup {detail.get('table')}' (priority {detail.get('priority')}) of pod {record.target}"


def _kind(kind: str) -> FaultKind:
    spec = KINDS.get(kind)
    if spec is None:
        raise InvalidInput(f"unknown fault {kind!r}", hint=f"one of: {', '.join(KINDS)}")
    return spec


def _target(lab: LabDir, topology: Topology, spec: FaultKind, target: str | None) -> str:
    if spec.target == "vswitch":
        if target is None:
            return topology.pod_vswitches()[0].id
        return topology.vswitch(target).id
    if spec.target == "node":
        return topology.node(target).name if target else topology.nodes[0].name
    pods = lab.read_state().pods
    if target is None:
        if len(pods) != 1:
            raise InvalidInput("name the pod of the fault", hint="e.g. --target <pod> (see 'terwayctl lab pods')")
        return next(iter(pods))
    if target not in pods:
        raise InvalidInput(f"lab {lab.name} has no pod {target!r}", hint="see 'terwayctl lab pods'")
    return target


# --- no-snat / exhaust (through the supervisor) ---------------------------------------------------------


def _no_snat(lab: LabDir, topology: Topology, target: str, args: FaultArgs) -> dict[str, Any]:
    removed = ask(lab.control_socket, "snat_delete", vswitch=target)
    if not removed:
        raise InvalidInput(f"{target} has no SNAT entry to delete", hint="was the lab made with --no-snat?")
    return {"removed": removed}


def _restore_snat(lab: LabDir, topology: Topology, record: FaultRecord) -> None:
    for entry in record.detail.get("removed", []):
        ask(lab.control_socket, "snat_create", vswitch=record.target, snat_ip=entry.get("snat_ip", ""))


def _exhaust(lab: LabDir, topology: Topology, target: str, args: FaultArgs) -> dict[str, Any]:
    return {"taken": ask(lab.control_socket, "exhaust", vswitch=target)}


def _unexhaust(lab: LabDir, topology: Topology, record: FaultRecord) -> None:
    ask(lab.control_socket, "unexhaust", vswitch=record.target)


# --- node faults ---------------------------------------------------------------------------------------------

RP_KEYS = ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter")


def _rp_filter(lab: LabDir, topology: Topology, target: str, args: FaultArgs) -> dict[str, Any]:
    ns = topology.node(target).ns
    before = {key: netns.read_sysctl(ns, key) for key in RP_KEYS}
    for key in RP_KEYS:
        netns.write_sysctl(ns, key, "1")
    return {"before": before}


def _rp_restore(lab: LabDir, topology: Topology, record: FaultRecord) -> None:
    ns = topology.node(record.target).ns
    for key, value in record.detail.get("before", {}).items():
        netns.write_sysctl(ns, key, str(value))


def _forward_drop(lab: LabDir, topology: Topology, target: str, args: FaultArgs) -> dict[str, Any]:
    network.nft(topology.node(target).ns, "table ip filter {\n  chain FORWARD {\n"
                "    type filter hook forward priority filter; policy drop;\n  }\n}\n")
    return {"table": "ip filter", "chain": "FORWARD"}


def _forward_restore(lab: LabDir, topology: Topology, record: FaultRecord) -> None:
    ns = topology.node(record.target).ns
    if network.nft_list(ns, "ip", "filter"):
        network.nft(ns, "delete table ip filter\n")


def _docker_port(lab: LabDir, topology: Topology, target: str, args: FaultArgs) -> dict[str, Any]:
    port = args.port
    if not 1 <= port <= 65535:
        raise InvalidInput(f"--port must be 1-65535, got {port}", hint="e.g. --port 8080")
    ns = topology.node(target).ns
    with netns.iproute(ns) as nl:
        if not nl.link_lookup(ifname=DOCKER_BRIDGE):
            nl.link("add", ifname=DOCKER_BRIDGE, kind="bridge")
        index = nl.link_lookup(ifname=DOCKER_BRIDGE)[0]
        nl.addr("replace", index=index, address=DOCKER_GATEWAY, prefixlen=16)
        nl.link("set", index=index, state="up")
    network.nft(ns, (
        "table ip nat {\n"
        "  chain DOCKER {\n"
        f'    iifname "{DOCKER_BRIDGE}" counter return\n'
        f'    iifname != "{DOCKER_BRIDGE}" tcp dport {port} counter dnat to {DOCKER_CONTAINER}:80\n'
        "  }\n"
        "  chain PREROUTING {\n    type nat hook prerouting priority dstnat; policy accept;\n"
        "    fib daddr type local counter jump DOCKER\n  }\n"
        "  chain OUTPUT {\n    type nat hook output priority -100; policy accept;\n"
        "    ip daddr != 127.0.0.0/8 fib daddr type local counter jump DOCKER\n  }\n"
        "  chain POSTROUTING {\n    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    ip saddr {DOCKER_CIDR} oifname != "{DOCKER_BRIDGE}" counter masquerade\n  }}\n'
        "}\n"
    ))
    return {"port": port, "to": f"{DOCKER_CONTAINER}:80", "bridge": DOCKER_BRIDGE}


def _docker_restore(lab: LabDir, topology: Topology, record: FaultRecord) -> None:
    ns = topology.node(record.target).ns
    if network.nft_list(ns, "ip", "nat"):
        network.nft(ns, "delete table ip nat\n")
    with netns.iproute(ns) as nl:
        found = nl.link_lookup(ifname=DOCKER_BRIDGE)
        if found:
            nl.link("del", index=found[0])


# --- del-rule ------------------------------------------------------------------------------------------------


def _rules(ns: str) -> list[dict[str, Any]]:
    done = subprocess.run(["ip", "-j", "-n", ns, "rule", "show"], capture_output=True, text=True, timeout=10,
                          check=False)
    rules: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return rules


def _del_rule(lab: LabDir, topology: Topology, target: str, args: FaultArgs) -> dict[str, Any]:
    pod = lab.read_state().pods[target]
    ns = topology.node(pod.node).ns
    for rule in _rules(ns):
        if rule.get("priority") == RULE_PRIORITY and rule.get("src") == pod.ip:
            table = str(rule.get("table"))
            _ip(ns, "rule", "del", "from", f"{pod.ip}/32", "priority", str(RULE_PRIORITY), "table", table)
            return {"ip": pod.ip, "table": table, "priority": RULE_PRIORITY}
    raise InvalidInput(f"pod {target} has no priority {RULE_PRIORITY} rule for {pod.ip} on {pod.node}",
                       hint="is it an exclusive-ENI pod (no policy rules)?")


def _rule_restore(lab: LabDir, topology: Topology, record: FaultRecord) -> None:
    pod = lab.read_state().pods.get(record.target)
    if pod is None:
        return
    ns = topology.node(pod.node).ns
    detail = record.detail
    if not any(r.get("priority") == RULE_PRIORITY and r.get("src") == detail["ip"] for r in _rules(ns)):
        _ip(ns, "rule", "add", "from", f"{detail['ip']}/32", "priority", str(RULE_PRIORITY), "table",
            str(detail["table"]))


def _ip(ns: str, *args: str) -> None:
    done = subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, timeout=10, check=False)
    if done.returncode != 0:
        raise network.LabNetworkError(f"ip {' '.join(args)} in {ns}: {done.stderr.strip()}")


# --- forward-rule / leaked-rule / leaked-eni -------------------------------------------------------------------

FORWARD_RULE_TABLE = "hostfw"
LEAK_TAG = "terway.node"  # the tag key the daemon puts on the ENIs it creates (terwayctl.node.config)
LEAKED_POD_IP = "192.168.63.250"
LEAK_OWNER = "i-deleted-node"


def _forward_rule(lab: LabDir, topology: Topology, target: str, args: FaultArgs) -> dict[str, Any]:
    network.nft(topology.node(target).ns, (
        f"table inet {FORWARD_RULE_TABLE} {{\n  chain forward {{\n"
        "    type filter hook forward priority filter; policy accept;\n"
        '    iifname "cali*" counter reject\n  }\n}\n'))
    return {"table": f"inet {FORWARD_RULE_TABLE}", "chain": "forward"}


def _forward_rule_restore(lab: LabDir, topology: Topology, record: FaultRecord) -> None:
    ns = topology.node(record.target).ns
    if network.nft_list(ns, "inet", FORWARD_RULE_TABLE):
        network.nft(ns, f"delete table inet {FORWARD_RULE_TABLE}\n")


def _leaked_rule(lab: LabDir, topology: Topology, target: str, args: FaultArgs) -> dict[str, Any]:
    ns = topology.node(target).ns
    tables = sorted({int(r["table"]) for r in _rules(ns) if str(r.get("table", "")).isdigit()
                     and int(r["table"]) >= 1000})
    table = str(tables[0]) if tables else "1001"
    _ip(ns, "rule", "add", "from", f"{LEAKED_POD_IP}/32", "priority", str(RULE_PRIORITY), "table", table)
    return {"ip": LEAKED_POD_IP, "table": table, "priority": RULE_PRIORITY}


def _leaked_rule_restore(lab: LabDir, topology: Topology, record: FaultRecord) -> None:
    ns = topology.node(record.target).ns
    if any(r.get("priority") == RULE_PRIORITY and r.get("src") == record.detail["ip"] for r in _rules(ns)):
        _ip(ns, "rule", "del", "from", f"{record.detail['ip']}/32", "priority", str(RULE_PRIORITY), "table",
            str(record.detail["table"]))


def _lab_cloud(lab: LabDir, topology: Topology) -> Any:
    from terwayctl.cloud.session import build_client
    from terwayctl.lab.model import ACCESS_KEY_ID, ACCESS_KEY_SECRET

    url = lab.ready().get("url")
    if not url:
        raise InvalidInput(f"lab {lab.name} is not serving", hint="terwayctl lab up")
    return build_client(region=topology.region, endpoint=str(url), access_key_id=ACCESS_KEY_ID,
                        access_key_secret=ACCESS_KEY_SECRET, environ={})


def _leaked_eni(lab: LabDir, topology: Topology, target: str, args: FaultArgs) -> dict[str, Any]:
    client = _lab_cloud(lab, topology)
    instance = LEAK_OWNER  # a node that is gone: the lab's daemons would adopt an ENI tagged with their own instance
    groups = sorted({sg for e in client.describe_network_interfaces(vpc_id=topology.vpc_id)
                     for sg in e.security_group_ids})
    eni = client.create_network_interface(vswitch_id=target, security_group_ids=groups[:1],
                                          description="leaked by terwayctl lab fault", tags={LEAK_TAG: instance})
    return {"eni": eni.network_interface_id, "instance": instance}


def _leaked_eni_restore(lab: LabDir, topology: Topology, record: FaultRecord) -> None:
    client = _lab_cloud(lab, topology)
    client.delete_network_interface(str(record.detail["eni"]))


# --- partial-snat / no-route (the emulator's VPC API; the router follows) ------------------------------------

ROUTE_TABLE_NAME = "twlab-no-default-route"


def _vpc(lab: LabDir, topology: Topology, action: str, **params: str) -> dict[str, Any]:
    """One signed VPC API call to the lab's emulator, over HTTP as any client makes it."""
    from terwayctl.emulator import VPC_VERSION
    from terwayctl.emulator.signing import signed_params
    from terwayctl.lab.model import ACCESS_KEY_ID, ACCESS_KEY_SECRET

    url = lab.ready().get("url")
    if not url:
        raise InvalidInput(f"lab {lab.name} is not serving", hint="terwayctl lab up")
    query = signed_params("GET", {
        "Action": action, "Version": VPC_VERSION, "Format": "JSON", "RegionId": topology.region,
        "AccessKeyId": ACCESS_KEY_ID, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
        "SignatureNonce": uuid.uuid4().hex, "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **params}, ACCESS_KEY_SECRET)
    try:
        with urllib.request.urlopen(f"{url}/?{urllib.parse.urlencode(query)}", timeout=30) as reply:
            body: dict[str, Any] = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        error = json.loads(exc.read() or b"{}")
        raise TerwayctlError(f"{action}: {error.get('Code')}: {error.get('Message')}") from None
    return body


def _cloud_vswitch(lab: LabDir, topology: Topology, vswitch_id: str | None) -> dict[str, Any]:
    """The vSwitch as DescribeVSwitches shows it (the first pod vSwitch by default); exit 2 when not in the VPC."""
    wanted = vswitch_id or topology.pod_vswitches()[0].id
    found = _vpc(lab, topology, "DescribeVSwitches", VpcId=topology.vpc_id, PageSize="50")["VSwitches"]["VSwitch"]
    for vsw in found:
        if vsw["VSwitchId"] == wanted:
            return dict(vsw)
    raise InvalidInput(f"lab {lab.name} has no vSwitch {wanted!r}",
                       hint=f"vSwitches of {topology.vpc_id}: {', '.join(v['VSwitchId'] for v in found)}")


def _snat_entries(lab: LabDir, topology: Topology) -> list[dict[str, Any]]:
    body = _vpc(lab, topology, "DescribeSnatTableEntries", SnatTableId=topology.snat_table, PageSize="100")
    return list(body["SnatTableEntries"]["SnatTableEntry"])


def _sync_router(lab: LabDir) -> None:
    """The router follows the cloud within 0.2 s anyway; a fault is in force when the command returns."""
    ask(lab.control_socket, "sync_router")


def _part_of(vswitch_cidr: str, cidr: str | None) -> tuple[str, list[str]]:
    """(the covered part, the uncovered rest): `cidr` (default the upper half) strictly inside the vSwitch."""
    whole = ipaddress.IPv4Network(vswitch_cidr)
    if cidr is None:
        part = list(whole.subnets(1))[1]
    else:
        try:
            part = ipaddress.IPv4Network(cidr, strict=True)
        except ValueError as exc:
            raise InvalidInput(f"--cidr {cidr!r} is not an IPv4 CIDR: {exc}", hint="e.g. --cidr 192.168.48.0/20") from None
        if part == whole or not part.subnet_of(whole):
            half = list(whole.subnets(1))[1]
            raise InvalidInput(f"--cidr {part} must be a part of the vSwitch's {whole}, smaller than it",
                               hint=f"e.g. --cidr {half}")
    return str(part), [str(n) for n in whole.address_exclude(part)]


def _partial_snat(lab: LabDir, topology: Topology, target: str, args: FaultArgs) -> dict[str, Any]:
    vsw = _cloud_vswitch(lab, topology, target)
    part, uncovered = _part_of(vsw["CidrBlock"], args.cidr)
    entries = _snat_entries(lab, topology)
    own = [e for e in entries if e["SourceVSwitchId"] == target
           or (not e["SourceVSwitchId"] and e["SourceCIDR"] == vsw["CidrBlock"])]
    whole = ipaddress.IPv4Network(vsw["CidrBlock"])
    wider = [e["SnatEntryId"] for e in entries if e not in own and not e["SourceVSwitchId"]
             and whole.subnet_of(ipaddress.IPv4Network(e["SourceCIDR"], strict=False))]
    if wider:
        raise InvalidInput(f"{target} is covered by the wider SNAT entry {', '.join(wider)} too",
                           hint="a partial entry would change nothing: pick another vSwitch")
    removed = [{"entry_id": e["SnatEntryId"], "snat_ip": e["SnatIp"], "source_vswitch_id": e["SourceVSwitchId"],
                "source_cidr": e["SourceCIDR"]} for e in own]
    for entry in own:
        _vpc(lab, topology, "DeleteSnatEntry", SnatTableId=topology.snat_table, SnatEntryId=entry["SnatEntryId"])
    snat_ip = str(own[0]["SnatIp"]) if own else topology.nat_eip
    created = _vpc(lab, topology, "CreateSnatEntry", SnatTableId=topology.snat_table, SourceCIDR=part, SnatIp=snat_ip)
    _sync_router(lab)
    return {"entry_id": created["SnatEntryId"], "cidr": part, "vswitch_cidr": vsw["CidrBlock"], "uncovered": uncovered,
            "snat_ip": snat_ip, "removed": removed}


def _partial_snat_restore(lab: LabDir, topology: Topology, record: FaultRecord) -> None:
    detail = record.detail
    if any(e["SnatEntryId"] == detail["entry_id"] for e in _snat_entries(lab, topology)):
        _vpc(lab, topology, "DeleteSnatEntry", SnatTableId=topology.snat_table, SnatEntryId=str(detail["entry_id"]))
    for entry in detail.get("removed", []):
        source = {"SourceVSwitchId": entry["source_vswitch_id"]} if entry.get("source_vswitch_id") else \
            {"SourceCIDR": entry["source_cidr"]}
        _vpc(lab, topology, "CreateSnatEntry", SnatTableId=topology.snat_table, SnatIp=str(entry["snat_ip"]), **source)
    _sync_router(lab)


def _no_route(lab: LabDir, topology: Topology, target: str, args: FaultArgs) -> dict[str, Any]:
    vsw = _cloud_vswitch(lab, topology, target)
    current = (vsw.get("RouteTable") or {})
    if current.get("RouteTableType") == "Custom":
        raise InvalidInput(f"{target} is already bound to the custom route table {current.get('RouteTableId')}",
                           hint="pick another vSwitch")
    table = _vpc(lab, topology, "CreateRouteTable", VpcId=topology.vpc_id, RouteTableName=ROUTE_TABLE_NAME)
    _vpc(lab, topology, "AssociateRouteTable", RouteTableId=table["RouteTableId"], VSwitchId=target)
    _sync_router(lab)
    return {"route_table_id": table["RouteTableId"], "vswitch_cidr": vsw["CidrBlock"]}


def _no_route_restore(lab: LabDir, topology: Topology, record: FaultRecord) -> None:
    table = str(record.detail["route_table_id"])
    vsw = _cloud_vswitch(lab, topology, record.target)
    if (vsw.get("RouteTable") or {}).get("RouteTableId") == table:
        _vpc(lab, topology, "UnassociateRouteTable", RouteTableId=table, VSwitchId=record.target)
    # someone may have added a route to it meanwhile (the fix doctor names): unbound is enough then
    with contextlib.suppress(TerwayctlError):
        _vpc(lab, topology, "DeleteRouteTable", RouteTableId=table)
    _sync_router(lab)


Injector = Callable[[LabDir, Topology, str, FaultArgs], dict[str, Any]]
Restorer = Callable[[LabDir, Topology, FaultRecord], None]
INJECT: dict[str, Injector] = {"no-snat": _no_snat, "exhaust": _exhaust, "rp-filter": _rp_filter,
                               "forward-drop": _forward_drop, "docker-port": _docker_port, "del-rule": _del_rule,
                               "forward-rule": _forward_rule, "leaked-rule": _leaked_rule, "leaked-eni": _leaked_eni,
                               "partial-snat": _partial_snat, "no-route": _no_route}
CLEAR: dict[str, Restorer] = {"no-snat": _restore_snat, "exhaust": _unexhaust, "rp-filter": _rp_restore,
                              "forward-drop": _forward_restore, "docker-port": _docker_restore,
                              "del-rule": _rule_restore, "forward-rule": _forward_rule_restore,
                              "leaked-rule": _leaked_rule_restore, "leaked-eni": _leaked_eni_restore,
                              "partial-snat": _partial_snat_restore, "no-route": _no_route_restore}
