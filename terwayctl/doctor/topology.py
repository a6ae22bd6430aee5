"""The cluster as the cloud checks see it: its vSwitches, its instances, NAT gateways and EIPs.

Inputs, in order (docs/doctor.md "Inputs"):

- pod vSwitches: `vswitches` of eni_conf, from `--eni-conf FILE`, else the cluster's
  `eni-config` ConfigMap. A zone without configured vSwitches uses its nodes' own vSwitches
  (Terway's fallback). No eni_conf at all: every zone falls back to the node vSwitches.
- instances (the nodes): `--instance-id`, else the cluster nodes' spec.providerID, else every
  instance of the VPC of the configured vSwitches (DescribeInstances VpcId=...).
- node vSwitches: the instances' primary vSwitches.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terwayctl.cloud.models import Eip, Instance, NatGateway, SnatEntry, VSwitch
from terwayctl.core import defaults
from terwayctl.core.eniconf import configured_vswitches, parse_eni_conf_text
from terwayctl.core.errors import InvalidInput, TerwayctlError
from terwayctl.doctor.context import Context
from terwayctl.doctor.model import CheckSkipped


def load_eni_conf_file(path: Path, flag: str = "--eni-conf") -> dict[str, Any]:
    """eni_conf from a file: the JSON itself, or a ConfigMap (YAML or JSON) with data.eni_conf.

    `flag` names how the file was given (``--eni-conf`` or ``TERWAYCTL_ENI_CONF``) in the messages.
    """
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidInput(f"cannot read {flag} {path}: {reason}", hint="check the path") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        document = None
    if isinstance(document, dict) and document.get("kind") == "ConfigMap":
        data = document.get("data") or {}
        inner = data.get(defaults.ENI_CONF_KEY) if isinstance(data, dict) else None
        if not isinstance(inner, str):
            raise InvalidInput(f"{flag} {path}: the ConfigMap has no data.{defaults.ENI_CONF_KEY}",
                               hint="give the eni-config ConfigMap or the eni_conf JSON itself")
        return parse_eni_conf_text(inner, f"{flag} {path} data.{defaults.ENI_CONF_KEY}")
    return parse_eni_conf_text(text, f"{flag} {path}")


@dataclass(frozen=True)
class EniConf:
    origin: str
    conf: Mapping[str, Any]


def eni_conf(ctx: Context) -> EniConf | None:
    """The eni_conf doctor works with: --eni-conf, else the cluster's eni-config, else None."""

    def compute() -> EniConf | None:
        if ctx.options.eni_conf_file is not None:
            path, flag = ctx.options.eni_conf_file, ctx.options.eni_conf_origin
            try:
                return EniConf(f"{flag} {path}", load_eni_conf_file(path, flag))
            except InvalidInput as exc:
                raise CheckSkipped(f"eni_conf unusable: {exc.message} (see cloud.eni-conf)") from None
        try:
            kube = ctx.kube
        except CheckSkipped:
            return None
        data = kube.config_map(defaults.ENI_CONFIG_NAME)
        text = None if data is None else data.get(defaults.ENI_CONF_KEY)
        if text is None:
            return None
        origin = f"ConfigMap {kube.namespace}/{defaults.ENI_CONFIG_NAME}"
        try:
            return EniConf(origin, parse_eni_conf_text(text, origin))
        except InvalidInput as exc:
            raise CheckSkipped(f"eni_conf unusable: {exc.message} (see cluster.eni-config)") from None
    result: EniConf | None = ctx.cached("eni_conf", compute)
    return result


