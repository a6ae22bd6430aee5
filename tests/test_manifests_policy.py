"""NetworkPolicy in the manifests: the Cilium policy container, its RBAC, CRDs and conflist chain; the
device-plugin mount of exclusive-ENI mode. Every object validates against the Kubernetes schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_validate import utils as kv

from terwayctl.manifests import load_values, render_objects, render_warnings
from terwayctl.manifests.values import DEFAULT_POLICY_IMAGE
from tests.fixtures.kube import RunningKubeApi

BASE = ["security_groups=sg-bp1aaa"]
VERSIONS = sorted({kv.major_minor(v) for v in kv.all_versions() if kv.major_minor(v) >= kv.major_minor("1.28")})
CHART_CRDS = {  # charts/terway/templates/terwayd/daemonset.yaml @89aadf8
    "felixconfigurations", "bgpconfigurations", "ippools", "hostendpoints", "clusterinformations",
    "globalnetworkpolicies", "globalnetworksets", "networkpolicies",
}


def objects(*sets: str) -> list[dict[str, Any]]:
    return render_objects(load_values(None, [*BASE, *sets]))


def pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = next(o for o in objs if o["kind"] == "DaemonSet")["spec"]["template"]["spec"]
    return spec


def conflist(objs: list[dict[str, Any]]) -> dict[str, Any]:
    data = next(o for o in objs if o["kind"] == "ConfigMap")["data"]
    parsed: dict[str, Any] = json.loads(data["10-terway.conflist"])
    return parsed


def test_policy_on_renders_the_policy_objects_in_apply_order() -> None:
    objs = objects("network_policy=true")
    assert [(o["kind"], o["metadata"]["name"]) for o in objs][:5] == [
        ("ServiceAccount", "terway"), ("ClusterRole", "terway"), ("ClusterRoleBinding", "terway"),
        ("ClusterRole", "terway-policy"), ("ClusterRoleBinding", "terway-policy")]
    crds = [o for o in objs if o["kind"] == "CustomResourceDefinition"]
    assert {c["spec"]["names"]["plural"] for c in crds} == CHART_CRDS
    assert all(c["metadata"]["name"] == f"{c['spec']['names']['plural']}.crd.projectcalico.org" for c in crds)
    assert next(c for c in crds if c["spec"]["names"]["kind"] == "NetworkPolicy")["spec"]["scope"] == "Namespaced"
    assert [o["kind"] for o in objs][-2:] == ["ConfigMap", "DaemonSet"]
    binding = next(o for o in objs if o["kind"] == "ClusterRoleBinding" and o["metadata"]["name"] == "terway-policy")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "terway", "namespace": "kube-system"}]
    rules = next(o for o in objs if o["kind"] == "ClusterRole" and o["metadata"]["name"] == "terway-policy")["rules"]
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert {("networking.k8s.io", "networkpolicies", v) for v in ("get", "list", "watch")} <= granted
    assert ("cilium.io", "*", "*") in granted and ("crd.projectcalico.org", "*", "*") in granted
    assert ("discovery.k8s.io", "endpointslices", "watch") in granted


def test_policy_container_image_config_and_mounts() -> None:
    spec = pod(objects("network_policy=true"))
    names = [c["name"] for c in spec["containers"]]
    assert names == ["terway", "policy"]
    policy = spec["containers"][1]
    assert policy["image"] == DEFAULT_POLICY_IMAGE == "registry-cn-hangzhou.ack.aliyuncs.com/acs/terway:v1.16.7"
    assert policy["command"] == ["cilium-agent"]
    assert "--cni-chaining-mode=terway-chainer" in policy["args"]
    assert "--enable-policy=default" in policy["args"] and "--agent-health-port=9099" in policy["args"]
    env = {e["name"]: e for e in policy["env"]}
    assert env["CILIUM_CNI_CHAINING_MODE"]["value"] == "terway-chainer"
    assert policy["readinessProbe"]["tcpSocket"] == {"host": "127.0.0.1", "port": 9099}
    mounts = {m["name"]: m for m in policy["volumeMounts"]}
    assert mounts["bpf-maps"]["mountPath"] == "/sys/fs/bpf" and mounts["bpf-maps"]["mountPropagation"] == "HostToContainer"
    assert {"cilium-run", "lib-modules", "xtables-lock", "cni-conf"} <= set(mounts)
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["xtables-lock"]["hostPath"] == {"path": "/run/xtables.lock", "type": "FileOrCreate"}
    assert volumes["policy-cni"] == {"name": "policy-cni", "emptyDir": {}}
    inits = [c["name"] for c in spec["initContainers"]]
    assert inits.index("install-cilium-cni") < inits.index("install-cni")
    install = next(c for c in spec["initContainers"] if c["name"] == "install-cni")
    plugin = next(m for m in install["volumeMounts"] if m["name"] == "policy-cni")
    assert plugin == {"name": "policy-cni", "mountPath": "/usr/lib/cni/cilium-cni", "subPath": "cilium-cni",
                      "readOnly": True}
    custom = pod(objects("network_policy=true", "policy_image=registry.example.com/acs/terway:v1.17.0"))
    assert {c["image"] for c in custom["containers"] if c["name"] == "policy"} == {"registry.example.com/acs/terway:v1.17.0"}


def test_conflist_chains_cilium_after_terway_and_portmap() -> None:
    chain = conflist(objects("network_policy=true", "host_port=true"))
    assert chain["name"] == "terway-chainer"  # cilium-cni picks its chainer by the network name
    assert [p["type"] for p in chain["plugins"]] == ["terway", "portmap", "cilium-cni"]
    assert chain["plugins"][-1] == {"type": "cilium-cni", "enable-debug": False,
                                    "log-file": "/var/run/cilium/cilium-cni.log", "data-path": "veth"}
    off = conflist(objects("host_port=true"))
    assert off["name"] == "terway" and [p["type"] for p in off["plugins"]] == ["terway", "portmap"]


def test_policy_off_renders_none_of_it_and_warns() -> None:
    values = load_values(None, BASE)
    objs = render_objects(values)
    assert [o["kind"] for o in objs] == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"]
    spec = pod(objs)
    assert [c["name"] for c in spec["containers"]] == ["terway"]
    assert [c["name"] for c in spec["initContainers"]] == ["install-cni"]
    text = json.dumps(objs)
    assert "cilium" not in text and "bpf-maps" not in text
    assert next(o for o in objs if o["kind"] == "ConfigMap")["data"]["disable_network_policy"] == "true"
    assert render_warnings(values) == [
        "network_policy is off: NetworkPolicy objects will not be enforced (no policy engine runs); "
        "--set network_policy=true adds the Cilium policy container (docs/render.md)"]
    assert render_warnings(load_values(None, [*BASE, "network_policy=true"])) == []


def test_device_plugin_mount_in_exclusive_eni_mode_only() -> None:
    for mode, present in (("eni", True), ("eniip", False)):
        spec = pod(objects(f"mode={mode}"))
        terway = spec["containers"][0]
        mounts = {m["name"]: m["mountPath"] for m in terway["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert ("device-plugin" in mounts) is present and ("device-plugin" in volumes) is present
        if present:
            assert mounts["device-plugin"] == "/var/lib/kubelet/device-plugins"
            assert volumes["device-plugin"]["hostPath"]["path"] == "/var/lib/kubelet/device-plugins"


def test_bad_policy_image_is_refused() -> None:
    with pytest.raises(Exception, match="policy_image"):
        load_values(None, [*BASE, "policy_image=registry.example.com/acs/terway"])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("sets", [["network_policy=true"], ["network_policy=true", "mode=eni", "host_port=true"]],
                         ids=["eniip", "eni"])
def test_every_policy_object_validates(version: str, sets: list[str]) -> None:
    for obj in objects(*sets):
        assert kv.validate(obj, version, strict=True) == version


# --- apply: the same objects server-side applied to the test API server ----------------------------------


def test_apply_with_and_without_network_policy(cli: Any, kube_api: RunningKubeApi) -> None:
    sets = ("--set", "security_groups=sg-terway")
    off = cli("--kubeconfig", str(kube_api.kubeconfig), "apply", *sets)
    assert off.exit_code == 0, off.stderr
    assert off.stderr.startswith("warning: network_policy is off: NetworkPolicy objects will not be enforced")
    on = cli("--kubeconfig", str(kube_api.kubeconfig), "apply", *sets, "--set", "network_policy=true")
    assert on.exit_code == 0, on.stderr
    assert "warning" not in on.stderr
    created = [line for line in on.stdout.splitlines() if line.endswith(" created")]
    assert "customresourcedefinition/networkpolicies.crd.projectcalico.org created" in created
    assert {"clusterrole/terway-policy created", "clusterrolebinding/terway-policy created"} <= set(created)
    assert len([c for c in created if c.startswith("customresourcedefinition/")]) == 8
    ds = kube_api.get("apps/v1", "DaemonSet", "terway-eniip", "kube-system")
    assert [c["name"] for c in ds["spec"]["template"]["spec"]["containers"]] == ["terway", "policy"]
