"""CNI result conversion: one table row per spec version, both directions, and validation."""

from __future__ import annotations

from typing import Any

import pytest

from terwayctl.cni import results
from terwayctl.cni.spec import SUPPORTED_VERSIONS

# What the daemon answers for a dual-stack pod (current = 1.1.0 shape, every optional field used).
CURRENT: dict[str, Any] = {
    "interfaces": [
        {"name": "cali1f2e3d4c5b6", "mac": "ee:ee:ee:ee:ee:ee"},
        {"name": "eth0", "mac": "02:00:00:00:00:0a", "mtu": 1500, "sandbox": "/var/run/netns/cni-1", "socketPath": "/s", "pciID": "0000:00:05.0"},
    ],
    "ips": [
        {"address": "10.0.0.10/24", "gateway": "10.0.0.1", "interface": 1},
        {"address": "fd00::a/64", "interface": 1},
    ],
    "routes": [
        {"dst": "0.0.0.0/0", "gw": "169.254.1.1", "mtu": 1500, "table": 1005, "scope": 0},
        {"dst": "::/0"},
    ],
    "dns": {"nameservers": ["172.21.0.10"], "search": ["default.svc.cluster.local"], "options": ["ndots:5"]},
}

LEGACY_INTERFACES = [
    {"name": "cali1f2e3d4c5b6", "mac": "ee:ee:ee:ee:ee:ee"},
    {"name": "eth0", "mac": "02:00:00:00:00:0a", "sandbox": "/var/run/netns/cni-1"},
]
LEGACY_IPS = [
    {"version": "4", "address": "10.0.0.10/24", "gateway": "10.0.0.1", "interface": 1},
    {"version": "6", "address": "fd00::a/64", "interface": 1},
]
LEGACY_ROUTES = [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}, {"dst": "::/0"}]


def legacy(version: str) -> dict[str, Any]:
    return {"cniVersion": version, "interfaces": LEGACY_INTERFACES, "ips": LEGACY_IPS, "routes": LEGACY_ROUTES, "dns": CURRENT["dns"]}


EXPECTED: dict[str, dict[str, Any]] = {
    "0.3.0": legacy("0.3.0"),
    "0.3.1": legacy("0.3.1"),
    "0.4.0": legacy("0.4.0"),
    # spec 1.1.0 added interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope
    "1.0.0": {"cniVersion": "1.0.0", "interfaces": LEGACY_INTERFACES, "ips": CURRENT["ips"], "routes": LEGACY_ROUTES,
              "dns": CURRENT["dns"]},
    "1.1.0": {"cniVersion": "1.1.0", **CURRENT},
}


def test_the_table_covers_every_supported_version() -> None:
    assert tuple(EXPECTED) == SUPPORTED_VERSIONS


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_from_current(version: str) -> None:
    assert results.from_current(CURRENT, version) == EXPECTED[version]


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_output_is_valid_in_its_own_version(version: str) -> None:
    out = results.from_current(CURRENT, version)
    assert results.validate(out, version) is out


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_legacy_to_current_drops_version_and_keeps_the_rest(version: str) -> None:
    current = results.to_current(EXPECTED[version], version)
    assert "cniVersion" not in current
    assert current["ips"] == [{k: v for k, v in ip.items() if k != "version"} for ip in LEGACY_IPS]
    assert current["interfaces"] == LEGACY_INTERFACES
    assert current["routes"] == LEGACY_ROUTES


def test_current_to_current_is_lossless() -> None:
    assert results.to_current(EXPECTED["1.1.0"], "1.1.0") == CURRENT
    assert results.to_current(EXPECTED["1.0.0"], "1.0.0") == {k: v for k, v in EXPECTED["1.0.0"].items()
                                                               if k != "cniVersion"}


@pytest.mark.parametrize("source", SUPPORTED_VERSIONS)
@pytest.mark.parametrize("target", SUPPORTED_VERSIONS)
def test_convert_every_pair(source: str, target: str) -> None:
    converted = results.convert(EXPECTED[source], source, target)
    if source != "1.1.0" and target == "1.1.0":
        # Fields an older result cannot carry do not come back.
        assert converted == {"cniVersion": target, **results.to_current(legacy(target), "0.4.0")}
    else:
        assert converted == EXPECTED[target]


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_empty_parts_are_left_out(version: str) -> None:
    assert results.from_current({"ips": [], "dns": {}, "routes": []}, version) == {"cniVersion": version}


def test_ips_without_interface_index_stay_without_one() -> None:
    out = results.from_current({"ips": [{"address": "192.168.32.5/19"}]}, "0.3.1")
    assert out["ips"] == [{"version": "4", "address": "192.168.32.5/19"}]


@pytest.mark.parametrize(
    ("address", "family"), [("10.0.0.1", "4"), ("10.0.0.1/32", "4"), ("fd00::1", "6"), ("::ffff:10.0.0.1/128", "6")]
)
def test_ip_family(address: str, family: str) -> None:
    assert results.ip_family(address) == family


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"interfaces": {}},
        {"interfaces": [{"name": ""}]},
        {"interfaces": [{"name": "eth0", "mtu": -1}]},
        {"interfaces": [{"name": "eth0", "mac": 2}]},
        {"ips": [{"address": "10.0.0.1/24", "interface": 0}]},
        {"ips": [{"address": "10.0.0.1/24", "interface": True}], "interfaces": [{"name": "eth0"}]},
        {"ips": [{"address": "10.0.0.1/x"}]},
        {"ips": [{"address": "fd00::1/129"}]},
        {"ips": [{"address": "10.0.0.1/24", "gateway": "10.0.0"}]},
        {"routes": [{"dst": "0.0.0.0/0", "gw": "fd00::1"}]},
        {"routes": [{"dst": "0.0.0.0/0", "table": "main"}]},
        {"dns": []},
        {"dns": {"domain": 3}},
    ],
    ids=repr,
)
def test_validate_rejects(bad: Any) -> None:
    with pytest.raises(ValueError):
        results.validate(bad, "1.1.0")


def test_validate_rejects_a_legacy_version_that_contradicts_the_address() -> None:
    with pytest.raises(ValueError, match="IPv4"):
        results.validate({"ips": [{"version": "6", "address": "10.0.0.1/24"}]}, "0.4.0")


def test_unsupported_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        results.from_current(CURRENT, "0.2.0")