@dataclass(frozen=True)
class Topology:
    eni_conf_origin: str | None
    configured: Mapping[str, tuple[str, ...]]
    """eni_conf vswitches: zone -> pod vSwitch ids."""
    instances_origin: str
    instances: tuple[Instance, ...]
    vswitches: Mapping[str, VSwitch]
    """Every configured and node vSwitch the cloud knows."""
    missing: tuple[str, ...]
    """Configured or node vSwitch ids DescribeVSwitches does not know."""
    vpc_ids: tuple[str, ...]
    unknown_instances: tuple[str, ...] = ()
    """Instance ids given (or in the cluster's providerIDs) that DescribeInstances does not know."""

    @property
    def node_vswitch_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.vswitch_id for i in self.instances if i.vswitch_id))

    def node_zones(self) -> dict[str, int]:
        zones: dict[str, int] = {}
        for instance in self.instances:
            zones[instance.zone_id] = zones.get(instance.zone_id, 0) + 1
        return zones

    def pod_vswitch_ids(self, zone: str) -> tuple[str, ...]:
        """The pod vSwitches of a zone: configured ones, else the zone's node vSwitches (fallback)."""
        if self.configured.get(zone):
            return self.configured[zone]
        return tuple(dict.fromkeys(i.vswitch_id for i in self.instances if i.zone_id == zone and i.vswitch_id))

    def all_pod_vswitch_ids(self) -> tuple[str, ...]:
        zones = list(dict.fromkeys([*self.configured, *self.node_zones()]))
        return tuple(dict.fromkeys(v for z in zones for v in self.pod_vswitch_ids(z)))

    def role(self, vswitch_id: str) -> str:
        pod = vswitch_id in self.all_pod_vswitch_ids()
        node = vswitch_id in self.node_vswitch_ids
        return "pod+node" if pod and node else "pod" if pod else "node"

    def describe_inputs(self) -> str:
        conf = self.eni_conf_origin or "no eni_conf (pods use their node's vSwitch)"
        return f"inputs: {conf}; {len(self.instances)} instance(s) from {self.instances_origin}"


def _instance_ids_from_cluster(ctx: Context) -> list[str]:
    try:
        kube = ctx.kube
    except CheckSkipped:
        return []
    return [n.instance_id for n in kube.nodes() if n.instance_id]


def topology(ctx: Context) -> Topology:
    return ctx.cached("topology", lambda: _topology(ctx))


def _topology(ctx: Context) -> Topology:
    cloud = ctx.cloud
    conf = eni_conf(ctx)
    configured: dict[str, tuple[str, ...]] = {}
    if conf is not None:
        try:
            configured = {z: tuple(ids) for z, ids in configured_vswitches(conf.conf, conf.origin).items()}
        except TerwayctlError as exc:
            raise CheckSkipped(f"{exc.message} (see cluster.eni-config)") from None
    vswitches: dict[str, VSwitch] = {}
    missing: list[str] = []

    def look_up(ids: list[str]) -> None:
        for vsw in dict.fromkeys(ids):
            if vsw in vswitches or vsw in missing:
                continue
            found = [v for v in cloud.describe_vswitches(vswitch_ids=[vsw]) if v.vswitch_id == vsw]
            if found:
                vswitches[vsw] = found[0]
            else:
                missing.append(vsw)

    look_up([v for ids in configured.values() for v in ids])
    vpc_ids = tuple(dict.fromkeys(v.vpc_id for v in vswitches.values() if v.vpc_id))

    instances: list[Instance]
    unknown: list[str] = []
    if ctx.options.instance_ids:
        origin = ctx.options.instance_ids_origin
        wanted = list(ctx.options.instance_ids)
        instances = [i for i in cloud.describe_instances(instance_ids=wanted) if i.instance_id in wanted]
        unknown = sorted(set(wanted) - {i.instance_id for i in instances})
    elif cluster_ids := _instance_ids_from_cluster(ctx):
        origin = "the cluster's nodes (spec.providerID)"
        instances = [i for i in cloud.describe_instances(instance_ids=cluster_ids) if i.instance_id in cluster_ids]
        unknown = sorted(set(cluster_ids) - {i.instance_id for i in instances})
    elif vpc_ids:
        origin = f"every instance of VPC {', '.join(vpc_ids)}"
        instances = [i for vpc in vpc_ids for i in cloud.describe_instances(vpc_id=vpc)]
    else:
        raise CheckSkipped(
            "the cluster's vSwitches and nodes are unknown: pass --eni-conf FILE and/or --instance-id ID, "
            "or give a kubeconfig (eni-config and the nodes' providerID)"
        )
    look_up([i.vswitch_id for i in instances if i.vswitch_id])
    vpc_ids = tuple(dict.fromkeys([*vpc_ids, *(i.vpc_id for i in instances if i.vpc_id)]))
    return Topology(
        eni_conf_origin=conf.origin if conf else None,
        configured=configured,
        instances_origin=origin,
        instances=tuple(sorted(instances, key=lambda i: i.instance_id)),
        vswitches=vswitches,
        missing=tuple(missing),
        vpc_ids=vpc_ids,
        unknown_instances=tuple(unknown),
    )


# --- NAT gateways, SNAT entries, EIPs --------------------------------------------------------------


