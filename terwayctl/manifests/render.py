"""Render the install manifests: packaged jinja2 templates in, plain Kubernetes objects out.

No I/O besides reading the packaged templates (the top-level `templates/` folder, shipped as `terwayctl.templates`). The output is
deterministic: the same Values give the same objects and the same YAML bytes.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from terwayctl.core import defaults
from terwayctl.manifests.values import Values

if TYPE_CHECKING:
    import jinja2

SERVICE_ACCOUNT = "terway"
CONFIG_MOUNT = "/etc/eni"
CNI_CONFLIST_KEY = "10-terway.conflist"
CNI_NETWORK_NAME = "terway"
CNI_VERSION = "1.0.0"
ENI_CONF_VERSION = "1"
HOST_PATHS = {
    "run": "/var/run/eni",
    "state": "/var/lib/cni/terway",
    "cni_conf": "/etc/cni/net.d",
    "cni_bin": "/opt/cni/bin",
    "netns": "/var/run/netns",
}
# Where the node image keeps what the init container copies to the host (docs/image.md).
IMAGE_PATHS = {
    "shim": "/usr/local/libexec/terwayctl/terway",
    "plugins": "/usr/lib/cni",
}
DEVICE_PLUGIN_PATH = "/var/lib/kubelet/device-plugins"
"""kubelet's device-plugin directory: the daemon registers aliyun/eni there (exclusive ENI mode)."""
LABELS = {"app.kubernetes.io/name": "terway", "app.kubernetes.io/managed-by": "terwayctl"}
TEMPLATES = (
    "01-serviceaccount.yaml.j2",
    "02-clusterrole.yaml.j2",
    "03-clusterrolebinding.yaml.j2",
    "04-configmap.yaml.j2",
    "05-daemonset.yaml.j2",
)
# NetworkPolicy (values.network_policy): Cilium in CNI chaining mode `terway-chainer` beside the
# daemon, as upstream Terway's chart and terway-cli (AliyunContainerService/terway @89aadf8:
# charts/terway/templates/terwayd/{daemonset,clusterrole}.yaml, cmd/terway-cli/{cni,policy}.go).
POLICY_TEMPLATES = ("policy-clusterrole.yaml.j2", "policy-clusterrolebinding.yaml.j2")
POLICY_CRD_TEMPLATE = "policy-crd.yaml.j2"
POLICY_NAME = "terway-policy"
POLICY_CHAIN_NAME = "terway-chainer"
"""The conflist's network name with policy: cilium-cni picks its chainer by the network name."""
POLICY_HEALTH_PORT = 9099
POLICY_CNI = {"type": "cilium-cni", "enable-debug": False, "log-file": "/var/run/cilium/cilium-cni.log",
              "data-path": "veth"}
"""The entry upstream's `terway-cli cni` appends after terway (mergeConfigList)."""
# The CustomResourceDefinitions the chart ships (kind, scope), group crd.projectcalico.org, v1.
POLICY_CRDS = (
    ("FelixConfiguration", "Cluster"),
    ("BGPConfiguration", "Cluster"),
    ("IPPool", "Cluster"),
    ("HostEndpoint", "Cluster"),
    ("ClusterInformation", "Cluster"),
    ("GlobalNetworkPolicy", "Cluster"),
    ("GlobalNetworkSet", "Cluster"),
    ("NetworkPolicy", "Namespaced"),
)
POLICY_CRD_GROUP = "crd.projectcalico.org"
# cilium-agent's flags as upstream's `terway-cli policy` (runCilium) passes them for the veth
# datapath with NetworkPolicy on.
POLICY_AGENT_ARGS = (
    "--routing-mode=native",
    "--cni-chaining-mode=terway-chainer",
    "--enable-ipv4-masquerade=false",
    "--enable-ipv6-masquerade=false",
    "--disable-envoy-version-check=true",
    "--local-router-ipv4=169.254.10.1",
    "--local-router-ipv6=fe80:2400:3200:baba::1",
    "--enable-local-node-route=false",
    "--enable-endpoint-health-checking=false",
    "--enable-health-checking=false",
    "--enable-service-topology=true",
    "--k8s-heartbeat-timeout=0",
    "--enable-session-affinity=true",
    "--install-iptables-rules=true",
    "--enable-l7-proxy=false",
    "--ipam=delegated-plugin",
    "--enable-bandwidth-manager=true",
    f"--agent-health-port={POLICY_HEALTH_PORT}",
    "--enable-tcx=false",
    "--enable-l2-announcements=false",
    "--enable-dynamic-config=false",
    "--enable-bgp-control-plane=false",
    "--enable-policy=default",
    "--enable-endpoint-routes=true",
    "--enable-l2-neigh-discovery=false",
    "--terway-host-stack-cidr=169.254.20.10/32",
)
POLICY_PATHS = {
    "bpf": "/sys/fs/bpf",
    "cilium_run": "/var/run/cilium",
    "lib_modules": "/lib/modules",
    "xtables_lock": "/run/xtables.lock",
    "policy_cni": "/policy-cni",
    "cilium_cni_in_image": "/usr/bin/cilium-cni",
}


