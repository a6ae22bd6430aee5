"""terwayctl.manifests.render: the objects, what each value toggles, determinism, schema validity."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_validate import utils as kv

from terwayctl.manifests import conflist, eni_conf, load_values, render_files, render_objects, render_yaml

BASE = ["security_groups=sg-bp1aaa", "vswitches.cn-hangzhou-i=vsw-bp1aaa"]
FULL = [
    *BASE,
    "mode=eni",
    "region_id=cn-hangzhou",
    "ip_stack=ipv4",
    "service_cidr=172.21.0.0/20",
    "host_port=true",
    "bandwidth=true",
    "network_policy=false",
    "pool.sync_period=30s",
    "credentials.secret=terway-credentials",
]
# Every Kubernetes minor version kubernetes-validate ships from 1.28 up (1.28 to 1.37 with 1.37.0).
KUBERNETES_VERSIONS = sorted({kv.major_minor(v) for v in kv.all_versions() if kv.major_minor(v) >= kv.major_minor("1.28")})


def objects(*sets: str) -> list[dict[str, Any]]:
    return render_objects(load_values(None, [*BASE, *sets]))


def by_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind)


def config(objs: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = by_kind(objs, "ConfigMap")["data"]
    return data


def daemon_pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = by_kind(objs, "DaemonSet")["spec"]["template"]["spec"]
    return spec


def test_objects_in_apply_order() -> None:
    objs = objects()
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("ServiceAccount", "terway"),
        ("ClusterRole", "terway"),
        ("ClusterRoleBinding", "terway"),
        ("ConfigMap", "eni-config"),
        ("DaemonSet", "terway-eniip"),
    ]
    assert all(o["metadata"].get("namespace", "kube-system") == "kube-system" for o in objs)


def test_file_names() -> None:
    names = [name for name, _ in render_files(load_values(None, BASE))]
    assert names == [
        "01-serviceaccount-terway.yaml",
        "02-clusterrole-terway.yaml",
        "03-clusterrolebinding-terway.yaml",
        "04-configmap-eni-config.yaml",
        "05-daemonset-terway-eniip.yaml",
    ]


def test_render_is_deterministic() -> None:
    first = render_yaml(load_values(None, FULL)).encode()
    second = render_yaml(load_values(None, list(FULL))).encode()
    assert first == second
    assert render_objects(load_values(None, FULL)) == render_objects(load_values(None, FULL))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("sets", [BASE, FULL], ids=["default", "full"])
def test_every_object_validates(version: str, sets: list[str]) -> None:
    for obj in render_objects(load_values(None, sets)):
        assert kv.validate(obj, version, strict=True) == version


def test_validated_range_reaches_the_newest_schema() -> None:
    assert KUBERNETES_VERSIONS[0] == "1.28"
    assert KUBERNETES_VERSIONS[-1] == kv.major_minor(kv.latest_version())
    assert "1.37" in KUBERNETES_VERSIONS


def test_rbac_rules() -> None:
    rules = by_kind(objects(), "ClusterRole")["rules"]
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    for resource in ["nodes", "pods", "namespaces", "configmaps", "events", "secrets"]:
        assert {("", resource, "get"), ("", resource, "list"), ("", resource, "watch")} <= granted
    assert {("", "pods", "patch"), ("", "pods", "update"), ("", "nodes", "patch"), ("", "nodes", "update")} <= granted
    assert ("", "events", "create") in granted
    assert ("coordination.k8s.io", "leases", "update") in granted
    assert {("network.alibabacloud.com", "*", v) for v in ["get", "list", "watch", "create", "update", "patch"]} <= granted
    binding = by_kind(objects(), "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "terway", "namespace": "kube-system"}]


def test_default_eni_conf_and_conflist() -> None:
    data = config(objects())
    assert json.loads(data["eni_conf"]) == {
        "version": "1",
        "vswitches": {"cn-hangzhou-i": ["vsw-bp1aaa"]},
        "security_groups": ["sg-bp1aaa"],
        "service_cidr": "172.21.0.0/20",
        "max_pool_size": 5,
        "min_pool_size": 0,
        "vswitch_selection_policy": "ordered",
        "ip_stack": "ipv4",
    }
    assert json.loads(data["10-terway.conflist"]) == {"cniVersion": "1.0.0", "name": "terway", "plugins": [{"type": "terway"}]}
    assert data["disable_network_policy"] == "true"  # network_policy defaults to off, as upstream's chart
    assert list(data) == ["eni_conf", "10-terway.conflist", "disable_network_policy"]


def test_optional_eni_conf_keys() -> None:
    conf = json.loads(config(objects(*FULL[len(BASE):]))["eni_conf"])
    assert list(conf) == [
        "version", "region_id", "vswitches", "security_groups", "service_cidr", "max_pool_size", "min_pool_size",
        "ip_pool_sync_period", "vswitch_selection_policy", "ip_stack", "credential_path",
    ]
    assert conf["region_id"] == "cn-hangzhou" and conf["ip_pool_sync_period"] == "30s"
    assert "enable_eni_trunking" not in conf  # true is refused (tests/test_render_refusals.py)


def test_host_port_chains_portmap_with_symmetric_routing() -> None:
    plugins = json.loads(config(objects("host_port=true"))["10-terway.conflist"])["plugins"]
    assert [p["type"] for p in plugins] == ["terway", "portmap"]
    assert plugins[0]["symmetric_routing"] is True
    assert plugins[1] == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}


def test_bandwidth_is_owned_by_the_terway_plugin() -> None:
    """One owner (docs/cni.md): terway declares the capability and shapes; no chained bandwidth."""
    plugins = json.loads(config(objects("bandwidth=true"))["10-terway.conflist"])["plugins"]
    assert plugins == [{"type": "terway", "capabilities": {"bandwidth": True}}]
    both = json.loads(config(objects("bandwidth=true", "host_port=true"))["10-terway.conflist"])["plugins"]
    assert [p["type"] for p in both] == ["terway", "portmap"]
    assert both[0]["capabilities"] == {"bandwidth": True}
    without = json.loads(config(objects())["10-terway.conflist"])["plugins"]
    assert without == [{"type": "terway"}]


def test_eni_mode_renders_terway_eni() -> None:
    objs = objects("mode=eni")
    ds = by_kind(objs, "DaemonSet")
    assert ds["metadata"]["name"] == "terway-eni"
    assert ds["spec"]["selector"]["matchLabels"] == {"app": "terway-eni"}
    assert ds["spec"]["template"]["metadata"]["labels"]["app"] == "terway-eni"
    assert daemon_pod(objs)["containers"][0]["command"] == [
        "terwayctl", "--namespace", "kube-system", "daemon", "--mode", "eni",
    ]


def test_ip_stack_is_written_as_ipv4() -> None:
    assert json.loads(config(objects("ip_stack=ipv4"))["eni_conf"])["ip_stack"] == "ipv4"


def test_network_policy_off() -> None:
    assert config(objects("network_policy=off"))["disable_network_policy"] == "true"


def test_namespace_everywhere() -> None:
    objs = objects("namespace=terway-system")
    assert {o["metadata"].get("namespace") for o in objs} == {"terway-system", None}
    assert by_kind(objs, "ClusterRoleBinding")["subjects"][0]["namespace"] == "terway-system"


def test_daemonset_shape() -> None:
    objs = objects()
    ds = by_kind(objs, "DaemonSet")
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}}
    pod = daemon_pod(objs)
    assert pod["hostNetwork"] is True
    assert pod["hostPID"] is True  # /proc/<pid>/ns/net paths when no descriptor is passed
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["serviceAccountName"] == "terway"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [
        {"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]},
        {"key": "k8s.aliyun.com/ignore-by-terway", "operator": "NotIn", "values": ["true"]},
    ]}]
    init = pod["initContainers"][0]
    assert init["command"] == ["terwayctl", "cni", "install", "--conflist", "/etc/eni/10-terway.conflist",
                               "--bin-dir", "/opt/cni/bin", "--conf-dir", "/etc/cni/net.d",
                               "--shim", "/usr/local/libexec/terwayctl/terway", "--plugin-dir", "/usr/lib/cni"]
    assert {m["mountPath"] for m in init["volumeMounts"]} == {"/etc/eni", "/opt/cni/bin", "/etc/cni/net.d"}
    daemon = pod["containers"][0]
    # no --config: the daemon reads eni-config (and the node's terway-config override) from the API server
    assert daemon["command"] == ["terwayctl", "--namespace", "kube-system", "daemon", "--mode", "eniip"]
    with_endpoint = daemon_pod(objects("endpoint=https://ecs-vpc.cn-hangzhou.aliyuncs.com"))["containers"][0]
    assert with_endpoint["command"][3:5] == ["--endpoint", "https://ecs-vpc.cn-hangzhou.aliyuncs.com"]
    assert daemon["readinessProbe"]["exec"]["command"] == ["terwayctl", "daemon", "status"]
    assert daemon["livenessProbe"]["exec"]["command"] == ["terwayctl", "daemon", "status"]
    assert daemon["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    assert daemon["env"][0] == {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
    mounts = {m["mountPath"]: m for m in daemon["volumeMounts"]}
    assert "/etc/eni" not in mounts  # the daemon reads eni-config from the API server, not a file
    assert {"/var/run/eni", "/var/lib/cni/terway", "/etc/cni/net.d"} <= set(mounts)
    assert mounts["/var/run/netns"]["mountPropagation"] == "HostToContainer"
    host = {v["hostPath"]["path"]: v["hostPath"]["type"] for v in pod["volumes"] if "hostPath" in v}
    assert host == {
        "/var/run/netns": "DirectoryOrCreate",
        "/var/run/eni": "DirectoryOrCreate",
        "/var/lib/cni/terway": "DirectoryOrCreate",
        "/etc/cni/net.d": "DirectoryOrCreate",
        "/opt/cni/bin": "DirectoryOrCreate",
    }
    assert {"name": "eni-config", "configMap": {"name": "eni-config"}} in pod["volumes"]
    assert not any("secret" in v for v in pod["volumes"])


def test_image_and_resources_values() -> None:
    objs = objects("image=registry.example.com:5000/team/terwayctl:v9", "image_pull_policy=Always",
                   "resources.memory_limit=1Gi", "resources.cpu_request=0.5")
    pod = daemon_pod(objs)
    for container in [*pod["initContainers"], *pod["containers"]]:
        assert container["image"] == "registry.example.com:5000/team/terwayctl:v9"
        assert container["imagePullPolicy"] == "Always"
    assert pod["containers"][0]["resources"]["limits"] == {"memory": "1Gi"}
    assert pod["containers"][0]["resources"]["requests"]["cpu"] == "0.5"


def test_secret_reference_mounts_the_secret_and_sets_credential_path() -> None:
    objs = objects("credentials.secret=terway-credentials")
    pod = daemon_pod(objs)
    volume = next(v for v in pod["volumes"] if v["name"] == "credentials")
    assert volume["secret"]["secretName"] == "terway-credentials"
    assert volume["secret"]["defaultMode"] == 0o400
    assert [i["key"] for i in volume["secret"]["items"]] == ["access_key", "access_secret"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "credentials")
    assert mount == {"name": "credentials", "mountPath": "/etc/terway/credentials", "readOnly": True}
    conf = json.loads(config(objs)["eni_conf"])
    assert conf["credential_path"] == "/etc/terway/credentials"
    assert "access_key" not in conf and "access_secret" not in conf


def test_no_secret_material_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI5tEnvironmentKeyId")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "EnvironmentSecretValue")
    text = render_yaml(load_values(None, FULL))
    assert "LTAI5tEnvironmentKeyId" not in text and "EnvironmentSecretValue" not in text
    assert "access_key_id" not in text and "AccessKey" not in text


def test_helpers_match_the_configmap() -> None:
    values = load_values(None, FULL)
    data = config(render_objects(values))
    assert json.loads(data["eni_conf"]) == eni_conf(values)
    assert json.loads(data["10-terway.conflist"]) == conflist(values)


def test_yaml_stream_round_trips() -> None:
    import yaml

    values = load_values(None, FULL)
    text = render_yaml(values)
    assert text.startswith("---\n")
    assert list(yaml.safe_load_all(text)) == render_objects(values)
    assert "eni_conf: |\n" in text