@dataclass(frozen=True)
class NatFacts:
    gateways: tuple[NatGateway, ...]
    entries: Mapping[str, tuple[SnatEntry, ...]]
    """SNAT table id -> its entries."""

    def covering(self, vsw: VSwitch) -> list[SnatEntry]:
        """The SNAT entries whose source is this vSwitch, or a CIDR containing its CIDR."""
        found = []
        for entries in self.entries.values():
            for entry in entries:
                if entry.source_vswitch_id == vsw.vswitch_id or _cidr_contains(entry.source_cidr, vsw.cidr_block):
                    found.append(entry)
        return found

    def partial(self, vsw: VSwitch) -> tuple[list[SnatEntry], list[str]]:
        """SourceCIDR entries covering only part of the vSwitch, and the parts nothing covers."""
        try:
            whole: Any = ipaddress.ip_network(vsw.cidr_block, strict=False)
        except ValueError:
            return [], []
        found: list[SnatEntry] = []
        nets: list[Any] = []
        for entries in self.entries.values():
            for entry in entries:
                try:
                    net: Any = ipaddress.ip_network(entry.source_cidr, strict=False) if entry.source_cidr else None
                except ValueError:
                    net = None
                if net is not None and net.version == whole.version and net.overlaps(whole):
                    found.append(entry)
                    nets.append(net)
        if not found:
            return [], []
        left: list[Any] = [whole]
        for net in nets:
            rest: list[Any] = []
            for part in left:
                if part.subnet_of(net):
                    continue
                rest += list(part.address_exclude(net)) if part.overlaps(net) and net.subnet_of(part) else [part]
            left = rest
        return found, [str(n) for n in ipaddress.collapse_addresses(left)]

    def covers_address(self, vsw: VSwitch, address: str) -> list[SnatEntry]:
        """The entries that translate a packet from `address` (in `vsw`)."""
        found = list(self.covering(vsw))
        for entries in self.entries.values():
            for entry in entries:
                if entry not in found and _cidr_contains(entry.source_cidr, address):
                    found.append(entry)
        return found

    def snat_ip_of(self, table_id: str, gateway: NatGateway) -> str | None:
        ips = [e.snat_ip for e in self.entries.get(table_id, ()) if e.snat_ip]
        if ips:
            return ips[0].split(",")[0]
        return gateway.ip_addresses[0] if gateway.ip_addresses else None


def _cidr_contains(outer: str, inner: str) -> bool:
    if not outer or not inner:
        return False
    try:
        a, b = ipaddress.ip_network(outer, strict=False), ipaddress.ip_network(inner, strict=False)
    except ValueError:
        return False
    return a.version == b.version and b.subnet_of(a)  # type: ignore[arg-type]


def nat_facts(ctx: Context) -> NatFacts:
    def compute() -> NatFacts:
        topo = topology(ctx)
        gateways = [g for vpc in topo.vpc_ids for g in ctx.cloud.describe_nat_gateways(vpc_id=vpc)]
        entries = {t: tuple(ctx.cloud.describe_snat_table_entries(t)) for g in gateways for t in g.snat_table_ids}
        return NatFacts(tuple(gateways), entries)

    result: NatFacts = ctx.cached("nat", compute)
    return result


def eips(ctx: Context) -> tuple[Eip, ...]:
    result: tuple[Eip, ...] = ctx.cached("eips", lambda: tuple(ctx.cloud.describe_eip_addresses()))
    return result


def snat_command(ctx: Context, facts: NatFacts, vsw: VSwitch) -> str:
    """The exact `aliyun vpc CreateSnatEntry` line that covers `vsw`."""
    region = f" --RegionId {ctx.cloud.region}" if ctx.cloud.region else ""
    for gateway in facts.gateways:
        if gateway.vpc_id in ("", vsw.vpc_id) and gateway.snat_table_ids:
            table = gateway.snat_table_ids[0]
            ip = facts.snat_ip_of(table, gateway) or f"<an EIP of {gateway.nat_gateway_id}>"
            return (f"aliyun vpc CreateSnatEntry{region} --SnatTableId {table} "
                    f"--SourceVSwitchId {vsw.vswitch_id} --SnatIp {ip}")
    return (f"aliyun vpc CreateNatGateway{region} --VpcId {vsw.vpc_id} --VSwitchId {vsw.vswitch_id} "
            f"--NatType Enhanced, bind an EIP to it (aliyun vpc AssociateEipAddress), then "
            f"aliyun vpc CreateSnatEntry{region} --SnatTableId <its SNAT table> --SourceVSwitchId {vsw.vswitch_id} "
            f"--SnatIp <the EIP>")
