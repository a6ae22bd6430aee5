"""What a lab is: the options of `lab up` (`LabSpec`) and the layout derived from them (`Topology`).

`build_topology` is pure: the CIDR plan (`core.planning.plan`), one node and one pod vSwitch per
zone, nodes spread over the zones in turn, a NAT gateway with SNAT entries, and the emulator
scenario that seeds the lab's cloud. The topology is written to ``lab.json`` so the supervisor and
every later command read the same thing.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from terwayctl.core import defaults
from terwayctl.core.errors import InvalidInput
from terwayctl.core.planning import NODE, POD, PlanRequest, plan
from terwayctl.lab import naming

REGION = "cn-hangzhou"
DEFAULT_ZONES = ("cn-hangzhou-i",)
DEFAULT_INSTANCE_TYPE = "ecs.g7.xlarge"  # 4 ENIs x 15 IPs
MODES = ("eniip", "eni")
MAX_NODES = 8
ACCESS_KEY_ID = "emulator"
ACCESS_KEY_SECRET = "emulator"
INTERNET_CIDR = "203.0.113.0/24"
NAT_EIP = "203.0.113.1"
INTERNET_GATEWAY = "203.0.113.254"
WEB_HOST = "203.0.113.10"
WEB_PORT = 80
INTERNET_HOSTS = (WEB_HOST, "203.0.113.20")
METADATA_HOST = "100.100.100.200"  # the ECS instance metadata service, served in every node namespace
METADATA_PORT = 80
DEFAULT_ENI_CONF: dict[str, Any] = {
    "version": "1",
    "min_pool_size": 2,
    "max_pool_size": 10,
    "ip_pool_sync_period": "30s",
    "vswitch_selection_policy": "ordered",
}


@dataclass(frozen=True)
class LabSpec:
    """The options of `lab up`."""

    name: str = naming.DEFAULT_NAME
    nodes: int = 2
    zones: tuple[str, ...] = DEFAULT_ZONES
    instance_type: str = DEFAULT_INSTANCE_TYPE
    mode: str = "eniip"
    vpc: str = defaults.DEFAULT_VPC_CIDR
    service_cidr: str = defaults.DEFAULT_SERVICE_CIDR
    snat: bool = True
    eni_conf: Mapping[str, Any] = field(default_factory=dict)
    # nodes whose daemon the lab does not start: it runs elsewhere (e.g. the packaged DaemonSet's
    # container in the node's namespace) and learns its identity from the node's metadata service
    external_daemons: tuple[str, ...] = ()
    # run a Kubernetes API server for the lab (terwayctl.lab.cluster): the daemons read eni-config there
    kube: bool = False


@dataclass(frozen=True)
class VSwitchPlan:
    id: str
    zone: str
    role: str  # node | pod
    cidr: str
    gateway: str
    snat: bool


@dataclass(frozen=True)
class NodePlan:
    name: str  # node1, node2, ...
    instance_id: str
    zone: str
    vswitch_id: str
    primary_eni: str
    ns: str


@dataclass(frozen=True)
class Topology:
    """Everything derived from the spec; JSON round-trips through `to_json` / `from_json`."""

    name: str
    region: str
    mode: str
    instance_type: str
    vpc_id: str
    vpc_cidr: str
    service_cidr: str
    security_group: str
    nat_id: str
    snat_table: str
    nat_eip: str
    vswitches: tuple[VSwitchPlan, ...]
    nodes: tuple[NodePlan, ...]
    eni_conf: Mapping[str, Any]
    router_ns: str
    internet_ns: str
    external_daemons: tuple[str, ...] = ()
    kube: bool = False

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise InvalidInput(f"lab {self.name} has no node {name!r}",
                           hint=f"nodes: {', '.join(n.name for n in self.nodes)}")

    def vswitch(self, vswitch_id: str) -> VSwitchPlan:
        for vsw in self.vswitches:
            if vsw.id == vswitch_id:
                return vsw
        raise InvalidInput(f"lab {self.name} has no vSwitch {vswitch_id!r}",
                           hint=f"vSwitches: {', '.join(v.id for v in self.vswitches)}")

    def pod_vswitches(self) -> list[VSwitchPlan]:
        return [v for v in self.vswitches if v.role == POD]

    def node_eni_conf(self, node: NodePlan) -> dict[str, Any]:
        """The node's eni_conf: the lab default, the --config file over it, the node's zone vSwitches."""
        conf: dict[str, Any] = {**DEFAULT_ENI_CONF, "region_id": self.region,
                                "vswitches": {node.zone: [v.id for v in self.pod_vswitches() if v.zone == node.zone]},
                                "security_group": self.security_group, "service_cidr": self.service_cidr}
        conf.update(self.eni_conf)
        return conf

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Topology:
        values = dict(data)
        values["vswitches"] = tuple(VSwitchPlan(**v) for v in data["vswitches"])
        values["nodes"] = tuple(NodePlan(**n) for n in data["nodes"])
        values["external_daemons"] = tuple(data.get("external_daemons", ()))
        values["kube"] = bool(data.get("kube", False))
        return Topology(**values)

    def scenario(self) -> dict[str, Any]:
        """The emulator scenario that seeds the lab's cloud."""
        node_vsw = next(v for v in self.vswitches if v.role == NODE)
        # eni_conf ip_stack dual (`lab up --config`): a dual-stack VPC, an IPv6 /64 on every vSwitch,
        # so the daemons can run what their eni_conf asks for (without it they refuse the vSwitches)
        ipv6 = {"ipv6": True} if self.eni_conf.get("ip_stack") == "dual" else {}
        return {
            "region": self.region,
            "zones": sorted({v.zone for v in self.vswitches}),
            "key_pairs": [{"access_key_id": ACCESS_KEY_ID, "access_key_secret": ACCESS_KEY_SECRET}],
            "vpcs": [{"id": self.vpc_id, "cidr": self.vpc_cidr, "name": f"lab-{self.name}", **ipv6}],
            "vswitches": [{"id": v.id, "zone": v.zone, "cidr": v.cidr, "name": f"{v.role}-{v.zone}",
                           **({"ipv6_cidr_block": index} if ipv6 else {})}
                          for index, v in enumerate(self.vswitches)],
            "security_groups": [{"id": self.security_group, "name": f"lab-{self.name}"}],
            "instances": [{"id": n.instance_id, "type": self.instance_type, "vswitch": n.vswitch_id,
                           "primary_eni": n.primary_eni, "name": n.name} for n in self.nodes],
            "nat_gateways": [{
                "id": self.nat_id, "vswitch": node_vsw.id, "snat_table_id": self.snat_table,
                "name": f"lab-{self.name}",
                "snat_entries": [{"source_vswitch": v.id, "snat_ip": self.nat_eip} for v in self.vswitches if v.snat],
            }],
            "eips": [{"id": f"eip-{self.name}-nat", "ip": self.nat_eip, "instance": self.nat_id,
                      "instance_type": "Nat"}],
        }


