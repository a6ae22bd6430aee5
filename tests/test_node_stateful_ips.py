"""Stable IPs for StatefulSet pods (docs/node.md, "Stable IPs for StatefulSet pods"; terwayctl/node/leases.py).

Without root: the decision (owner kinds, the pod-ip-reservation annotation), eni_conf
`stateful_ip_lease`, the store's lease table (atomic DEL-to-lease, a leased IP never allocated to
another pod, migration of an older store), `KubeCluster.pod` against the test API server.

As root (`vpc_lab`: the emulator through the real SDK, the daemon's real datapath in namespaces, the
test API server for the pods): a StatefulSet pod deleted and re-created gets its IP back, a
Deployment pod does not, other pods never get a leased IP while the lease lasts (the pool drained
so that it would otherwise be next), `daemon status` and `ipam check` show it, expiry releases it
(the pool then shrinks), and a subprocess daemon killed with SIGKILL between DEL and re-ADD keeps
the lease. The same story runs in the lab with its API server (`lab up --kube`) through the lab's
CLI in tests/test_lab_stateful.py; here on the node fixtures (`tests/fixtures/node.py`,
`tests/fixtures/kube.py`), with the daemon's internals at hand.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from terwayctl.cli.daemon import print_status
from terwayctl.core.errors import InvalidInput
from terwayctl.kube.client import KubeClient, connect, resource_path
from terwayctl.kube.errors import KubeNotFound
from terwayctl.lab.kubeapi.seed import configmap, node
from terwayctl.node.cluster import KubeCluster, PodMeta
from terwayctl.node.config import DEFAULT_STATEFUL_IP_LEASE, DaemonConfig, NodeIdentity, pool_settings
from terwayctl.node.leases import RESERVATION_ANNOTATION, StickyIps, sticky_reason
from terwayctl.node.metrics import parse_text
from terwayctl.node.pool import Eni, Limits, Pool
from terwayctl.node.store import Conflict, EniRecord, Lease, Owner, Store
from tests.fixtures.kube import RunningKubeApi
from tests.fixtures.node import ENI_CONF, Lab, Node, Pod, cloud_environ, wait_for

NODE = "node-1"
KINDS = frozenset({"statefulset"})

# --- the decision, pure ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("meta", "kinds", "reason"),
    [
        (PodMeta({}, ("StatefulSet",)), KINDS, "StatefulSet"),
        (PodMeta({}, ("ReplicaSet",)), KINDS, ""),  # a Deployment's pod
        (PodMeta({}, ()), KINDS, ""),  # a bare pod
        (None, KINDS, ""),  # not read (no API server, 404, error)
        (PodMeta({RESERVATION_ANNOTATION: "true"}, ("ReplicaSet",)), KINDS, "pod-ip-reservation"),
        (PodMeta({RESERVATION_ANNOTATION: "True"}, ()), KINDS, "pod-ip-reservation"),  # Go ParseBool
        (PodMeta({RESERVATION_ANNOTATION: "false"}, ("ReplicaSet",)), KINDS, ""),
        (PodMeta({}, ("CloneSet",)), KINDS | {"cloneset"}, "CloneSet"),  # custom_stateful_workload_kinds
        (PodMeta({}, ("CloneSet",)), KINDS, ""),
    ],
    ids=["statefulset", "replicaset", "no-owner", "unread", "annotation", "annotation-case", "annotation-false",
         "custom-kind", "custom-kind-not-configured"],
)
def test_which_pods_keep_their_ip(meta: PodMeta | None, kinds: frozenset[str], reason: str) -> None:
    assert sticky_reason(meta, kinds) == reason


def test_eni_conf_stateful_ip_lease_and_custom_kinds() -> None:
    assert pool_settings({}).stateful_ip_lease == DEFAULT_STATEFUL_IP_LEASE == 300.0  # upstream's 5 minutes
    assert pool_settings({"stateful_ip_lease": "10m"}).stateful_ip_lease == 600.0
    assert pool_settings({"stateful_ip_lease": "1.5s"}).stateful_ip_lease == 1.5
    assert pool_settings({"stateful_ip_lease": "0s"}).stateful_ip_lease == 0.0  # off
    assert pool_settings({"stateful_ip_lease": 0}).stateful_ip_lease == 0.0
    for bad in ("ten minutes", "-1m", True, "25h"):
        with pytest.raises(InvalidInput, match="stateful_ip_lease"):
            pool_settings({"stateful_ip_lease": bad})
    assert pool_settings({"custom_stateful_workload_kinds": [" CloneSet "]}).stateful_kinds == {"statefulset",
                                                                                                 "cloneset"}
    with pytest.raises(InvalidInput, match="custom_stateful_workload_kinds"):
        pool_settings({"custom_stateful_workload_kinds": "CloneSet"})


# --- the store ------------------------------------------------------------------------------------------

ENI = EniRecord("eni-1", "00:16:3e:00:00:01", "vsw-1", "10.0.32.0/19", "10.0.63.253", "10.0.32.1", 10)


def _owner(cid: str, name: str, sticky: str = "StatefulSet") -> Owner:
    return Owner(cid, "eth0", "", "default", name, f"uid-{cid}", sticky)


def _lease(ip: str, name: str, expires: float = 2e9) -> Lease:
    return Lease(ip, "default", name, "uid-c1", "StatefulSet", 1e9, expires)


def test_store_leases(tmp_path: Path) -> None:
    with Store(tmp_path / "daemon.sqlite") as store:
        store.add_eni(ENI, ["10.0.32.1", "10.0.32.2", "10.0.32.3"])
        store.allocate("10.0.32.2", _owner("c1", "web-0"), host_ifname="cali1", mode="veth")
        record = store.allocation_of("c1")
        assert record is not None and record.owner is not None and record.owner.sticky == "StatefulSet"
        assert store.release_to_lease("10.0.32.2", "someone-else", _lease("10.0.32.2", "web-0")) is None  # not the owner
        assert store.release_to_lease("10.0.32.2", "c1", _lease("10.0.32.2", "web-0")) == []
        assert store.allocation_of("c1") is None  # released and leased in one transaction
        assert [(x.ip, x.pod_name) for x in store.leases()] == [("10.0.32.2", "web-0")]
        with pytest.raises(Conflict):  # never to another pod while leased
            store.allocate("10.0.32.2", _owner("c2", "other", ""), host_ifname="cali2", mode="veth")
        with pytest.raises(Conflict):  # the lease is for default/web-0 only
            store.take_lease("10.0.32.2", _owner("c2", "web-1"), host_ifname="cali2", mode="veth")
        assert not store.end_lease("10.0.32.2", expired_at=1.5e9)  # not expired by then
        store.take_lease("10.0.32.2", _owner("c3", "web-0"), host_ifname="cali3", mode="veth")
        assert store.leases() == [] and store.allocation_of("c3") is not None
        # a second lease of the same pod replaces the first (its IP is idle again)
        store.release_to_lease("10.0.32.2", "c3", _lease("10.0.32.2", "web-0"))
        store.allocate("10.0.32.3", _owner("c4", "web-0"), host_ifname="cali4", mode="veth")
        assert store.release_to_lease("10.0.32.3", "c4", _lease("10.0.32.3", "web-0")) == ["10.0.32.2"]
        assert [x.ip for x in store.leases()] == ["10.0.32.3"]
        assert store.end_lease("10.0.32.3", expired_at=2e9)
        # an IP the store drops takes its lease along
        store.allocate("10.0.32.3", _owner("c5", "web-0"), host_ifname="cali5", mode="veth")
        store.release_to_lease("10.0.32.3", "c5", _lease("10.0.32.3", "web-0"))
        store.remove_eni("eni-1")
        assert store.leases() == []


def test_an_older_store_is_migrated(tmp_path: Path) -> None:
    """A store of the daemon before leases (schema 1: no leases table, no ips.sticky) opens, keeps
    its allocations and takes leases; `ipam check` (read-only) reads it before the migration too."""
    path = tmp_path / "daemon.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE enis (eni_id TEXT PRIMARY KEY, mac TEXT NOT NULL, vswitch_id TEXT NOT NULL, cidr TEXT NOT NULL,
            gateway TEXT NOT NULL, primary_ip TEXT NOT NULL, ip_limit INTEGER NOT NULL, created REAL NOT NULL);
        CREATE TABLE ips (ip TEXT PRIMARY KEY, eni_id TEXT NOT NULL REFERENCES enis(eni_id) ON DELETE CASCADE,
            container_id TEXT, ifname TEXT, netns TEXT, pod_namespace TEXT, pod_name TEXT, pod_uid TEXT,
            host_ifname TEXT, mode TEXT, allocated REAL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1');
        INSERT INTO enis VALUES ('eni-1', '00:16:3e:00:00:01', 'vsw-1', '10.0.32.0/19', '10.0.63.253', '10.0.32.1',
            10, 1.0);
        INSERT INTO ips VALUES ('10.0.32.1', 'eni-1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
        INSERT INTO ips VALUES ('10.0.32.2', 'eni-1', 'c1', 'eth0', '', 'default', 'web-0', 'u1', 'cali1', 'veth', 5.0);
    """)
    conn.commit()
    conn.close()
    with Store(path, readonly=True) as old:
        assert [r.owner.pod_name for r in old.allocations() if r.owner] == ["web-0"]
    with Store(path) as store:
        assert store.meta("schema") == "2"
        record = store.allocation_of("c1")
        assert record is not None and record.owner is not None and record.owner.sticky == ""
        assert store.release_to_lease("10.0.32.2", "c1", _lease("10.0.32.2", "web-0")) == []
        assert [x.ip for x in store.leases()] == ["10.0.32.2"]
    with Store(path) as again:  # opening twice migrates once
        assert again.meta("schema") == "2" and len(again.leases()) == 1


