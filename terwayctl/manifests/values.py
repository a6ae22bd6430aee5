"""The values of `terwayctl render`: defaults, a YAML `--values` file and `--set key=value`.

Every key is a dotted path (`pool.max_size`); a values file nests the same keys as mappings.
`vswitches.<zone>` is the one key family whose last part is free (a zone id). `--set` beats the
file, the file beats the defaults. Everything is validated here, before any template is rendered;
all problems found are reported together (`InvalidValues.problems`).

Credentials are only ever a reference to a Secret (`credentials.secret`): no key of this model
holds secret material, and error messages never echo a value given for a credential-like key.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from terwayctl import __version__
from terwayctl.core import defaults
from terwayctl.core.errors import InvalidInput

DEFAULT_IMAGE_REPOSITORY = "ghcr.io/terwayctl/terwayctl"
DEFAULT_IMAGE = f"{DEFAULT_IMAGE_REPOSITORY}:v{__version__}"
DEFAULT_POLICY_IMAGE = "registry-cn-hangzhou.ack.aliyuncs.com/acs/terway:v1.16.7"
"""Upstream Terway's image (charts/terway/values.yaml @89aadf8): it ships cilium-agent and cilium-cni."""
MODES = ("eniip", "eni")
IP_STACKS = ("ipv4", "dual")
"""The node daemon allocates and routes IPv4 only: `dual` (and anything else) is refused."""
SELECTION_POLICIES = ("ordered", "random")
PULL_POLICIES = ("IfNotPresent", "Always", "Never")
MAX_SECURITY_GROUPS = 10
CREDENTIALS_MOUNT_PATH = "/etc/terway/credentials"
SECRET_KEYS = ("access_key", "access_secret")

SECRET_HINT = (
    "never put keys into values; create a Secret with keys access_key and access_secret "
    "(kubectl -n kube-system create secret generic terway-credentials --from-literal=access_key=... "
    "--from-literal=access_secret=...) and set credentials.secret=terway-credentials"
)


@dataclass(frozen=True)
class PoolValues:
    """The IP pool of each node (`max_pool_size`, `min_pool_size`, `ip_pool_sync_period`)."""

    max_size: int = 5
    min_size: int = 0
    sync_period: str | None = None


@dataclass(frozen=True)
class ResourceValues:
    """Requests and the memory limit of the daemon container (Kubernetes quantities)."""

    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    memory_limit: str = "256Mi"


@dataclass(frozen=True)
class Values:
    """Everything `render_objects` needs; build it with `load_values` so it is validated.

    `vswitches` is a tuple of (zone, vSwitch ids) pairs sorted by zone; `vswitch_map` gives a dict.
    """

    security_groups: tuple[str, ...]
    image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    namespace: str = defaults.DEFAULT_NAMESPACE
    mode: str = "eniip"
    region_id: str | None = None
    vswitches: tuple[tuple[str, tuple[str, ...]], ...] = ()
    vswitch_selection_policy: str = "ordered"
    service_cidr: str = defaults.DEFAULT_SERVICE_CIDR
    ip_stack: str = "ipv4"
    pool: PoolValues = field(default_factory=PoolValues)
    enable_eni_trunking: bool = False
    network_policy: bool = False
    """Upstream's chart default (enableNetworkPolicy: false): on adds the Cilium policy container."""
    policy_image: str = DEFAULT_POLICY_IMAGE
    host_port: bool = False
    bandwidth: bool = False
    credentials_secret: str | None = None
    endpoint: str | None = None
    resources: ResourceValues = field(default_factory=ResourceValues)

    @property
    def daemonset_name(self) -> str:
        return defaults.DAEMONSET_ENI if self.mode == "eni" else defaults.DAEMONSET_ENIIP

    @property
    def vswitch_map(self) -> dict[str, list[str]]:
        return {zone: list(ids) for zone, ids in self.vswitches}

    @property
    def credential_path(self) -> str | None:
        return CREDENTIALS_MOUNT_PATH if self.credentials_secret else None


