"""`terwayctl capacity --cluster`: every node of a running cluster against its Terway capacity."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

import typer

from terwayctl.cli.capacity import choose_catalog
from terwayctl.cli.options import TabularOutput
from terwayctl.cli.render import emit_structured
from terwayctl.cli.table import cell, write_table
from terwayctl.core import defaults
from terwayctl.core.eniconf import eni_caps_from_conf

if TYPE_CHECKING:
    from terwayctl.cli.context import GlobalOptions
    from terwayctl.core.catalog import InstanceType
    from terwayctl.core.cluster_capacity import NodeCapacity, NodeRecord
    from terwayctl.kube.api import ObjectReader


def cluster_capacity_command(ctx: typer.Context, output: TabularOutput) -> None:
    """Read nodes, pods, eni-config and the DaemonSet; compute each node's capacity and flag problems."""
    from terwayctl.cli.context import global_options
    from terwayctl.core.cluster_capacity import cluster_capacity
    from terwayctl.kube.client import connect

    options = global_options(ctx)
    with connect(options.kubeconfig, options.context) as kube:
        mode, records = _cluster_records(kube, options.namespace)
    catalog = choose_catalog(options, live=False)
    types = catalog.by_name()
    sources = {name: catalog.source for name in types}
    unknown = sorted({r.instance_type for r in records if r.instance_type and r.instance_type not in types})
    notes = _lookup_live_types(options, unknown, types, sources)
    rows = cluster_capacity(records, types, mode, sources)
    if output is TabularOutput.table:
        catalog_line = catalog.source
        if catalog.date and catalog.date not in catalog.source:
            catalog_line += f" (figures as of {catalog.date})"
        print_cluster_capacity_table(sys.stdout, rows, mode, [*notes, f"instance types from: {catalog_line}"])
    else:
        emit_structured(rows, output.value)


def _cluster_records(kube: ObjectReader, namespace: str) -> tuple[str, list[NodeRecord]]:
    """The cluster's Terway mode and one NodeRecord per node (reads through terwayctl.kube)."""
    from terwayctl.core.cluster_capacity import NodeRecord as Record
    from terwayctl.core.eniconf import merged_eni_conf
    from terwayctl.kube.errors import KubeNotFound
    from terwayctl.kube.reads import (
        find_terway_daemonset,
        list_nodes,
        list_pods,
        pods_by_node,
        read_configmap,
    )

    daemonset = find_terway_daemonset(kube, namespace)
    mode = daemonset.mode if daemonset is not None else "eniip"
    texts: dict[str, str | None] = {}

    def eni_conf_text(name: str) -> str | None:
        if name not in texts:
            try:
                texts[name] = read_configmap(kube, namespace, name).data.get(defaults.ENI_CONF_KEY)
            except KubeNotFound:
                texts[name] = None
        return texts[name]

    default_text = eni_conf_text(defaults.ENI_CONFIG_NAME) or "{}"
    per_node = pods_by_node(list_pods(kube))
    records = []
    for node in list_nodes(kube):
        override = eni_conf_text(node.terway_config) if node.terway_config else None
        conf = merged_eni_conf(default_text, override, f"{node.terway_config} eni_conf")
        pods = per_node.get(node.name, [])
        records.append(Record(
            name=node.name, instance_type=node.instance_type, zone=node.zone, max_pods=node.capacity_pods,
            allocatable_pods=node.allocatable_pods, pods=len([p for p in pods if not p.host_network]),
            host_network_pods=len([p for p in pods if p.host_network]),
            caps=eni_caps_from_conf(conf, f"eni_conf of node {node.name}"),
            allocatable_enis=node.allocatable_enis,
        ))
    return mode, records


def _lookup_live_types(
    options: GlobalOptions, names: list[str], types: dict[str, InstanceType], sources: dict[str, str]
) -> list[str]:
    """Fill `types` with DescribeInstanceTypes for types the catalog lacks, when cloud access works."""
    if not names:
        return []
    from terwayctl.cloud.session import client_from_options
    from terwayctl.core.errors import TerwayctlError

    try:
        with client_from_options(options) as cloud:
            infos = cloud.describe_instance_types(names)
    except TerwayctlError as exc:
        return [f"{', '.join(names)} not in the catalog and not looked up live: {exc.message}"]
    for info in infos:
        types[info.instance_type_id] = info.to_instance_type()
        sources[info.instance_type_id] = f"DescribeInstanceTypes ({cloud.region})"
    missing = [n for n in names if n not in types]
    return [f"{', '.join(missing)} unknown to the catalog and to DescribeInstanceTypes"] if missing else []


def print_cluster_capacity_table(out: TextIO, rows: list[NodeCapacity], mode: str, notes: list[str]) -> None:
    headers = ["NODE", "TYPE", "ZONE", "POD-IPS", "MAX-PODS", "ALLOCATABLE", "PODS", "HOST-NET", "FLAGS"]
    cells = [[r.name, r.instance_type or "?", r.zone or "?", cell(r.ip_capacity), cell(r.max_pods),
              cell(r.allocatable_pods), str(r.pods), str(r.host_network_pods), ",".join(r.flags) or "-"]
             for r in rows]
    right = ["POD-IPS", "MAX-PODS", "ALLOCATABLE", "PODS", "HOST-NET"]
    if mode == "eni":  # exclusive ENI: the device plugin's allocatable aliyun/eni beside the capacity
        headers.insert(6, "ALLOC-ENI")
        right.append("ALLOC-ENI")
        for row, r in zip(cells, rows, strict=True):
            row.insert(6, cell(r.allocatable_enis))
    write_table(out, headers, cells, right=right)
    label = "shared ENI (terway-eniip)" if mode == "eniip" else "exclusive ENI (terway-eni)"
    lines = [f"{len(rows)} node(s); Terway mode: {label}. POD-IPS from eni_conf (max_eni, eni_cap_ratio, "
             "eni_cap_shift) and each node's terway-config override."]
    lines += [f"{row.name}: {problem}" for row in rows for problem in row.problems]
    lines += [f"note: {note}" for note in notes]
    out.write("\n".join(lines) + "\n")
