"""terwayctl.core.outbound (SNAT semantics as the NAT gateway applies them) and the planner's pod_vswitch_cidr."""

from __future__ import annotations

import ipaddress

import pytest

from terwayctl.core.errors import InvalidInput
from terwayctl.core.outbound import Route, Snat, assess, snat_coverage
from terwayctl.core.planning import pod_vswitch_cidr

VSW, CIDR = "vsw-a", "10.0.0.0/19"
TO_NAT = [Route("10.0.0.0/8", (("Instance", "i-x"),)), Route("0.0.0.0/0", (("NatGateway", "ngw-1"),))]


def snat(entry: str, vsw: str = "", cidr: str = "") -> Snat:
    return Snat(entry, "stb-1", vsw, cidr, "203.0.113.1")


@pytest.mark.parametrize(("entries", "covering", "uncovered"), [
    ([snat("e1", vsw=VSW, cidr=CIDR)], ["e1"], []),
    ([snat("e1", cidr="10.0.0.0/8")], ["e1"], []),
    ([snat("e1", cidr="10.0.0.0/19")], ["e1"], []),
    # a vSwitch entry covers that vSwitch only, even when its SourceCIDR would contain ours
    ([snat("e1", vsw="vsw-other", cidr="10.0.0.0/8")], [], ["10.0.0.0/19"]),
    ([snat("e1", cidr="10.0.0.0/20")], [], ["10.0.16.0/20"]),
    ([snat("e1", cidr="10.0.0.0/21"), snat("e2", cidr="10.0.16.0/20")], [], ["10.0.8.0/21"]),
    ([snat("e1", cidr="10.0.0.0/20"), snat("e2", cidr="10.0.16.0/20")], [], []),
    ([snat("e1", cidr="10.1.0.0/16")], [], ["10.0.0.0/19"]),
])
def test_snat_coverage(entries: list[Snat], covering: list[str], uncovered: list[str]) -> None:
    full, _, left = snat_coverage(VSW, CIDR, entries)
    assert [e.entry_id for e in full] == covering and left == uncovered


def test_assess_problems() -> None:
    assert assess(VSW, CIDR, "vtb", "System", TO_NAT, [snat("e1", vsw=VSW)]).ok
    assert assess(VSW, CIDR, "vtb", "System", TO_NAT[:1], []).problem == "no-route"
    other = assess(VSW, CIDR, "vtb", "Custom", [Route("0.0.0.0/0", (("Instance", "i-gw"),))], [])
    assert other.problem == "not-nat" and other.other_hop == "Instance i-gw" and not other.fixable_by_snat
    half = assess(VSW, CIDR, "vtb", "System", TO_NAT, [snat("e1", cidr="10.0.0.0/20")])
    assert half.problem == "partial-snat" and half.uncovered == ("10.0.16.0/20",) and half.fixable_by_snat
    assert assess(VSW, CIDR, "vtb", "System", TO_NAT, []).problem == "no-snat"


def test_pod_vswitch_cidr() -> None:
    vpc = ipaddress.IPv4Network("192.168.0.0/16")
    taken = [ipaddress.IPv4Network(c) for c in ("192.168.0.0/19", "192.168.40.0/21")]
    assert str(pod_vswitch_cidr(vpc, taken, 440)) == "192.168.64.0/19"  # /19 at least, first fit
    assert str(pod_vswitch_cidr(vpc, taken, 20000)) == "192.168.128.0/17"
    with pytest.raises(InvalidInput, match="no free /19"):
        pod_vswitch_cidr(ipaddress.IPv4Network("10.0.0.0/20"), [], 100)
