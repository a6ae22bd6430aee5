"""Parse and validate one plugin invocation: the CNI_* variables and the network config.

Pure: takes the environment mapping and the decoded stdin, returns an `Invocation` or raises
`CNIError` with the spec's code (4 environment, 7 network config, 1 version). The only look at the
file system is `netns_problem`, which the ADD and CHECK handlers call.
"""

from __future__ import annotations

import os

from terwayctl.cni import protocol, results
from terwayctl.cni.spec import (
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    CNIError,
    at_least,
    container_id_problem,
    ifname_problem,
    network_name_problem,
)

# Not `from typing import TYPE_CHECKING`: importing typing would cost the plugin's start-up a few ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TypeGuard

# Keys of CNI_ARGS that the plugin understands; others need IgnoreUnknown=1 (libcni's rule).
KNOWN_ARGS = ("K8S_POD_NAME", "K8S_POD_NAMESPACE", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID", "IgnoreUnknown")
VALID_ATTACHMENTS_KEY = "cni.dev/valid-attachments"
_BANDWIDTH_KEYS = ("ingressRate", "ingressBurst", "egressRate", "egressBurst")
# Keys that are not passed to the daemon as `netconf` (they travel in their own request fields).
_NOT_NETCONF = ("prevResult", "runtimeConfig", VALID_ATTACHMENTS_KEY)
# Verbs that first exist in a spec version: the config must declare at least that version.
MINIMUM_VERSION = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}


class Invocation:
    """Everything one run of the plugin needs, validated."""

    __slots__ = ("cni_args", "config", "container_id", "ifname", "netns", "netns_handle", "prev_result",
                 "runtime_config", "socket_path", "timeout", "valid_attachments", "verb", "version")

    def __init__(
        self,
        *,
        verb: str,
        version: str,
        config: dict[str, object],
        container_id: str,
        netns: str,
        ifname: str,
        cni_args: dict[str, str],
        prev_result: dict[str, object] | None,
        runtime_config: dict[str, object],
        valid_attachments: list[dict[str, str]] | None,
        socket_path: str,
        timeout: float,
        netns_handle: str = "",
    ) -> None:
        self.verb = verb
        self.version = version
        self.config = config
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.cni_args = cni_args
        self.prev_result = prev_result
        self.runtime_config = runtime_config
        self.valid_attachments = valid_attachments
        self.socket_path = socket_path
        self.timeout = timeout
        self.netns_handle = netns_handle

    def request(self, verb: str | None = None) -> protocol.Request:
        """The daemon request for this invocation (for `verb`, default the invocation's own)."""
        request = protocol.Request(
            verb=verb or self.verb,
            cni_version=self.version,
            network_name=str(self.config["name"]),
            container_id=self.container_id,
            netns=self.netns,
            ifname=self.ifname,
            pod_namespace=self.cni_args.get("K8S_POD_NAMESPACE", ""),
            pod_name=self.cni_args.get("K8S_POD_NAME", ""),
            infra_container_id=self.cni_args.get("K8S_POD_INFRA_CONTAINER_ID", ""),
            pod_uid=self.cni_args.get("K8S_POD_UID", ""),
            cni_args=self.cni_args,
            runtime_config=self.runtime_config,
            netconf={k: v for k, v in self.config.items() if k not in _NOT_NETCONF},
            prev_result=self.prev_result,
            valid_attachments=self.valid_attachments,
        )
        request.netns_handle = self.netns_handle
        return request


def reported_version(config: Mapping[str, object]) -> str | None:
    """The config's cniVersion when it is one the plugin speaks (errors and VERSION echo it)."""
    version = config.get("cniVersion")
    return version if isinstance(version, str) and version in SUPPORTED_VERSIONS else None


