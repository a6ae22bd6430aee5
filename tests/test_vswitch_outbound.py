"""`vswitch add` checks outbound internet (route table + SNAT), --snat, --no-internet, --create and the
per-node ConfigMaps, against the test API server and the cloud emulator (real SDK over HTTP)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from terwayctl.lab.kubeapi.seed import configmap, node, seed_cluster
from tests.conftest import CliResult
from tests.fixtures.emulator import RunningEmulator
from tests.fixtures.kube import RunningKubeApi
from tests.vswitch_support import run, terway_pods

Cli = Callable[..., CliResult]


def vswitches(kube: RunningKubeApi, name: str = "eni-config") -> dict[str, list[str]]:
    conf: dict[str, Any] = json.loads(kube.get("v1", "ConfigMap", name, "kube-system")["data"]["eni_conf"])
    return dict(conf["vswitches"])


def snat_entries(cloud: RunningEmulator) -> list[dict[str, Any]]:
    reply = cloud.call("DescribeSnatTableEntries", version="2016-04-28", SnatTableId="stb-cluster", PageSize="100")
    return list(reply.body["SnatTableEntries"]["SnatTableEntry"])


def cloud_vswitches(cloud: RunningEmulator) -> dict[str, dict[str, Any]]:
    reply = cloud.call("DescribeVSwitches", version="2016-04-28", VpcId="vpc-cluster", PageSize="50")
    return {v["VSwitchId"]: v for v in reply.body["VSwitches"]["VSwitch"]}


# --- refusals: nothing changes -----------------------------------------------------------------------------


@pytest.mark.parametrize(("vsw", "message", "hint"), [
    ("vsw-barei", "pods on vSwitch vsw-barei (192.168.232.0/21) would have no internet: NAT gateway ngw-cluster "
     "(the 0.0.0.0/0 next hop of system route table vtb-cluster) has no SNAT entry for it",
     "rerun with --snat to create it, or: aliyun vpc CreateSnatEntry --RegionId cn-hangzhou --SnatTableId "
     "stb-cluster --SourceVSwitchId vsw-barei --SnatIp 203.0.113.10"),
    ("vsw-halfi", "pods on vSwitch vsw-halfi (192.168.224.0/21) would only partly reach the internet: the SNAT "
     "entries snat-halfi (192.168.224.0/22) of NAT gateway ngw-cluster cover only part of it; uncovered: "
     "192.168.228.0/22", "--SourceVSwitchId vsw-halfi --SnatIp 203.0.113.10"),
    ("vsw-privi", "pods on vSwitch vsw-privi would have no internet: custom route table vtb-private has no "
     "0.0.0.0/0 route", "aliyun vpc CreateRouteEntry --RegionId cn-hangzhou --RouteTableId vtb-private "
     "--DestinationCidrBlock 0.0.0.0/0 --NextHopType NatGateway"),
    ("vsw-gwi", "pods on vSwitch vsw-gwi would have no internet through a NAT gateway: custom route table "
     "vtb-gateway sends 0.0.0.0/0 to Instance i-gateway, not to a NAT gateway",
     "pass --no-internet"),
])
def test_no_outbound_internet_is_refused(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator, vsw: str,
                                         message: str, hint: str) -> None:
    before = cluster.get("v1", "ConfigMap", "eni-config", "kube-system")
    pods = terway_pods(cluster)
    result = run(cli, cluster, cloud, "add", vsw)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert f"error: {message}" in result.stderr, result.stderr
    assert hint in result.stderr.split("hint:")[1]
    assert cluster.get("v1", "ConfigMap", "eni-config", "kube-system") == before
    assert terway_pods(cluster) == pods
    assert len(snat_entries(cloud)) == 9


def test_snat_creates_the_missing_entry_and_waits(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    result = run(cli, cluster, cloud, "add", "vsw-barei", "--snat", "--no-restart")
    assert result.exit_code == 0, result.stderr
    created = [e for e in snat_entries(cloud) if e["SourceVSwitchId"] == "vsw-barei"]
    assert len(created) == 1 and created[0]["SnatIp"] == "203.0.113.10" and created[0]["Status"] == "Available"
    entry = created[0]["SnatEntryId"]
    assert result.stdout.splitlines()[:4] == [
        f"created SNAT entry {entry} in stb-cluster of NAT gateway ngw-cluster: vsw-barei -> 203.0.113.10; "
        "waiting until it is Available",
        f"SNAT entry {entry} is Available (0s)",
        "outbound ok: vsw-barei -> 0.0.0.0/0 via NAT gateway ngw-cluster (system route table vtb-cluster), "
        f"SNAT entry {entry} (SourceVSwitchId vsw-barei) -> 203.0.113.10",
        "added vsw-barei (192.168.232.0/21, 2044 free IPs) under zone cn-hangzhou-i in configmap "
        "kube-system/eni-config",
    ]
    assert vswitches(cluster)["cn-hangzhou-i"] == ["vsw-podi", "vsw-barei"]


def test_snat_also_completes_a_partial_cover(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    result = run(cli, cluster, cloud, "add", "vsw-halfi", "--snat", "--no-restart")
    assert result.exit_code == 0, result.stderr
    assert [e["SourceCIDR"] for e in snat_entries(cloud) if e["SourceVSwitchId"] == "vsw-halfi"] == ["192.168.224.0/21"]


def test_snat_cannot_fix_a_missing_route(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    result = run(cli, cluster, cloud, "add", "vsw-privi", "--snat")
    assert result.exit_code == 2 and "vtb-private has no 0.0.0.0/0 route" in result.stderr
    assert len(snat_entries(cloud)) == 9


def test_no_internet_skips_the_outbound_checks(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    result = run(cli, cluster, cloud, "add", "vsw-privi", "--no-internet", "--no-restart")
    assert result.exit_code == 0, result.stderr
    assert "outbound" not in result.stdout and "vsw-privi" in vswitches(cluster)["cn-hangzhou-i"]


@pytest.mark.parametrize(("args", "message"), [
    (["vsw-barei", "--snat", "--no-internet"], "--snat and --no-internet contradict each other"),
    (["--create"], "--create needs --zone"),
    (["vsw-barei", "--zone", "cn-hangzhou-i", "--create"], "give vSwitch ids or --create, not both"),
    ([], "no vSwitch to add"),
    (["vsw-barei", "--cidr", "192.168.64.0/19"], "--cidr goes with --create"),
    (["vsw-newj", "--configmap", "x", "--all-configmaps"], "--configmap and --all-configmaps contradict"),
])
def test_option_refusals(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator, args: list[str],
                         message: str) -> None:
    result = run(cli, cluster, cloud, "add", *args)
    assert result.exit_code == 2 and message in result.stderr and "hint:" in result.stderr


# --- --create ----------------------------------------------------------------------------------------------


def test_create_dry_run_prints_the_calls_and_changes_nothing(cli: Cli, cluster: RunningKubeApi,
                                                             cloud: RunningEmulator) -> None:
    before, cloud_before = cluster.get("v1", "ConfigMap", "eni-config", "kube-system"), cloud_vswitches(cloud)
    result = run(cli, cluster, cloud, "add", "--zone", "cn-hangzhou-i", "--create", "--snat", "--dry-run")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "would call: CreateVSwitch VpcId=vpc-cluster ZoneId=cn-hangzhou-i CidrBlock=192.168.64.0/19 "
        "VSwitchName=terway-pod-cn-hangzhou-i (then wait until Available)",
        "would call: CreateSnatEntry SnatTableId=stb-cluster SourceVSwitchId=vsw-(new) SnatIp=203.0.113.10 "
        "(then wait until Available)",
    ]
    assert '+      "vsw-(new)"' in result.stdout and lines[-1] == "dry run: nothing changed"
    assert cluster.get("v1", "ConfigMap", "eni-config", "kube-system") == before
    assert cloud_vswitches(cloud) == cloud_before and len(snat_entries(cloud)) == 9


def test_create_snat_end_to_end(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    before = terway_pods(cluster)
    result = run(cli, cluster, cloud, "add", "--zone", "cn-hangzhou-i", "--create", "--snat", "--timeout", "20s")
    assert result.exit_code == 0, result.stdout + result.stderr
    new = [v for v in cloud_vswitches(cloud).values() if v["CidrBlock"] == "192.168.64.0/19"]
    assert len(new) == 1 and new[0]["Status"] == "Available" and new[0]["ZoneId"] == "cn-hangzhou-i"
    vsw = new[0]["VSwitchId"]
    assert f"created vSwitch {vsw} (192.168.64.0/19) in zone cn-hangzhou-i; waiting until it is Available" \
        in result.stdout
    assert [e["SourceVSwitchId"] for e in snat_entries(cloud)].count(vsw) == 1
    assert vswitches(cluster)["cn-hangzhou-i"] == ["vsw-podi", vsw]
    assert f"outbound ok: {vsw} -> 0.0.0.0/0 via NAT gateway ngw-cluster" in result.stdout
    after = terway_pods(cluster)
    assert after["node-3"] == before["node-3"] and after["node-1"] != before["node-1"]


def test_create_without_snat_is_refused_before_creating(cli: Cli, cluster: RunningKubeApi,
                                                        cloud: RunningEmulator) -> None:
    cloud_before = cloud_vswitches(cloud)
    result = run(cli, cluster, cloud, "add", "--zone", "cn-hangzhou-i", "--create")
    assert result.exit_code == 2
    assert "pods on vSwitch vsw-(new) (192.168.64.0/19) would have no internet" in result.stderr
    assert cloud_vswitches(cloud) == cloud_before


def test_create_plans_around_avoid_and_checks_cidr(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    full = run(cli, cluster, cloud, "add", "--zone", "cn-hangzhou-i", "--create", "--snat", "--dry-run",
               "--avoid", "192.168.64.0/19")
    assert full.exit_code == 2 and "VPC 192.168.0.0/16 has no free /19 for a new pod vSwitch" in full.stderr
    overlap = run(cli, cluster, cloud, "add", "--zone", "cn-hangzhou-i", "--create", "--cidr", "192.168.40.0/21")
    assert overlap.exit_code == 2 and "--cidr 192.168.40.0/21 overlaps vSwitch vsw-podi (192.168.32.0/19)" \
        in overlap.stderr
    outside = run(cli, cluster, cloud, "add", "--zone", "cn-hangzhou-i", "--create", "--cidr", "10.9.0.0/19")
    assert outside.exit_code == 2 and "is not inside VPC vpc-cluster" in outside.stderr
    given = run(cli, cluster, cloud, "add", "--zone", "cn-hangzhou-i", "--create", "--snat", "--cidr",
                "192.168.72.0/21", "--no-restart")
    assert given.exit_code == 0, given.stderr
    assert [v["VSwitchId"] for v in cloud_vswitches(cloud).values() if v["CidrBlock"] == "192.168.72.0/21"]
    nodes_k = run(cli, cluster, cloud, "add", "--zone", "cn-hangzhou-k", "--create", "--snat", "--dry-run")
    assert nodes_k.exit_code == 2 and "where the cluster has no nodes" in nodes_k.stderr


# --- per-node ConfigMaps -------------------------------------------------------------------------------------


def big_node(kube: RunningKubeApi, zone_list: list[str] | None = None) -> None:
    """node big-1 in zone j, labelled terway-config=eni-config-big, whose ConfigMap overrides zone j."""
    kube.create(node("big-1", "ecs.g7.4xlarge", "cn-hangzhou-j", **{"terway-config": "eni-config-big"}))
    kube.create(configmap("eni-config-big", json.dumps(
        {"max_pool_size": 20, "vswitches": {"cn-hangzhou-j": zone_list or ["vsw-podj"]}})))


def test_override_nodes_are_named_and_not_restarted(cli: Cli, cluster: RunningKubeApi,
                                                    cloud: RunningEmulator) -> None:
    big_node(cluster)
    result = run(cli, cluster, cloud, "add", "vsw-newj", "--timeout", "10s")
    assert result.exit_code == 0, result.stderr
    assert ("warning: node(s) big-1 of zone cn-hangzhou-j take their vSwitches from ConfigMap(s) eni-config-big "
            "and will not use vsw-newj; add it there too with --all-configmaps or --configmap eni-config-big") \
        in result.stderr
    assert "of 1 node(s): node-3\n" in result.stdout
    assert vswitches(cluster, "eni-config-big") == {"cn-hangzhou-j": ["vsw-podj"]}
    listing = run(cli, cluster, cloud, "list")
    assert "cn-hangzhou-j  vsw-newj  192.168.160.0/19      8188      1" in listing.stdout
    assert ("note: 1 node(s) of zone cn-hangzhou-j (big-1) use the vSwitches of ConfigMap eni-config-big, not "
            "these: 'terwayctl vswitch list --configmap eni-config-big'") in listing.stdout


def test_all_configmaps_adds_everywhere(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    big_node(cluster)
    result = run(cli, cluster, cloud, "add", "vsw-newj", "--all-configmaps", "--timeout", "10s")
    assert result.exit_code == 0, result.stderr
    assert "added vsw-newj (192.168.160.0/19, 8188 free IPs) under zone cn-hangzhou-j in configmap " \
        "kube-system/eni-config-big" in result.stdout
    assert vswitches(cluster, "eni-config-big") == {"cn-hangzhou-j": ["vsw-podj", "vsw-newj"]}
    assert vswitches(cluster)["cn-hangzhou-j"] == ["vsw-podj", "vsw-newj"]
    assert "note: no terway pod runs on big-1" in result.stdout  # seeded after the DaemonSet's pods
    listing = run(cli, cluster, cloud, "list")
    assert "cn-hangzhou-j  vsw-newj  192.168.160.0/19      8188      2" in listing.stdout


def test_all_configmaps_completes_a_plain_add(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    big_node(cluster)
    assert run(cli, cluster, cloud, "add", "vsw-newj", "--no-restart").exit_code == 0
    result = run(cli, cluster, cloud, "add", "vsw-newj", "--all-configmaps", "--timeout", "10s")
    assert result.exit_code == 0, result.stderr
    assert "configmap kube-system/eni-config already lists vsw-newj: unchanged" in result.stdout
    assert vswitches(cluster, "eni-config-big") == {"cn-hangzhou-j": ["vsw-podj", "vsw-newj"]}
    assert "of 1 node(s): big-1\n" in result.stdout  # node-3 already used it
    again = run(cli, cluster, cloud, "add", "vsw-newj", "--all-configmaps")
    assert again.exit_code == 2 and "already configured" in again.stderr


def test_remove_restarts_only_the_nodes_of_the_edited_configmap(cli: Cli, cluster: RunningKubeApi,
                                                                cloud: RunningEmulator) -> None:
    big_node(cluster, ["vsw-podj", "vsw-newj"])
    assert run(cli, cluster, cloud, "add", "vsw-newj", "--no-restart").exit_code == 0
    result = run(cli, cluster, cloud, "remove", "vsw-newj", "--timeout", "10s")
    assert result.exit_code == 0, result.stderr
    assert "of 1 node(s): node-3\n" in result.stdout  # big-1 still uses it through eni-config-big
    assert vswitches(cluster, "eni-config-big") == {"cn-hangzhou-j": ["vsw-podj", "vsw-newj"]}


def test_zone_where_every_node_is_overridden_is_refused(cli: Cli, kube_api: RunningKubeApi,
                                                        cloud: RunningEmulator) -> None:
    seed_cluster(kube_api)
    kube_api.server.store.delete(kube_api.server.resource_for({"apiVersion": "v1", "kind": "Node"}), "", "node-3")
    big_node(kube_api)
    result = run(cli, kube_api, cloud, "add", "vsw-newj")
    assert result.exit_code == 2
    assert ("every node of zone cn-hangzhou-j (big-1) takes its vSwitches from ConfigMap(s) eni-config-big (node "
            "label terway-config): no node would use vsw-newj") in result.stderr
    assert "--all-configmaps" in result.stderr.split("hint:")[1]
    assert vswitches(kube_api)["cn-hangzhou-j"] == ["vsw-podj"]


def test_list_counts_only_the_nodes_that_use_each_vswitch(cli: Cli, cluster: RunningKubeApi,
                                                          cloud: RunningEmulator) -> None:
    big_node(cluster, ["vsw-newj"])
    listing = run(cli, cluster, cloud, "list")
    assert listing.stdout.splitlines()[:3] == [
        "ZONE           VSWITCH   CIDR             FREE-IPS  NODES",
        "cn-hangzhou-i  vsw-podi  192.168.32.0/19      8188      2",
        "cn-hangzhou-j  vsw-podj  192.168.96.0/19      8188      1",
    ]
    big = run(cli, cluster, cloud, "list", "--configmap", "eni-config-big")
    assert "cn-hangzhou-j  vsw-newj  192.168.160.0/19      8188      1" in big.stdout