def gateway_of(cidr: str) -> str:
    """The vSwitch gateway: the last address minus two (x.x.x.253 of a /24), as the emulator reports it."""
    return str(ipaddress.IPv4Network(cidr).broadcast_address - 2)


def build_topology(spec: LabSpec) -> Topology:
    """Validate the spec and lay the lab out (pure)."""
    name = naming.check_name(spec.name)
    if not 1 <= spec.nodes <= MAX_NODES:
        raise InvalidInput(f"--nodes must be 1 to {MAX_NODES}, got {spec.nodes}", hint="e.g. --nodes 2")
    if spec.mode not in MODES:
        raise InvalidInput(f"--mode must be eniip or eni, got {spec.mode!r}",
                           hint="eniip: shared ENIs with many IPs; eni: one exclusive ENI per pod")
    zones = _zones(spec.zones)
    _check_instance_type(spec.instance_type)
    report = plan(PlanRequest(vpc=spec.vpc, zones=zones, service_cidr=spec.service_cidr))
    if report.failed:
        first = report.failed[0]
        raise InvalidInput(f"the plan for --vpc {spec.vpc}: {first.message}", hint=first.fix or None)
    vswitches = []
    for row in report.vswitches:
        zone_letter = row.zone.rsplit("-", 1)[-1]
        vswitches.append(VSwitchPlan(
            # vsw-<alnum> like a real id (no hyphen after the prefix), so `terwayctl render` takes it
            id=f"vsw-{name}{row.role}{zone_letter}", zone=row.zone, role=row.role, cidr=row.cidr,
            gateway=gateway_of(row.cidr), snat=row.role == NODE or spec.snat,
        ))
    nodes = []
    for i in range(1, spec.nodes + 1):
        zone = zones[(i - 1) % len(zones)]
        node_vsw = next(v for v in vswitches if v.zone == zone and v.role == NODE)
        node = f"node{i}"
        nodes.append(NodePlan(node, f"i-{name}-{node}", zone, node_vsw.id, f"eni-{name}-{node}",
                              naming.node_ns(name, node)))
    unknown = sorted(set(spec.external_daemons) - {n.name for n in nodes})
    if unknown:
        raise InvalidInput(f"--external-daemon names no node of the lab: {', '.join(unknown)}",
                           hint=f"nodes: {', '.join(n.name for n in nodes)}")
    return Topology(
        name=name, region=REGION, mode=spec.mode, instance_type=spec.instance_type, vpc_id=f"vpc-{name}",
        vpc_cidr=report.vpc, service_cidr=report.service_cidr, security_group=f"sg-{name}", nat_id=f"ngw-{name}",
        snat_table=f"stb-{name}", nat_eip=NAT_EIP, vswitches=tuple(vswitches), nodes=tuple(nodes),
        eni_conf=dict(spec.eni_conf), router_ns=naming.router_ns(name), internet_ns=naming.internet_ns(name),
        external_daemons=tuple(sorted(set(spec.external_daemons))), kube=spec.kube,
    )