def test_sticky_ips_with_a_driven_clock(tmp_path: Path) -> None:
    """DEL keeps the IP (not idle, not allocated), ADD of the same namespace/name takes it back, a
    failed ADD puts the lease back, expiry at the lease's end (the test's clock) makes it idle."""
    now = [1000.0]
    with Store(tmp_path / "daemon.sqlite") as store:
        store.add_eni(ENI, ["10.0.32.1", "10.0.32.2"])
        config = DaemonConfig(identity=NodeIdentity("i-1", "zone-a"))
        pool = Pool(cloud=object(), store=store, config=config, limits=Limits(1, 10), vswitches={},  # type: ignore[arg-type]
                    security_groups=())
        pool.load([Eni(ENI, "eth1", {"10.0.32.1", "10.0.32.2"})], ["10.0.32.2"])
        sticky = StickyIps(store, pool, 60.0, clock=lambda: now[0])
        store.allocate("10.0.32.2", _owner("c1", "web-0"), host_ifname="cali1", mode="veth")
        record = store.allocation_of("c1")
        assert record is not None and sticky.keep(record)
        assert pool.leased == {"10.0.32.2"} and list(pool.idle) == ["10.0.32.1"] and not pool.allocated
        assert pool.counts()["terway_pool_leased_ips"] == 1
        assert sticky.status()[0]["expires_in"] == 60.0
        assert sticky.take(_owner("c2", "web-1"), lambda ip, eni: "cali2", "veth") is None  # another pod
        taken = sticky.take(_owner("c3", "web-0"), lambda ip, eni: "cali3", "veth")
        assert taken is not None and taken[0] == "10.0.32.2" and pool.allocated == {"10.0.32.2"}
        sticky.restore(taken[2], "c3")  # the ADD failed after it: leased again
        assert pool.leased == {"10.0.32.2"} and [x.ip for x in store.leases()] == ["10.0.32.2"]
        now[0] += 59.9
        assert sticky.expire() == [] and pool.leased == {"10.0.32.2"}
        now[0] += 0.1
        assert sticky.expire() == ["10.0.32.2"]
        assert not pool.leased and list(pool.idle) == ["10.0.32.1", "10.0.32.2"] and store.leases() == []
        store.allocate("10.0.32.2", _owner("c4", "api-x", ""), host_ifname="cali4", mode="veth")
        record = store.allocation_of("c4")
        assert record is not None and not sticky.keep(record)  # not sticky: released as usual by the caller