@dataclass(frozen=True)
class Problem:
    message: str
    hint: str | None = None


class InvalidValues(InvalidInput):
    """One or more values are wrong; `problems` lists each with its own hint."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        first = self.problems[0]
        more = len(self.problems) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        super().__init__(first.message + suffix, first.hint)


# ---------------------------------------------------------------------------------------------
# Key table: dotted key -> (parser, help). Parsers take the raw value (a YAML scalar or list, or
# a --set string) and return the typed value or raise _Bad.


class _Bad(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _text(raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise _Bad(f"must be a string, got {_kind(raw)}")
    return str(raw).strip()


def _optional_text(raw: Any) -> str | None:
    if raw is None:
        return None
    return _text(raw) or None


def _choice(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = _text(raw)
        if value not in choices:
            raise _Bad(f"must be {' or '.join(choices)}, got {value!r}", f"use one of: {', '.join(choices)}")
        return value

    return parse


_TRUE = {"true", "on", "yes", "1"}
_FALSE = {"false", "off", "no", "0"}


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise _Bad(f"must be true or false, got {raw!r}", "use true/false (on/off and yes/no work too)")


def _int(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw):
        return int(raw)
    raise _Bad(f"must be a whole number, got {raw!r}")


def _list(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(raw, list | tuple) and all(isinstance(v, str) for v in raw):
        return tuple(v.strip() for v in raw if v.strip())
    raise _Bad(f"must be a list of strings or a comma-separated string, got {_kind(raw)}")


def _ip_stack(raw: Any) -> str:
    value = _text(raw)
    if value.lower() == "ipv6":
        raise _Bad(
            f"{value} is not supported: the terwayctl node daemon gives every pod an IPv4 address (no IPv6-only)",
            "use ip_stack=ipv4 (the default), or dual with an IPv4,IPv6 service_cidr pair",
        )
    if value.lower() in IP_STACKS:
        return value.lower()
    raise _Bad(f"must be ipv4 or dual, got {value!r}", "ipv4 (the default) or dual")


def _kind(raw: Any) -> str:
    if raw is None:
        return "nothing"
    if isinstance(raw, Mapping):
        return "a mapping"
    if isinstance(raw, list | tuple):
        return "a list"
    return f"{type(raw).__name__} {raw!r}"


KEYS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "image": (_text, "container image of the init and daemon containers, repository:tag"),
    "image_pull_policy": (_choice(PULL_POLICIES), "IfNotPresent, Always or Never"),
    "namespace": (_text, "namespace of the ServiceAccount, ConfigMap and DaemonSet"),
    "mode": (_choice(MODES), "eniip (shared ENI, DaemonSet terway-eniip) or eni (exclusive ENI, terway-eni)"),
    "region_id": (_optional_text, "Alibaba Cloud region, e.g. cn-hangzhou; left out of eni_conf when unset"),
    "vswitches": (_list, "vswitches.<zone>: pod vSwitch ids of that zone"),
    "vswitch_selection_policy": (_choice(SELECTION_POLICIES), "ordered or random"),
    "security_groups": (_list, "1 to 10 security group ids for the pod ENIs"),
    "service_cidr": (_text, "Kubernetes service CIDR: one IPv4 CIDR, or with ip_stack=dual an IPv4,IPv6 pair"),
    "ip_stack": (_ip_stack, "ipv4 (the default) or dual (IPv4 and IPv6 per pod where the node type is eligible)"),
    "pool.max_size": (_int, "max_pool_size: idle pod IPs kept at most per node"),
    "pool.min_size": (_int, "min_pool_size: idle pod IPs kept at least per node"),
    "pool.sync_period": (_optional_text, "ip_pool_sync_period, a Go duration such as 30s or 5m"),
    "enable_eni_trunking": (_bool, "false only: true is refused (the node daemon has no trunk ENI)"),
    "network_policy": (_bool, "enforce NetworkPolicy: the Cilium policy container in terway-chainer mode (disable_network_policy is its inverse)"),
    "policy_image": (_text, "image of the policy container and its init container (cilium-agent, cilium-cni), repository:tag"),
    "host_port": (_bool, "hostPort support: chain the portmap plugin, symmetric routing"),
    "bandwidth": (_bool, "the terway plugin shapes pods (bandwidth capability: kubernetes.io/ingress-bandwidth, egress-bandwidth)"),
    "credentials.secret": (_optional_text, "name of a Secret with keys access_key and access_secret"),
    "endpoint": (_optional_text, "cloud OpenAPI endpoint the daemon calls (http(s)://host[:port]); unset: the region's"),
    "resources.cpu_request": (_text, "CPU request of the daemon container"),
    "resources.memory_request": (_text, "memory request of the daemon container"),
    "resources.memory_limit": (_text, "memory limit of the daemon container"),
}
SECTIONS = {key.split(".", 1)[0] for key in KEYS if "." in key}
MAP_KEYS = {"vswitches"}
# Names people bring from eni_conf or other charts, and where they belong here.
RENAMED = {
    "max_pool_size": "pool.max_size",
    "min_pool_size": "pool.min_size",
    "ip_pool_sync_period": "pool.sync_period",
    "security_group": "security_groups",
    "region": "region_id",
    "disable_network_policy": "network_policy (inverted)",
    "hostport": "host_port",
    "hostPort": "host_port",
    "credential_path": "credentials.secret",
}
_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(:\d{1,5})?/?")
_SECRETISH = re.compile(r"(^|[._])(access_?key(_?id)?|access_?secret|access_?key_?secret|secret_?key|security_?token|password|token)$", re.I)


def _defaults() -> dict[str, Any]:
    base = Values(security_groups=())
    return {
        "image": base.image,
        "image_pull_policy": base.image_pull_policy,
        "namespace": base.namespace,
        "mode": base.mode,
        "region_id": base.region_id,
        "vswitch_selection_policy": base.vswitch_selection_policy,
        "security_groups": None,
        "service_cidr": base.service_cidr,
        "ip_stack": base.ip_stack,
        "pool.max_size": base.pool.max_size,
        "pool.min_size": base.pool.min_size,
        "pool.sync_period": base.pool.sync_period,
        "enable_eni_trunking": base.enable_eni_trunking,
        "network_policy": base.network_policy,
        "policy_image": base.policy_image,
        "host_port": base.host_port,
        "bandwidth": base.bandwidth,
        "credentials.secret": base.credentials_secret,
        "endpoint": base.endpoint,
        "resources.cpu_request": base.resources.cpu_request,
        "resources.memory_request": base.resources.memory_request,
        "resources.memory_limit": base.resources.memory_limit,
    }


# ---------------------------------------------------------------------------------------------
# Loading


def load_values(values_file: Path | None, sets: list[str], *, text: str | None = None) -> Values:
    """Merge defaults, the YAML `values_file` (or `text`, its content) and `--set` strings; validate.

    Raises InvalidValues (an InvalidInput) listing every problem found.
    """
    problems: list[Problem] = []
    given: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if values_file is not None or text is not None:
        where = str(values_file) if values_file is not None else "values"
        document = _read_document(values_file, text, where)
        _flatten(document, (), given, origin, where, problems)
    for item in sets:
        _apply_set(item, given, origin, problems)
    return _build(given, origin, problems)


def values_from_mapping(data: Mapping[str, Any]) -> Values:
    """Validate values given as a (nested) mapping, e.g. by `terwayctl apply`."""
    problems: list[Problem] = []
    given: dict[str, Any] = {}
    origin: dict[str, str] = {}
    _flatten(data, (), given, origin, "values", problems)
    return _build(given, origin, problems)


def _read_document(values_file: Path | None, text: str | None, where: str) -> Mapping[str, Any]:
    import yaml

    if text is None:
        assert values_file is not None
        try:
            text = values_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(f"values file {where} does not exist", hint="check the path given to --values") from None
        except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read values file {where}: {exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(
            f"values file {where} is not valid YAML{at}: {problem}",
            hint="the values file is a YAML mapping such as 'mode: eniip'",
        ) from None
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise InvalidInput(
            f"values file {where} must hold a mapping, not {_kind(document)}",
            hint="write one key per line, e.g. 'mode: eniip'",
        )
    return document


def _flatten(
    node: Mapping[Any, Any],
    prefix: tuple[str, ...],
    given: dict[str, Any],
    origin: dict[str, str],
    where: str,
    problems: list[Problem],
) -> None:
    for raw_key, value in node.items():
        part = str(raw_key)
        path = (*prefix, part)
        key = ".".join(path)
        if prefix and prefix[0] in MAP_KEYS:
            given[key], origin[key] = value, where
        elif key in MAP_KEYS:
            if value is None:
                continue
            if not isinstance(value, Mapping):
                problems.append(Problem(
                    f"{key} must be a mapping of zone to vSwitch ids, got {_kind(value)}",
                    f"e.g. {key}: {{cn-hangzhou-i: [vsw-aaa, vsw-bbb]}} or --set {key}.cn-hangzhou-i=vsw-aaa,vsw-bbb",
                ))
                continue
            _flatten(value, path, given, origin, where, problems)
        elif key in KEYS:
            given[key], origin[key] = value, where
        elif key in SECTIONS and isinstance(value, Mapping):
            _flatten(value, path, given, origin, where, problems)
        elif key in SECTIONS:
            problems.append(_section_problem(key))
        else:
            problems.append(_unknown(key, where))


def _apply_set(item: str, given: dict[str, Any], origin: dict[str, str], problems: list[Problem]) -> None:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        problems.append(Problem(f"--set {item!r} is not key=value", "e.g. --set pool.max_size=10"))
        return
    where = "--set"
    head = key.split(".", 1)[0]
    if head in MAP_KEYS:
        if "." not in key:
            problems.append(Problem(
                f"--set {key} needs a zone: {key}.<zone>",
                f"e.g. --set {key}.cn-hangzhou-i=vsw-aaa,vsw-bbb",
            ))
            return
        given[key], origin[key] = value, where
    elif key in KEYS:
        given[key], origin[key] = value, where
    elif key in SECTIONS:
        problems.append(_section_problem(key))
    else:
        problems.append(_unknown(key, where))


def _in(where: str | None) -> str:
    return f" (in {where})" if where else ""


def _section_problem(key: str) -> Problem:
    inside = sorted(k for k in KEYS if k.startswith(key + "."))
    return Problem(f"{key} is a group of keys, not a value", f"set one of: {', '.join(inside)}")


def _unknown(key: str, where: str) -> Problem:
    """An unknown key; the hint names the closest known key. Never echoes the value."""
    if _SECRETISH.search(key):
        return Problem(f"{key}: credentials cannot be given as values{_in(where)}", SECRET_HINT)
    last = key.rsplit(".", 1)[-1]
    if key in RENAMED or last in RENAMED:
        return Problem(f"unknown key {key}{_in(where)}", f"did you mean {RENAMED.get(key) or RENAMED[last]}?")
    candidates = [*KEYS, *SECTIONS]
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(last, candidates, n=1, cutoff=0.6)
    if not close:
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in KEYS}
        leaf = difflib.get_close_matches(last, list(by_leaf), n=1, cutoff=0.6)
        close = [by_leaf[leaf[0]]] if leaf else []
    if close:
        return Problem(f"unknown key {key}{_in(where)}", f"did you mean {close[0]}?")
    return Problem(f"unknown key {key}{_in(where)}", f"known keys: {', '.join(sorted(KEYS))}")


# ---------------------------------------------------------------------------------------------
# Typed values and their checks


_REGION = re.compile(r"[a-z]{2}-[a-z]+(?:-[a-z0-9]+)*")
_ZONE = re.compile(r"(?P<region>[a-z]{2}-[a-z]+(?:-[a-z0-9]+)*?)(?:-[a-z]|(?<=\d)[a-z])")
_VSWITCH_ID = re.compile(r"vsw-[a-z0-9]+")
_SECURITY_GROUP_ID = re.compile(r"sg-[a-z0-9]+")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)"
_IMAGE = re.compile(
    rf"(?P<repository>{_DOMAIN}?{_COMPONENT}(?:/{_COMPONENT})*)"
    rf"(?::(?P<tag>[\w][\w.-]{{0,127}}))?(?:@(?P<digest>sha256:[0-9a-f]{{64}}))?"
)
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")
_QUANTITY = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?P<suffix>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
_SUFFIX = {
    None: Decimal(1), "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


class _Checker:
    """Parses each flat key once and collects problems, so every mistake is reported together."""

    def __init__(self, given: Mapping[str, Any], origin: Mapping[str, str], problems: list[Problem]) -> None:
        self.given = given
        self.origin = origin
        self.problems = problems
        self.flat = {**_defaults(), **{k: v for k, v in given.items() if not k.startswith("vswitches.")}}

    def fail(self, key: str, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(f"{key}: {message}{_in(self.origin.get(key))}", hint))

    def get(self, key: str, default: Any = None) -> Any:
        parser = KEYS[key.split(".", 1)[0] if key.startswith("vswitches.") else key][0]
        raw = self.flat.get(key) if not key.startswith("vswitches.") else self.given.get(key)
        try:
            return parser(raw)
        except _Bad as bad:
            self.fail(key, bad.message, bad.hint)
            return default


def _build(given: Mapping[str, Any], origin: Mapping[str, str], problems: list[Problem]) -> Values:
    """Parse and check every key; raise InvalidValues with `problems` and all found here."""
    c = _Checker(given, origin, problems)
    image = _check_image(c, c.get("image", DEFAULT_IMAGE))
    namespace = c.get("namespace", "")
    if namespace and not (_DNS_LABEL.fullmatch(namespace) and len(namespace) <= 63):
        c.fail("namespace", f"{namespace!r} is not a valid namespace name", "lower-case letters, digits and '-', e.g. kube-system")
    region_id = c.get("region_id")
    if region_id is not None and (zone := _ZONE.fullmatch(region_id)):
        c.fail("region_id", f"{region_id!r} is a zone, not a region", f"the region of zone {region_id} is {zone['region']}")
        region_id = None
    elif region_id is not None and not _REGION.fullmatch(region_id):
        c.fail("region_id", f"{region_id!r} is not a region id", "region ids look like cn-hangzhou or ap-southeast-1")
        region_id = None
    vswitches = _check_vswitches(c, region_id)
    security_groups = _check_security_groups(c)
    ip_stack = c.get("ip_stack", "ipv4")
    service_cidr = _check_service_cidr(c, ip_stack)
    pool = _check_pool(c)
    secret = c.get("credentials.secret")
    if secret is not None and not (_DNS_SUBDOMAIN.fullmatch(secret) and len(secret) <= 253):
        c.fail(
            "credentials.secret",
            f"{secret!r} is not a valid Secret name",
            "the name of a Secret in the namespace, e.g. terway-credentials",
        )
    resources = _check_resources(c)
    endpoint = c.get("endpoint")
    if endpoint is not None and not _ENDPOINT.fullmatch(endpoint):
        c.fail("endpoint", f"{endpoint!r} is not an endpoint URL", "write http(s)://host[:port], e.g. https://ecs-vpc.cn-hangzhou.aliyuncs.com")
        endpoint = None
    trunking = c.get("enable_eni_trunking", False)
    if trunking:
        c.fail(
            "enable_eni_trunking",
            "true is not supported: the terwayctl node daemon has no trunk ENI (member ENIs for pods) and would "
            "ignore it (it refuses such an eni_conf at start)",
            "leave enable_eni_trunking false (the default); pods share ENIs (mode=eniip) or get one each (mode=eni)",
        )
    values = Values(
        security_groups=security_groups,
        image=image,
        image_pull_policy=c.get("image_pull_policy", "IfNotPresent"),
        namespace=namespace,
        mode=c.get("mode", "eniip"),
        region_id=region_id,
        vswitches=vswitches,
        vswitch_selection_policy=c.get("vswitch_selection_policy", "ordered"),
        service_cidr=service_cidr,
        ip_stack=ip_stack,
        pool=pool,
        enable_eni_trunking=trunking,
        network_policy=c.get("network_policy", False),
        policy_image=_check_image(c, c.get("policy_image", DEFAULT_POLICY_IMAGE), "policy_image"),
        host_port=c.get("host_port", False),
        bandwidth=c.get("bandwidth", False),
        credentials_secret=secret,
        endpoint=endpoint,
        resources=resources,
    )
    if c.problems:
        raise InvalidValues(c.problems)
    return values


def _check_image(c: _Checker, image: str, key: str = "image") -> str:
    match = _IMAGE.fullmatch(image)
    if not match:
        c.fail(key, f"{image!r} is not an image reference", "write repository:tag, e.g. registry.example.com/terwayctl:v0.1.0")
    elif not match["tag"] and not match["digest"]:
        c.fail(key, f"{image!r} has no tag", f"pin a version: {image}:v{__version__}")
    return image


def _check_vswitches(c: _Checker, region_id: str | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    result: list[tuple[str, tuple[str, ...]]] = []
    seen: dict[str, str] = {}
    for key in sorted(k for k in c.given if k.startswith("vswitches.")):
        zone = key.split(".", 1)[1]
        ids = c.get(key, ())
        zone_match = _ZONE.fullmatch(zone)
        if not zone_match:
            c.fail(key, f"{zone!r} is not a zone id", "zone ids look like cn-hangzhou-i or ap-southeast-1a")
            continue
        if region_id is not None and zone_match["region"] != region_id:
            c.fail(key, f"zone {zone} is not in region {region_id}", f"use zones of {region_id}, e.g. {region_id}-i")
        if not ids:
            c.fail(key, "lists no vSwitch", f"e.g. --set {key}=vsw-aaa,vsw-bbb")
            continue
        for vsw in ids:
            if not _VSWITCH_ID.fullmatch(vsw):
                c.fail(key, f"{vsw!r} is not a vSwitch id", "vSwitch ids look like vsw-bp1a2b3c4d5e6f7g8h9i0")
            elif vsw in seen:
                c.fail(key, f"{vsw} is listed twice (also in zone {seen[vsw]})", "a vSwitch belongs to one zone; list it once")
            else:
                seen[vsw] = zone
        result.append((zone, ids))
    return tuple(result)


def _check_security_groups(c: _Checker) -> tuple[str, ...]:
    groups: tuple[str, ...] = c.get("security_groups", ())
    if "security_groups" not in c.given:
        c.fail("security_groups", "missing: 1 to 10 security group ids are required", "e.g. --set security_groups=sg-bp1aaa,sg-bp1bbb")
        return ()
    if not groups:
        c.fail("security_groups", "lists no security group", "give 1 to 10 ids, e.g. --set security_groups=sg-bp1aaa")
    if len(groups) > MAX_SECURITY_GROUPS:
        c.fail("security_groups", f"lists {len(groups)} security groups, at most {MAX_SECURITY_GROUPS} are allowed",
               "an ENI joins at most 10 security groups; drop some")
    for sg in groups:
        if not _SECURITY_GROUP_ID.fullmatch(sg):
            c.fail("security_groups", f"{sg!r} is not a security group id", "security group ids look like sg-bp1a2b3c4d5e6f7g8h9i")
    duplicates = sorted({sg for sg in groups if groups.count(sg) > 1})
    if duplicates:
        c.fail("security_groups", f"lists {', '.join(duplicates)} more than once", "list each security group once")
    return groups


def _check_service_cidr(c: _Checker, ip_stack: str = "ipv4") -> str:
    text: str = c.get("service_cidr", "")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for part in parts:
        try:
            networks.append(ipaddress.ip_network(part))
        except ValueError as exc:
            c.fail("service_cidr", f"{part!r} is not a CIDR: {exc}", f"e.g. {defaults.DEFAULT_SERVICE_CIDR}")
            return text
    v4 = [n for n in networks if n.version == 4]
    if not networks:
        c.fail("service_cidr", "is empty", f"e.g. {defaults.DEFAULT_SERVICE_CIDR}")
    elif ip_stack == "dual" and len(networks) == 2 and len(v4) == 1:
        if networks[0].version != 4:
            c.fail("service_cidr", f"{text!r}: the IPv4 CIDR comes first", "e.g. 172.21.0.0/20,fd00:172:21::/112")
    elif ip_stack == "dual" and not (len(v4) == 1 and len(networks) == 1):
        c.fail("service_cidr", f"{text!r} must be one IPv4 CIDR or an IPv4,IPv6 pair",
               "e.g. 172.21.0.0/20,fd00:172:21::/112 (kube-apiserver --service-cluster-ip-range)")
    elif len(v4) != 1 or len(networks) != 1:
        hint = f"give one IPv4 CIDR, e.g. {defaults.DEFAULT_SERVICE_CIDR} (an IPv4,IPv6 pair needs ip_stack=dual)"
        c.fail("service_cidr", f"{text!r} must be one IPv4 CIDR", hint)
    return ",".join(str(n) for n in networks)


def _check_pool(c: _Checker) -> PoolValues:
    max_size: int | None = c.get("pool.max_size")
    min_size: int | None = c.get("pool.min_size")
    for key, size in (("pool.max_size", max_size), ("pool.min_size", min_size)):
        if size is not None and size < 0:
            c.fail(key, f"must not be negative, got {size}", "the pool sizes count idle pod IPs per node: 0 or more")
    if max_size is not None and min_size is not None and 0 <= max_size < min_size:
        c.fail("pool.min_size", f"{min_size} is larger than pool.max_size {max_size}",
               "the pool keeps between min_size and max_size idle IPs: raise pool.max_size or lower pool.min_size")
    period = c.get("pool.sync_period")
    if period is not None and not _DURATION.fullmatch(period):
        c.fail("pool.sync_period", f"{period!r} is not a duration", "write a Go duration such as 30s, 5m or 1h")
    return PoolValues(max_size=max_size or 0, min_size=min_size or 0, sync_period=period)


def _check_resources(c: _Checker) -> ResourceValues:
    parsed: dict[str, Decimal | None] = {}
    texts: dict[str, str] = {}
    for key in ("resources.cpu_request", "resources.memory_request", "resources.memory_limit"):
        text = c.get(key, "")
        texts[key] = text
        parsed[key] = _quantity(text)
        if parsed[key] is None:
            c.fail(key, f"{text!r} is not a Kubernetes quantity", "e.g. 100m for CPU, 128Mi for memory")
    request, limit = parsed["resources.memory_request"], parsed["resources.memory_limit"]
    if request is not None and limit is not None and request > limit:
        c.fail("resources.memory_request", f"{texts['resources.memory_request']} is above resources.memory_limit "
               f"{texts['resources.memory_limit']}", "a request may not exceed its limit")
    return ResourceValues(
        cpu_request=texts["resources.cpu_request"],
        memory_request=texts["resources.memory_request"],
        memory_limit=texts["resources.memory_limit"],
    )


def _quantity(text: str) -> Decimal | None:
    match = _QUANTITY.fullmatch(text)
    if not match:
        return None
    return Decimal(match["number"]) * _SUFFIX[match["suffix"]]
