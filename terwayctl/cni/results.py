"""CNI results: validation and conversion between spec versions, as pure functions.

The daemon answers in the "current" shape, the 1.1.0 result:

    {"interfaces": [{"name", "mac"?, "mtu"?, "sandbox"?, "socketPath"?, "pciID"?}],
     "ips": [{"address": "10.0.0.5/24", "gateway"?: "10.0.0.1", "interface"?: 0}],
     "routes": [{"dst": "0.0.0.0/0", "gw"?, "mtu"?, "advmss"?, "priority"?, "table"?, "scope"?}],
     "dns": {"nameservers"?, "domain"?, "search"?, "options"?}}

`to_current` lifts a result of any supported version to that shape (a prevResult given with CHECK
or DEL); `from_current` lowers it to the version the runtime asked for:

- 1.1.0: the current shape with `cniVersion` set.
- 1.0.0: the same without the fields spec 1.1.0 added: interfaces keep name, mac and sandbox
  (no mtu, socketPath, pciID), routes keep dst and gw (no mtu, advmss, priority, table, scope).
  The reference plugins of that version (libcni types/100 before 1.1) drop them too.
- 0.3.0 / 0.3.1 / 0.4.0: as 1.0.0, and every ip gains `version: "4"|"6"`.

Empty lists and an empty `dns` are left out, as libcni does. Unknown keys are dropped.
Validation errors are ValueError; the caller turns them into the CNI code that fits.
"""

from __future__ import annotations

import socket

from terwayctl.cni.spec import LATEST_VERSION, SUPPORTED_VERSIONS, is_legacy

# Not `from typing import TYPE_CHECKING`: importing typing would cost the plugin's start-up a few ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import TypeGuard

_INTERFACE_KEYS_CURRENT = ("name", "mac", "mtu", "sandbox", "socketPath", "pciID")
_INTERFACE_KEYS_LEGACY = ("name", "mac", "sandbox")
_INTERFACE_STR_KEYS = ("mac", "sandbox", "socketPath", "pciID")
_ROUTE_INT_KEYS = ("mtu", "advmss", "priority", "table", "scope")
_ROUTE_KEYS_CURRENT = ("dst", "gw", *_ROUTE_INT_KEYS)
_ROUTE_KEYS_LEGACY = ("dst", "gw")
_DNS_LIST_KEYS = ("nameservers", "search", "options")


def ip_family(address: str) -> str:
    """"4" or "6" for an address with or without a prefix; ValueError when it is neither."""
    host = address.split("/", 1)[0]
    for family, name in ((socket.AF_INET, "4"), (socket.AF_INET6, "6")):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return name
    raise ValueError(f"not an IP address: {address!r}")


def cidr_family(cidr: str) -> str:
    """"4" or "6" for `address/prefix` with a prefix in range; ValueError otherwise."""
    host, slash, prefix = cidr.partition("/")
    if not slash or not prefix.isdigit() or not prefix.isascii():
        raise ValueError(f"not an address with a prefix length: {cidr!r}")
    family = ip_family(host)
    if int(prefix) > (32 if family == "4" else 128):
        raise ValueError(f"prefix length out of range: {cidr!r}")
    return family


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _list_of_objects(result: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    value = result.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError(f"'{key}' must be a list of objects")
    return value


def _check_interface(index: int, iface: Mapping[str, object]) -> None:
    name = iface.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"interfaces[{index}].name must be a non-empty string")
    for key in _INTERFACE_STR_KEYS:
        if key in iface and not isinstance(iface[key], str):
            raise ValueError(f"interfaces[{index}].{key} must be a string")
    mtu = iface.get("mtu")
    if mtu is not None and not (_is_int(mtu) and mtu >= 0):
        raise ValueError(f"interfaces[{index}].mtu must be a non-negative integer")


def _check_ip(index: int, ip: Mapping[str, object], interfaces: int, legacy: bool) -> None:
    where = f"ips[{index}]"
    address = ip.get("address")
    if not isinstance(address, str):
        raise ValueError(f"{where}.address must be a string such as 10.0.0.5/24")
    family = cidr_family(address)
    gateway = ip.get("gateway")
    if gateway is not None and (not isinstance(gateway, str) or ip_family(gateway) != family):
        raise ValueError(f"{where}.gateway must be an IPv{family} address")
    if "interface" in ip:
        iface = ip["interface"]
        if not _is_int(iface) or not 0 <= iface < interfaces:
            raise ValueError(f"{where}.interface must index the {interfaces} interface(s) of the result")
    if legacy and "version" in ip and ip["version"] != family:
        raise ValueError(f"{where}.version is {ip['version']!r} but the address is IPv{family}")