# --- the API server -------------------------------------------------------------------------------------


def _api_pod(name: str, owner_kind: str = "", node_name: str = NODE, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "annotations": dict(annotations)}
    if owner_kind:
        owner = "web" if owner_kind == "StatefulSet" else "api-5d8f"
        api = "apps/v1"
        meta["ownerReferences"] = [{"apiVersion": api, "kind": owner_kind, "name": owner, "uid": f"uid-{owner}",
                                    "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Running"}}


@pytest.fixture
def kube(kube_api: RunningKubeApi) -> Iterator[KubeClient]:
    with connect(str(kube_api.kubeconfig), request_timeout=5.0) as client:
        yield client


def test_kube_cluster_reads_owner_kinds(kube_api: RunningKubeApi, kube: KubeClient) -> None:
    kube_api.create(_api_pod("web-0", "StatefulSet", **{"k8s.aliyun.com/ingress-bandwidth": "1M"}))
    kube_api.create(_api_pod("api-5d8f-x", "ReplicaSet"))
    cluster = KubeCluster(kube, NODE)
    assert cluster.pod("default", "web-0") == PodMeta({"k8s.aliyun.com/ingress-bandwidth": "1M"}, ("StatefulSet",))
    assert cluster.pod("default", "api-5d8f-x").owner_kinds == ("ReplicaSet",)