def eni_conf(values: Values) -> dict[str, Any]:
    """The eni_conf object of the eni-config ConfigMap (docs/render.md), keys in a fixed order."""
    conf: dict[str, Any] = {"version": ENI_CONF_VERSION}
    if values.region_id:
        conf["region_id"] = values.region_id
    conf["vswitches"] = values.vswitch_map
    conf["security_groups"] = list(values.security_groups)
    conf["service_cidr"] = values.service_cidr
    conf["max_pool_size"] = values.pool.max_size
    conf["min_pool_size"] = values.pool.min_size
    if values.pool.sync_period:
        conf["ip_pool_sync_period"] = values.pool.sync_period
    conf["vswitch_selection_policy"] = values.vswitch_selection_policy
    conf["ip_stack"] = values.ip_stack
    if values.enable_eni_trunking:
        conf["enable_eni_trunking"] = True
    if values.credential_path:
        conf["credential_path"] = values.credential_path
    return conf


def conflist(values: Values) -> dict[str, Any]:
    """The `10-terway.conflist` CNI network configuration: terway, then portmap for hostPort.

    Bandwidth has one owner, the terway plugin (as upstream Terway's chart): with `bandwidth` it
    declares the `bandwidth` capability and shapes the pod itself (docs/cni.md); the chained
    `bandwidth` plugin is never added, so a pod is shaped exactly once."""
    terway: dict[str, Any] = {"type": "terway"}
    if values.bandwidth:
        terway["capabilities"] = {"bandwidth": True}
    if values.host_port:
        # hostPort replies must leave through the interface the request came in on.
        terway["symmetric_routing"] = True
    plugins: list[dict[str, Any]] = [terway]
    if values.host_port:
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True})
    if values.network_policy:
        # NetworkPolicy: cilium-cni last, under the chainer's network name (upstream mergeConfigList).
        plugins.append(dict(POLICY_CNI))
        return {"cniVersion": CNI_VERSION, "name": POLICY_CHAIN_NAME, "plugins": plugins}
    return {"cniVersion": CNI_VERSION, "name": CNI_NETWORK_NAME, "plugins": plugins}


def render_objects(values: Values) -> list[dict[str, Any]]:
    """Every object to install, in apply order: ServiceAccount, RBAC, ConfigMap, DaemonSet."""
    import yaml

    environment = _environment()
    context = _context(values)
    objects: list[dict[str, Any]] = []
    jobs: list[tuple[str, dict[str, Any]]] = [(name, context) for name in TEMPLATES]
    if values.network_policy:
        # The policy RBAC and CRDs go before the ConfigMap and the DaemonSet that need them.
        policy = [(name, context) for name in POLICY_TEMPLATES]
        policy += [(POLICY_CRD_TEMPLATE, {**context, "crd": _crd(kind, scope)}) for kind, scope in POLICY_CRDS]
        jobs[3:3] = policy
    for name, job_context in jobs:
        text = environment.get_template(name).render(job_context)
        document = yaml.safe_load(text)
        if not isinstance(document, dict):  # pragma: no cover - a broken template, caught by the tests
            raise RuntimeError(f"template {name} did not render one object")
        objects.append(document)
    return objects


def _crd(kind: str, scope: str) -> dict[str, str]:
    singular = kind.lower()
    plural = singular[:-1] + "ies" if singular.endswith("y") else singular + "s"
    return {"kind": kind, "scope": scope, "plural": plural, "singular": singular,
            "name": f"{plural}.{POLICY_CRD_GROUP}", "group": POLICY_CRD_GROUP}


def render_yaml(values: Values) -> str:
    """The objects as one multi-document YAML stream, each document opened by `---`."""
    return "".join(dump_object(obj) for obj in render_objects(values))


def render_files(values: Values) -> list[tuple[str, str]]:
    """(file name, YAML text) per object, e.g. ('01-serviceaccount-terway.yaml', '---\\n...')."""
    return [(object_file_name(i, obj), dump_object(obj)) for i, obj in enumerate(render_objects(values), start=1)]


def object_file_name(index: int, obj: dict[str, Any]) -> str:
    return f"{index:02d}-{str(obj['kind']).lower()}-{obj['metadata']['name']}.yaml"


def dump_object(obj: dict[str, Any]) -> str:
    """One YAML document; multi-line strings (the JSON in the ConfigMap) as literal blocks."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: yaml.SafeDumper, data: str) -> Any:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, represent_str)
    text = yaml.dump(obj, Dumper=Dumper, sort_keys=False, default_flow_style=False, width=4096, allow_unicode=True)
    return "---\n" + str(text)


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("terwayctl.templates", ""),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _context(values: Values) -> dict[str, Any]:
    selector = {"app": values.daemonset_name}
    return {
        "values": values,
        "labels": dict(LABELS),
        "daemonset_labels": {**selector, **LABELS},
        "pod_labels": {**selector, **LABELS},
        "selector": selector,
        "service_account": SERVICE_ACCOUNT,
        "config_map": defaults.ENI_CONFIG_NAME,
        "config_mount": CONFIG_MOUNT,
        "eni_conf_key": defaults.ENI_CONF_KEY,
        "eni_conf": json.dumps(eni_conf(values), indent=2) + "\n",
        "conflist": json.dumps(conflist(values), indent=2) + "\n",
        "paths": HOST_PATHS,
        "image_paths": IMAGE_PATHS,
        "device_plugin_path": DEVICE_PLUGIN_PATH,
        "policy": {"name": POLICY_NAME, "paths": POLICY_PATHS, "args": list(POLICY_AGENT_ARGS),
                   "health_port": POLICY_HEALTH_PORT, "chaining_mode": POLICY_CHAIN_NAME},
    }


def render_warnings(values: Values) -> list[str]:
    """What `render` and `apply` say on stderr (one `warning:` line each) about these values."""
    if values.network_policy:
        return []
    return ["network_policy is off: NetworkPolicy objects will not be enforced (no policy engine runs); "
            "--set network_policy=true adds the Cilium policy container (docs/render.md)"]