def _zones(zones: Sequence[str]) -> tuple[str, ...]:
    result = tuple(z.strip() for z in zones if z.strip()) or DEFAULT_ZONES
    for zone in result:
        if not zone.startswith(REGION + "-") or not zone[len(REGION) + 1:].isalnum():
            raise InvalidInput(f"zone {zone!r} is not a zone of the lab's region {REGION}",
                               hint=f"name zones like {REGION}-i,{REGION}-j")
    if len(set(result)) != len(result):
        raise InvalidInput(f"--zones lists a zone twice: {','.join(result)}", hint="name each zone once")
    return result


def _check_instance_type(type_name: str) -> None:
    from terwayctl.data import embedded_catalog

    row = embedded_catalog().by_name().get(type_name)
    if row is None or not row.eni_quantity or not row.eni_private_ip_quantity:
        raise InvalidInput(f"instance type {type_name!r} has no ENI quota in the catalog",
                           hint="pick a type with ENIs, e.g. ecs.g7.xlarge (see 'terwayctl capacity')")
    if row.eni_quantity < 2:
        raise InvalidInput(f"instance type {type_name} has {row.eni_quantity} ENI: no room for pod ENIs",
                           hint="pick a type with 2 or more ENIs, e.g. ecs.g7.xlarge")


def load_eni_conf_file(path: Any) -> dict[str, Any]:
    """`lab up --config FILE`: an eni_conf mapping (JSON or YAML), or a ConfigMap whose
    ``data.eni_conf`` holds it; merged over the lab's default eni_conf."""
    import json
    from pathlib import Path

    import yaml

    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise InvalidInput(f"cannot read --config {file}: {exc.strerror}", hint="check the path") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"--config {file} is not JSON or YAML: {exc}", hint="fix the syntax") from None
    if isinstance(data, dict) and isinstance(data.get("data"), dict) and "eni_conf" in data["data"]:
        try:
            data = json.loads(data["data"]["eni_conf"])
        except ValueError as exc:
            raise InvalidInput(f"--config {file}: data.eni_conf is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"--config {file} must hold an eni_conf mapping",
                           hint='e.g. {"max_pool_size": 5, "min_pool_size": 0}')
    return {str(k): v for k, v in data.items()}