# --- the daemon (root) ------------------------------------------------------------------------------------

LEASE_CONF = {**ENI_CONF, "min_pool_size": 0, "max_pool_size": 10, "stateful_ip_lease": "10m"}


def _recreate(kube_api: RunningKubeApi, kube: KubeClient, lab_node: Node, name: str, owner_kind: str) -> Pod:
    """The pod deleted from the API server (if there) and created again under the same name (a new
    uid, as the StatefulSet controller does), and its new sandbox."""
    with contextlib.suppress(KubeNotFound):
        kube.request("DELETE", resource_path("v1", "pods", "default", name), what=f"pods/{name}")
    obj = kube_api.create(_api_pod(name, owner_kind))
    return lab_node.pod(name, uid=obj["metadata"]["uid"])


def _add(lab_node: Node, pod: Pod) -> str:
    result = lab_node.cni("ADD", pod)
    assert result.code == 0, result.out
    return result.ip


def test_statefulset_pod_keeps_its_ip_deployment_pod_does_not(vpc_lab: Lab, kube_api: RunningKubeApi,
                                                              kube: KubeClient) -> None:
    lab_node = vpc_lab.node(0)
    kube_api.create(node(NODE, "ecs.g7.4xlarge", "cn-hangzhou-i"))
    daemon = lab_node.start(eni_conf=LEASE_CONF, cluster=KubeCluster(kube, NODE), node_name=NODE, gc_period=3600.0)
    assert daemon.pool is not None and daemon.store is not None
    pool, store = daemon.pool, daemon.store

    web = _recreate(kube_api, kube, lab_node, "web-0", "StatefulSet")
    api = _recreate(kube_api, kube, lab_node, "api-5d8f-x", "ReplicaSet")
    web_ip, api_ip = _add(lab_node, web), _add(lab_node, api)
    assert lab_node.cni("DEL", web).code == 0 and lab_node.cni("DEL", api).code == 0

    # the StatefulSet pod's IP is leased: not idle, not allocated; the Deployment pod's is idle
    assert [(x.ip, x.pod_namespace, x.pod_name, x.reason) for x in store.leases()] == [
        (web_ip, "default", "web-0", "StatefulSet")]
    assert web_ip in pool.leased and web_ip not in pool.idle and web_ip not in pool.allocated
    assert api_ip in pool.idle
    status = daemon.status()
    assert status["pool"]["leased"] == 1  # type: ignore[index]
    leases: Any = status["leases"]
    assert len(leases) == 1
    lease = leases[0]
    assert (lease["ip"], lease["pod"], lease["reason"]) == (web_ip, "default/web-0", "StatefulSet")
    assert 590 < lease["expires_in"] <= 600
    table = io.StringIO()
    print_status(json.loads(json.dumps(status)), table)
    assert "1 leased" in table.getvalue()
    assert any(line.split()[:3] == [web_ip, "default/web-0", "StatefulSet"] for line in table.getvalue().splitlines())
    assert parse_text(daemon.metrics.render())["terway_pool_leased_ips"] == 1
    check = lab_node.ipam_check()  # a leased IP is neither idle nor leaked: no mismatch, listed as leased
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"leased (kept for their pods, not idle): {web_ip} default/web-0 (StatefulSet" in check.stdout

    # other pods drain the idle IPs and one more (a refill): the leased IP would be next, never given
    others = [lab_node.pod() for _ in range(len(pool.idle) + 1)]
    other_ips = [_add(lab_node, p) for p in others]
    assert web_ip not in other_ips
    assert api_ip in other_ips  # the Deployment pod's IP went back to the pool and to another pod

    # both pods come back: the StatefulSet pod gets its IP, the Deployment pod another one
    web2 = _recreate(kube_api, kube, lab_node, "web-0", "StatefulSet")
    api2 = _recreate(kube_api, kube, lab_node, "api-5d8f-x", "ReplicaSet")
    assert _add(lab_node, web2) == web_ip
    assert _add(lab_node, api2) != api_ip
    assert store.leases() == [] and web_ip in pool.allocated and not pool.leased
    assert lab_node.cni("ADD", web2).ip == web_ip  # a repeated ADD as before
    for pod in [web2, api2, *others]:
        assert lab_node.cni("DEL", pod).code == 0
    assert [x.pod_name for x in store.leases()] == ["web-0"]  # leased again, with its pod's new uid
    assert store.leases()[0].pod_uid == web2.uid
    assert lab_node.ipam_check().returncode == 0


