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
LABELS = {"app.kubernetes.io/name": "terway", "app.kubernetes.io/managed-by": "terwayctl"}
TEMPLATES = (
    "01-serviceaccount.yaml.j2",
    "02-clusterrole.yaml.j2",
    "03-clusterrolebinding.yaml.j2",
    "04-configmap.yaml.j2",
    "05-daemonset.yaml.j2",
)


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
    return {"cniVersion": CNI_VERSION, "name": CNI_NETWORK_NAME, "plugins": plugins}


def render_objects(values: Values) -> list[dict[str, Any]]:
    """Every object to install, in apply order: ServiceAccount, RBAC, ConfigMap, DaemonSet."""
    import yaml

    environment = _environment()
    context = _context(values)
    objects: list[dict[str, Any]] = []
    for name in TEMPLATES:
        text = environment.get_template(name).render(context)
        document = yaml.safe_load(text)
        if not isinstance(document, dict):  # pragma: no cover - a broken template, caught by the tests
            raise RuntimeError(f"template {name} did not render one object")
        objects.append(document)
    return objects


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
    }
