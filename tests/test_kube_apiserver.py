"""The test API server (terwayctl/lab/kubeapi) against the real `kubernetes` client over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from terwayctl.lab.kubeapi.seed import daemonset, node, pod
from tests.fixtures.kube import RunningKubeApi


@pytest.fixture
def api(kube_api: RunningKubeApi) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kube_api.kubeconfig), client_configuration=configuration,
                            persist_config=False)
    api_client = client.ApiClient(configuration)
    yield api_client
    api_client.close()


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_configmap_crud_and_resource_versions(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    created = v1.create_namespaced_config_map("kube-system", {"metadata": {"name": "cm"}, "data": {"a": "1"}})
    assert created.metadata.resource_version
    with pytest.raises(ApiException) as exists:
        v1.create_namespaced_config_map("kube-system", {"metadata": {"name": "cm"}})
    assert exists.value.status == 409 and status_of(exists.value)["reason"] == "AlreadyExists"
    stale = v1.read_namespaced_config_map("cm", "kube-system")
    stale.data = {"a": "2"}
    fresh = v1.replace_namespaced_config_map("cm", "kube-system", stale)
    assert int(fresh.metadata.resource_version) > int(created.metadata.resource_version)
    stale.data = {"a": "3"}
    with pytest.raises(ApiException) as conflict:
        v1.replace_namespaced_config_map("cm", "kube-system", stale)
    assert conflict.value.status == 409 and status_of(conflict.value)["reason"] == "Conflict"
    v1.delete_namespaced_config_map("cm", "kube-system")
    with pytest.raises(ApiException) as missing:
        v1.read_namespaced_config_map("cm", "kube-system")
    assert missing.value.status == 404 and status_of(missing.value)["reason"] == "NotFound"


def test_unknown_namespace_is_not_found(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).create_namespaced_secret("nowhere", {"metadata": {"name": "s"}})
    assert caught.value.status == 404


def test_patch_types(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "p"}, "data": {"a": "1", "b": "2"}})
    v1.patch_namespaced_config_map("p", "default", {"metadata": {"annotations": {"x": "y"}}})  # strategic merge
    merged = v1.patch_namespaced_config_map("p", "default", {"data": {"a": None, "c": "3"}},
                                            _content_type="application/merge-patch+json")
    assert merged.data == {"b": "2", "c": "3"} and merged.metadata.annotations == {"x": "y"}
    patched = v1.patch_namespaced_config_map("p", "default", [
        {"op": "test", "path": "/data/b", "value": "2"}, {"op": "replace", "path": "/data/b", "value": "9"},
        {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}},
    ])
    assert patched.data["b"] == "9" and patched.metadata.labels == {"k": "v"}
    with pytest.raises(ApiException) as failed:
        v1.patch_namespaced_config_map("p", "default", [{"op": "test", "path": "/data/b", "value": "0"}])
    assert failed.value.status == 422


def test_dry_run_changes_nothing(api: client.ApiClient, kube_api: RunningKubeApi) -> None:
    v1 = client.CoreV1Api(api)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "d"}, "data": {"a": "1"}}, dry_run="All")
    with pytest.raises(ApiException):
        v1.read_namespaced_config_map("d", "default")
    v1.create_namespaced_config_map("default", {"metadata": {"name": "d"}, "data": {"a": "1"}})
    before = kube_api.get("v1", "ConfigMap", "d", "default")
    result = v1.patch_namespaced_config_map("d", "default", {"data": {"a": "2"}}, dry_run="All")
    assert result.data == {"a": "2"}
    assert kube_api.get("v1", "ConfigMap", "d", "default") == before
    with pytest.raises(ApiException) as bad:
        v1.patch_namespaced_config_map("d", "default", {"data": {"a": "2"}}, dry_run="Some")
    assert bad.value.status == 400


def test_selectors(api: client.ApiClient, kube_api: RunningKubeApi) -> None:
    kube_api.create(node("n1", "ecs.g7.xlarge", "cn-hangzhou-i", pool="a"))
    kube_api.create(node("n2", "ecs.g7.xlarge", "cn-hangzhou-j", pool="b"))
    kube_api.create(pod("p1", "n1"))
    kube_api.create(pod("p2", "n2", namespace="kube-system", host_network=True))
    kube_api.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "default"},
                     "involvedObject": {"kind": "Pod", "name": "p1"}, "reason": "Failed", "message": "boom"})
    v1 = client.CoreV1Api(api)
    assert [n.metadata.name for n in v1.list_node(label_selector="pool in (a,c)").items] == ["n1"]
    assert [n.metadata.name for n in v1.list_node(label_selector="pool!=a").items] == ["n2"]
    assert [n.metadata.name for n in v1.list_node(label_selector="!pool").items] == []
    assert [n.metadata.name for n in v1.list_node(field_selector="metadata.name=n2").items] == ["n2"]
    assert [p.metadata.name for p in v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=n2").items] == ["p2"]
    events = v1.list_namespaced_event("default", field_selector="involvedObject.name=p1").items
    assert [e.reason for e in events] == ["Failed"]


def test_dynamic_client_discovery_and_server_side_apply(api: client.ApiClient, tmp_path: Path,
                                                         kube_api: RunningKubeApi) -> None:
    dyn = DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    resource = dyn.resources.get(api_version="apps/v1", kind="DaemonSet")
    body = daemonset()
    created = dyn.server_side_apply(resource, body=body, field_manager="terwayctl")
    assert created.metadata.generation == 1
    assert created.metadata.managedFields[0].manager == "terwayctl"
    again = dyn.server_side_apply(resource, body=body, field_manager="terwayctl")
    assert again.metadata.resourceVersion == created.metadata.resourceVersion  # no-op apply
    # another manager changes the image: applying the old image conflicts unless forced
    apps = client.AppsV1Api(api)
    apps.patch_namespaced_daemon_set("terway-eniip", "kube-system", [
        {"op": "replace", "path": "/spec/template/spec/containers", "value": [{"name": "terway", "image": "x:2"}]}],
        field_manager="kubectl-edit")
    with pytest.raises(ApiException) as conflict:
        dyn.server_side_apply(resource, body=body, field_manager="terwayctl")
    assert conflict.value.status == 409 and "kubectl-edit" in status_of(conflict.value)["message"]
    forced = dyn.server_side_apply(resource, body=body, field_manager="terwayctl", force_conflicts=True)
    assert forced.spec.template.spec.containers[0].image == "terway:v1"
    assert forced.metadata.generation == 3
    # fields dropped from the applied config are removed
    slim = daemonset()
    slim["metadata"]["labels"] = {"a": "b"}
    dyn.server_side_apply(resource, body=slim, field_manager="terwayctl")
    del slim["metadata"]["labels"]
    result = dyn.server_side_apply(resource, body=slim, field_manager="terwayctl")
    assert "labels" not in result.metadata.to_dict() or not result.metadata.labels
    for kind, api_version in (("ClusterRole", "rbac.authorization.k8s.io/v1"), ("ServiceAccount", "v1")):
        assert dyn.resources.get(api_version=api_version, kind=kind)


def test_apply_requires_a_field_manager(api: client.ApiClient, tmp_path: Path) -> None:
    dyn = DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    resource = dyn.resources.get(api_version="v1", kind="ConfigMap")
    with pytest.raises(ApiException) as caught:
        dyn.server_side_apply(resource, body={"apiVersion": "v1", "kind": "ConfigMap",
                                              "metadata": {"name": "x", "namespace": "default"}})
    assert caught.value.status == 422


def test_daemonset_controller_modes(api: client.ApiClient, kube_api: RunningKubeApi) -> None:
    for name in ("n1", "n2"):
        kube_api.create(node(name, "ecs.g7.xlarge", "cn-hangzhou-i"))
    kube_api.controller.mode = "stuck"
    kube_api.controller.unready_nodes = {"n2"}
    kube_api.create(daemonset())
    ds = kube_api.get("apps/v1", "DaemonSet", "terway-eniip", "kube-system")
    assert ds["status"]["numberReady"] == 1 and ds["status"]["desiredNumberScheduled"] == 2
    pods = kube_api.list("v1", "Pod", "kube-system", "app=terway-eniip")
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["n1", "n2"]
    kube_api.server.roll_daemonset("kube-system", "terway-eniip")
    ds = kube_api.get("apps/v1", "DaemonSet", "terway-eniip", "kube-system")
    assert ds["status"]["numberReady"] == 2