def test_no_lease_without_an_api_server(vpc_lab: Lab) -> None:
    lab_node = vpc_lab.node(0)
    daemon = lab_node.start(eni_conf=LEASE_CONF)
    web = lab_node.pod("web-0")
    web_ip = _add(lab_node, web)
    assert lab_node.cni("DEL", web).code == 0
    assert daemon.store is not None and daemon.pool is not None
    assert daemon.store.leases() == [] and web_ip in daemon.pool.idle


def test_lease_expiry_returns_the_ip_and_the_pool_shrinks(vpc_lab: Lab, kube_api: RunningKubeApi,
                                                          kube: KubeClient) -> None:
    lab_node = vpc_lab.node(0)
    kube_api.create(node(NODE, "ecs.g7.4xlarge", "cn-hangzhou-i"))
    conf = {**LEASE_CONF, "max_pool_size": 0, "stateful_ip_lease": "2s"}
    daemon = lab_node.start(eni_conf=conf, cluster=KubeCluster(kube, NODE), node_name=NODE, gc_period=3600.0)
    assert daemon.pool is not None and daemon.store is not None
    pool, store = daemon.pool, daemon.store
    first = lab_node.pod()
    _add(lab_node, first)  # the first ENI's primary IP (never shrunk)
    web = _recreate(kube_api, kube, lab_node, "web-0", "StatefulSet")
    web_ip = _add(lab_node, web)
    assert lab_node.cni("DEL", web).code == 0
    assert [x.ip for x in store.leases()] == [web_ip]  # kept although max_pool_size is 0
    assert wait_for(lambda: not store.leases() and web_ip not in pool.leased, timeout=20, step=0.1)
    # back in the pool, which then shrinks to max_pool_size: the IP is unassigned in the cloud
    assert wait_for(lambda: web_ip not in pool.ip_eni, timeout=30, step=0.1)
    assert web_ip not in {ip for ni in daemon.cloud.describe_network_interfaces(instance_id=lab_node.instance_id)
                          for ip in ni.private_ips}
    web2 = _recreate(kube_api, kube, lab_node, "web-0", "StatefulSet")
    _add(lab_node, web2)  # a new IP from the cloud (the emulator may assign the same address again)
    for pod in (first, web2):
        assert lab_node.cni("DEL", pod).code == 0


def test_kill_9_between_del_and_add_keeps_the_lease(vpc_lab: Lab, kube_api: RunningKubeApi,
                                                   kube: KubeClient) -> None:
    lab_node = vpc_lab.node(0)
    kube_api.create(configmap("eni-config", json.dumps(LEASE_CONF)))
    kube_api.create(node(NODE, "ecs.g7.4xlarge", "cn-hangzhou-i"))
    args = ("--node-name", NODE, "--gc-period", "1h")
    global_args = ["--kubeconfig", str(kube_api.kubeconfig)]
    lab_node.spawn(*args, global_args=global_args, with_config=False)
    env = cloud_environ(vpc_lab.url)
    status = [sys.executable, "-m", "terwayctl", "daemon", "--socket", str(lab_node.socket), "status"]

    def doc() -> dict[str, Any]:
        done = subprocess.run([*status, "-o", "json"], env=env, capture_output=True, text=True, timeout=30,
                              check=True)
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    web = _recreate(kube_api, kube, lab_node, "web-0", "StatefulSet")
    web_ip = _add(lab_node, web)
    assert lab_node.cni("DEL", web).code == 0
    assert [(x["ip"], x["pod"]) for x in doc()["leases"]] == [(web_ip, "default/web-0")]

    lab_node.kill()  # SIGKILL between DEL and the new pod's ADD
    lab_node.spawn(*args, global_args=global_args, with_config=False)
    after = doc()
    assert [(x["ip"], x["pod"]) for x in after["leases"]] == [(web_ip, "default/web-0")]
    assert after["pool"]["leased"] == 1 and after["allocations"] == []
    table = subprocess.run(status, env=env, capture_output=True, text=True, timeout=30, check=True).stdout
    assert "LEASED IP" in table and web_ip in table

    others = [lab_node.pod() for _ in range(after["pool"]["idle"] + 1)]
    assert web_ip not in [_add(lab_node, p) for p in others]
    web2 = _recreate(kube_api, kube, lab_node, "web-0", "StatefulSet")
    assert _add(lab_node, web2) == web_ip
    assert doc()["leases"] == []
    check = lab_node.ipam_check()
    assert check.returncode == 0, check.stdout + check.stderr
    for pod in [web2, *others]:
        assert lab_node.cni("DEL", pod).code == 0
    lab_node.kill(15)