def _check_route(index: int, route: Mapping[str, object]) -> None:
    dst = route.get("dst")
    if not isinstance(dst, str):
        raise ValueError(f"routes[{index}].dst must be a string such as 0.0.0.0/0")
    family = cidr_family(dst)
    gw = route.get("gw")
    if gw is not None and (not isinstance(gw, str) or ip_family(gw) != family):
        raise ValueError(f"routes[{index}].gw must be an IPv{family} address")
    for key in _ROUTE_INT_KEYS:
        if key in route and not _is_int(route[key]):
            raise ValueError(f"routes[{index}].{key} must be an integer")


def _check_dns(dns: object) -> None:
    if dns is None:
        return
    if not isinstance(dns, dict):
        raise ValueError("'dns' must be an object")
    for key in _DNS_LIST_KEYS:
        value = dns.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise ValueError(f"dns.{key} must be a list of strings")
    if dns.get("domain") is not None and not isinstance(dns["domain"], str):
        raise ValueError("dns.domain must be a string")


def validate(result: object, version: str) -> dict[str, object]:
    """Check a result given in `version`'s format; return it as a dict. ValueError on any fault."""
    if not isinstance(result, dict):
        raise ValueError("a result must be a JSON object")
    interfaces = _list_of_objects(result, "interfaces")
    for index, iface in enumerate(interfaces):
        _check_interface(index, iface)
    legacy = is_legacy(version)
    for index, ip in enumerate(_list_of_objects(result, "ips")):
        _check_ip(index, ip, len(interfaces), legacy)
    for index, route in enumerate(_list_of_objects(result, "routes")):
        _check_route(index, route)
    _check_dns(result.get("dns"))
    return result


def _pick(item: Mapping[str, object], keys: tuple[str, ...]) -> dict[str, object]:
    return {key: item[key] for key in keys if item.get(key) is not None}


def _dns(result: Mapping[str, object]) -> dict[str, object]:
    dns = result.get("dns")
    if not isinstance(dns, dict):
        return {}
    return {key: dns[key] for key in ("nameservers", "domain", "search", "options") if dns.get(key)}


def _assemble(
    version: str | None,
    interfaces: list[dict[str, object]],
    ips: list[dict[str, object]],
    routes: list[dict[str, object]],
    dns: dict[str, object],
) -> dict[str, object]:
    out: dict[str, object] = {} if version is None else {"cniVersion": version}
    if interfaces:
        out["interfaces"] = interfaces
    if ips:
        out["ips"] = ips
    if routes:
        out["routes"] = routes
    if dns:
        out["dns"] = dns
    return out


def to_current(result: Mapping[str, object], version: str) -> dict[str, object]:
    """Lift a validated result in `version`'s format to the current (1.1.0) shape, without cniVersion."""
    _require_supported(version)
    interfaces = [_pick(iface, _INTERFACE_KEYS_CURRENT) for iface in _list_of_objects(result, "interfaces")]
    ips = [_pick(ip, ("interface", "address", "gateway")) for ip in _list_of_objects(result, "ips")]
    routes = [_pick(route, _ROUTE_KEYS_CURRENT) for route in _list_of_objects(result, "routes")]
    return _assemble(None, interfaces, ips, routes, _dns(result))


def from_current(result: Mapping[str, object], version: str) -> dict[str, object]:
    """Lower a validated current-shaped result to `version`'s format, with `cniVersion` set."""
    _require_supported(version)
    legacy = is_legacy(version)
    full = version == LATEST_VERSION  # the interface and route fields spec 1.1.0 added
    iface_keys = _INTERFACE_KEYS_CURRENT if full else _INTERFACE_KEYS_LEGACY
    route_keys = _ROUTE_KEYS_CURRENT if full else _ROUTE_KEYS_LEGACY
    interfaces = [_pick(iface, iface_keys) for iface in _list_of_objects(result, "interfaces")]
    ips: list[dict[str, object]] = []
    for ip in _list_of_objects(result, "ips"):
        picked = _pick(ip, ("interface", "address", "gateway"))
        if legacy:
            picked = {"version": cidr_family(str(picked["address"])), **picked}
        ips.append(picked)
    routes = [_pick(route, route_keys) for route in _list_of_objects(result, "routes")]
    return _assemble(version, interfaces, ips, routes, _dns(result))


def convert(result: Mapping[str, object], from_version: str, to_version: str) -> dict[str, object]:
    """A result of `from_version` in `to_version`'s format (both must be supported)."""
    return from_current(to_current(result, from_version), to_version)


def _require_supported(version: str) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"unsupported cniVersion {version!r}")