def parse(verb: str, env: Mapping[str, str], config: Mapping[str, object], netns_handle: str = "") -> Invocation:
    """Validate the environment for `verb`, then the network config; raise CNIError on the first fault.

    `netns_handle` opens the pod's namespace in the daemon (the descriptor the shim passed)."""
    container_id, netns, ifname = _container_variables(verb, env)
    cni_args = parse_cni_args(env.get("CNI_ARGS", ""))
    version = _version(verb, config)
    for key in ("name", "type"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise CNIError(INVALID_CONFIG, f"network config needs a non-empty string '{key}'")
    problem = network_name_problem(str(config["name"]))
    if problem:
        raise CNIError(INVALID_CONFIG, f"network name {config['name']!r} {problem}")
    plugin_options(config)
    return Invocation(
        verb=verb,
        version=version,
        config=dict(config),
        container_id=container_id,
        netns=netns,
        ifname=ifname,
        cni_args=cni_args,
        prev_result=_prev_result(config.get("prevResult"), version),
        runtime_config=_runtime_config(config.get("runtimeConfig")),
        valid_attachments=_valid_attachments(config) if verb == "GC" else None,
        socket_path=_socket_path(env, config),
        timeout=_timeout(verb, env, config),
        netns_handle=netns_handle,
    )


# `symmetric_routing_config` keys (upstream Terway's SymmetricRoutingConfig) and their limits.
_SYMMETRIC_INTS = {"mark": 0xFFFFFFFF, "mask": 0xFFFFFFFF, "table_id": 0xFFFFFFFF, "rule_priority": 32765}


def plugin_options(config: Mapping[str, object]) -> None:
    """The plugin's own keys, where present, must be well-formed (7 otherwise): `capabilities`
    (booleans), `dns` (the result's DNS object), `symmetric_routing` (boolean),
    `symmetric_routing_config` (interface, mark, mask, table_id, rule_priority, comment).
    Keys the plugin does not know are ignored, as the spec asks."""
    capabilities = config.get("capabilities")
    if capabilities is not None and (
        not isinstance(capabilities, dict) or not all(isinstance(v, bool) for v in capabilities.values())
    ):
        raise CNIError(INVALID_CONFIG, "'capabilities' must be an object of booleans")
    if "dns" in config:
        try:
            results.validate({"dns": config["dns"]}, LATEST_VERSION)
        except ValueError as exc:
            raise CNIError(INVALID_CONFIG, f"invalid 'dns': {exc}") from None
    if "symmetric_routing" in config and not isinstance(config["symmetric_routing"], bool):
        raise CNIError(INVALID_CONFIG, "'symmetric_routing' must be true or false")
    options = config.get("symmetric_routing_config")
    if options is None:
        return
    if not isinstance(options, dict):
        raise CNIError(INVALID_CONFIG, "'symmetric_routing_config' must be an object")
    for key, limit in _SYMMETRIC_INTS.items():
        value = options.get(key)
        if value is not None and not (_uint(value) and 0 < value <= limit):
            raise CNIError(INVALID_CONFIG, f"symmetric_routing_config.{key} must be an integer in 1-{limit}")
    interface = options.get("interface")
    if interface is not None and (not isinstance(interface, str) or ifname_problem(interface)):
        raise CNIError(INVALID_CONFIG, "symmetric_routing_config.interface must be an interface name")
    if "comment" in options and not isinstance(options["comment"], str):
        raise CNIError(INVALID_CONFIG, "symmetric_routing_config.comment must be a string")


def _container_variables(verb: str, env: Mapping[str, str]) -> tuple[str, str, str]:
    if verb not in ("ADD", "DEL", "CHECK"):
        return "", "", ""
    required = ("CNI_CONTAINERID", "CNI_IFNAME") if verb == "DEL" else ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME")
    missing = [name for name in required if not env.get(name)]
    if missing:
        raise CNIError(INVALID_ENVIRONMENT, f"{verb} needs the environment variable(s) {', '.join(missing)}")
    container_id, ifname = env["CNI_CONTAINERID"], env["CNI_IFNAME"]
    problem = container_id_problem(container_id)
    if problem:
        raise CNIError(INVALID_ENVIRONMENT, f"CNI_CONTAINERID {container_id!r} {problem}")
    problem = ifname_problem(ifname)
    if problem:
        raise CNIError(INVALID_ENVIRONMENT, f"CNI_IFNAME {ifname!r} {problem}")
    return container_id, env.get("CNI_NETNS", ""), ifname


def netns_problem(netns: str) -> str | None:
    """Why CNI_NETNS cannot be used for ADD or CHECK, or None."""
    if not os.path.isabs(netns):
        return "is not an absolute path"
    if not os.path.exists(netns):
        return "does not exist"
    return None


def parse_cni_args(text: str) -> dict[str, str]:
    """`K8S_POD_NAME=a;K8S_POD_NAMESPACE=b;IgnoreUnknown=1` -> dict; CNIError 4 when malformed.

    As libcni: every pair is KEY=VALUE with exactly one '='; a key the plugin does not know is an
    error unless IgnoreUnknown is 1/true.
    """
    if not text:
        return {}
    args: dict[str, str] = {}
    for pair in text.split(";"):
        key, sep, value = pair.partition("=")
        if not sep or not key or "=" in value:
            raise CNIError(INVALID_ENVIRONMENT, f"CNI_ARGS: invalid pair {pair!r}", "expected KEY=VALUE;KEY=VALUE")
        args[key] = value
    ignore = args.get("IgnoreUnknown", "")
    if ignore and ignore.lower() not in ("1", "true", "0", "false"):
        raise CNIError(INVALID_ENVIRONMENT, f"CNI_ARGS: IgnoreUnknown={ignore!r} is not a boolean")
    unknown = [key for key in args if key not in KNOWN_ARGS]
    if unknown and ignore.lower() not in ("1", "true"):
        raise CNIError(
            INVALID_ENVIRONMENT,
            f"CNI_ARGS: unknown key(s) {', '.join(unknown)}",
            "set IgnoreUnknown=1 to pass keys the plugin does not use",
        )
    return args


def _version(verb: str, config: Mapping[str, object]) -> str:
    version = config.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CNIError(INVALID_CONFIG, "network config needs a string 'cniVersion'")
    if version not in SUPPORTED_VERSIONS:
        raise CNIError(
            INCOMPATIBLE_VERSION,
            f"incompatible CNI versions: config is {version!r}, plugin supports {', '.join(SUPPORTED_VERSIONS)}",
        )
    minimum = MINIMUM_VERSION.get(verb)
    if minimum and not at_least(version, minimum):
        raise CNIError(INCOMPATIBLE_VERSION, f"config version {version} does not allow {verb} (needs {minimum} or later)")
    return version


def _prev_result(value: object, version: str) -> dict[str, object] | None:
    if value is None:
        return None
    try:
        return results.to_current(results.validate(value, version), version)
    except ValueError as exc:
        raise CNIError(INVALID_CONFIG, "invalid prevResult", str(exc)) from None


def _uint(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _runtime_config(value: object) -> dict[str, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CNIError(INVALID_CONFIG, "runtimeConfig must be an object")
    bandwidth = value.get("bandwidth")
    if bandwidth is not None:
        if not isinstance(bandwidth, dict):
            raise CNIError(INVALID_CONFIG, "runtimeConfig.bandwidth must be an object")
        for key in _BANDWIDTH_KEYS:
            if key in bandwidth and not _uint(bandwidth[key]):
                raise CNIError(INVALID_CONFIG, f"runtimeConfig.bandwidth.{key} must be a non-negative integer (bits)")
    mappings = value.get("portMappings")
    if mappings is not None:
        if not isinstance(mappings, list):
            raise CNIError(INVALID_CONFIG, "runtimeConfig.portMappings must be a list")
        for index, mapping in enumerate(mappings):
            _check_port_mapping(index, mapping)
    return dict(value)


def _check_port_mapping(index: int, mapping: object) -> None:
    where = f"runtimeConfig.portMappings[{index}]"
    if not isinstance(mapping, dict):
        raise CNIError(INVALID_CONFIG, f"{where} must be an object")
    for key in ("hostPort", "containerPort"):
        port = mapping.get(key)
        if not (_uint(port) and 0 < port <= 65535):
            raise CNIError(INVALID_CONFIG, f"{where}.{key} must be a port number 1-65535")
    protocol_name = mapping.get("protocol", "tcp")
    if not isinstance(protocol_name, str) or protocol_name.lower() not in ("tcp", "udp", "sctp"):
        raise CNIError(INVALID_CONFIG, f"{where}.protocol must be tcp, udp or sctp")
    host_ip = mapping.get("hostIP", "")
    if not isinstance(host_ip, str):
        raise CNIError(INVALID_CONFIG, f"{where}.hostIP must be a string")
    if host_ip:
        try:
            results.ip_family(host_ip)
        except ValueError:
            raise CNIError(INVALID_CONFIG, f"{where}.hostIP {host_ip!r} is not an IP address") from None


def _valid_attachments(config: Mapping[str, object]) -> list[dict[str, str]]:
    if VALID_ATTACHMENTS_KEY not in config:
        # An absent list is not an empty one: GC would release every attachment of this network.
        raise CNIError(INVALID_CONFIG, f"GC needs '{VALID_ATTACHMENTS_KEY}'",
                       "the runtime lists the attachments that are still in use")
    value = config[VALID_ATTACHMENTS_KEY]
    if not isinstance(value, list):
        raise CNIError(INVALID_CONFIG, f"'{VALID_ATTACHMENTS_KEY}' must be a list")
    attachments = []
    for index, item in enumerate(value):
        container_id = item.get("containerID") if isinstance(item, dict) else None
        ifname = item.get("ifname") if isinstance(item, dict) else None
        if not isinstance(container_id, str) or not isinstance(ifname, str):
            raise CNIError(INVALID_CONFIG, f"'{VALID_ATTACHMENTS_KEY}'[{index}] needs string containerID and ifname")
        attachments.append({"container_id": container_id, "ifname": ifname})
    return attachments


def _socket_path(env: Mapping[str, str], config: Mapping[str, object]) -> str:
    """TERWAY_DAEMON_SOCKET wins over the netconf key (still validated), so a by-hand run can aim elsewhere."""
    value = config.get(protocol.SOCKET_PATH_KEY, protocol.DEFAULT_SOCKET_PATH)
    if not isinstance(value, str) or not value or len(value.encode()) > protocol.UNIX_PATH_MAX:
        raise CNIError(
            INVALID_CONFIG, f"'{protocol.SOCKET_PATH_KEY}' must be a socket path of 1-{protocol.UNIX_PATH_MAX} bytes"
        )
    from_env = env.get(protocol.SOCKET_PATH_ENV)
    if from_env:
        if len(from_env.encode()) > protocol.UNIX_PATH_MAX:
            raise CNIError(INVALID_ENVIRONMENT, f"{protocol.SOCKET_PATH_ENV} is longer than {protocol.UNIX_PATH_MAX} bytes")
        return from_env
    return value


def _timeout(verb: str, env: Mapping[str, str], config: Mapping[str, object]) -> float:
    """TERWAY_DAEMON_TIMEOUT wins over the netconf key (still validated); else the verb's default."""
    limits = f"a number of seconds in (0, {protocol.MAX_TIMEOUT:g}]"
    value = config.get(protocol.TIMEOUT_KEY)
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= protocol.MAX_TIMEOUT
    ):
        raise CNIError(INVALID_CONFIG, f"'{protocol.TIMEOUT_KEY}' must be {limits}")
    from_env = env.get(protocol.TIMEOUT_ENV)
    if from_env:
        try:
            seconds = float(from_env)
        except ValueError:
            seconds = -1.0
        if not 0 < seconds <= protocol.MAX_TIMEOUT:
            raise CNIError(INVALID_ENVIRONMENT, f"{protocol.TIMEOUT_ENV}={from_env!r} is not {limits}")
        return seconds
    if value is not None:
        return float(value)
    return protocol.DEFAULT_TIMEOUTS.get(verb, 30.0)
