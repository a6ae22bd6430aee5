"""The cloud side of `terwayctl vswitch add`: outbound checks, CreateVSwitch, CreateSnatEntry and their waits.

Everything that waits takes `clock` and `sleep`, so tests fake time; nothing here prints: the steps
are reported through the `say` callback the command passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from terwayctl.core.errors import InvalidInput, TerwayctlError
from terwayctl.core.outbound import (
    Nat,
    Outbound,
    Route,
    Snat,
    assess,
    default_route_nat,
    explain,
    snat_ip_for,
)

if TYPE_CHECKING:
    from terwayctl.cloud.api import OutboundReader, VSwitchWriter

DEFAULT_CLOUD_TIMEOUT = 120.0
POLL = 1.0
Say = Callable[[str], None]


@dataclass(frozen=True)
class OutboundFacts:
    verdict: Outbound
    nat: Nat | None
    entries: tuple[Snat, ...]

    @property
    def snat_table(self) -> str | None:
        return self.nat.snat_table_ids[0] if self.nat and self.nat.snat_table_ids else None

    @property
    def snat_ip(self) -> str | None:
        return snat_ip_for(self.nat, self.entries) if self.nat else None


def system_route_table(cloud: OutboundReader, vpc_id: str) -> str:
    for table in cloud.describe_route_table_list(vpc_id=vpc_id):
        if table.route_table_type == "System":
            return table.route_table_id
    raise TerwayctlError(f"VPC {vpc_id} has no system route table (DescribeRouteTableList)",
                         hint="check the VPC id and --region")


def read_outbound(
    cloud: OutboundReader, *, vswitch_id: str, cidr: str, vpc_id: str, route_table_id: str = "",
    route_table_type: str = "",
) -> OutboundFacts:
    """Read the vSwitch's route table (system when none is given), the NAT gateway of its default route
    and that gateway's SNAT entries, and judge them (terwayctl.core.outbound)."""
    table_id = route_table_id or system_route_table(cloud, vpc_id)
    table_type = route_table_type or ("System" if not route_table_id else "Custom")
    routes = [Route(r.destination_cidr_block, r.next_hops) for r in cloud.describe_route_entry_list(table_id)]
    nat_id, _ = default_route_nat(routes)
    nat: Nat | None = None
    entries: list[Snat] = []
    if nat_id is not None:
        found = [g for g in cloud.describe_nat_gateways(nat_gateway_id=nat_id) if g.nat_gateway_id == nat_id]
        if found:
            gateway = found[0]
            nat = Nat(gateway.nat_gateway_id, gateway.snat_table_ids, gateway.ip_addresses)
            for snat_table in gateway.snat_table_ids:
                entries += [Snat(e.snat_entry_id, e.snat_table_id or snat_table, e.source_vswitch_id, e.source_cidr,
                                 e.snat_ip, e.status) for e in cloud.describe_snat_table_entries(snat_table)]
    verdict = assess(vswitch_id, cidr, table_id, table_type, routes, entries)
    return OutboundFacts(verdict, nat, tuple(entries))


def refusal(facts: OutboundFacts, region: str) -> InvalidInput:
    message, hint = explain(facts.verdict, region, facts.snat_table, facts.snat_ip)
    return InvalidInput(message, hint=hint)


def wait_until(
    check: Callable[[], bool], *, what: str, timeout: float = DEFAULT_CLOUD_TIMEOUT, poll: float | None = None,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Poll `check` every `poll` seconds (default POLL) until it is true; the seconds it took.
    TerwayctlError at `timeout`."""
    poll = POLL if poll is None else poll
    start = clock()
    while True:
        if check():
            return clock() - start
        elapsed = clock() - start
        if elapsed >= timeout:
            raise TerwayctlError(f"{what} is not Available after {elapsed:.0f}s",
                                 hint="check it in the console; rerun the command once it is Available")
        sleep(min(poll, timeout - elapsed))


def create_vswitch(
    cloud: VSwitchWriter, *, vpc_id: str, zone: str, cidr: str, name: str, say: Say,
    timeout: float = DEFAULT_CLOUD_TIMEOUT, clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """CreateVSwitch, then wait until DescribeVSwitches says Available; the new id."""
    vswitch_id = cloud.create_vswitch(vpc_id=vpc_id, zone_id=zone, cidr_block=cidr, name=name,
                                      description="pod vSwitch created by terwayctl vswitch add")
    say(f"created vSwitch {vswitch_id} ({cidr}) in zone {zone}; waiting until it is Available")

    def available() -> bool:
        return any(v.vswitch_id == vswitch_id and v.status == "Available"
                   for v in cloud.describe_vswitches(vswitch_ids=[vswitch_id]))

    seconds = wait_until(available, what=f"vSwitch {vswitch_id}", timeout=timeout, clock=clock, sleep=sleep)
    say(f"vSwitch {vswitch_id} is Available ({seconds:.0f}s)")
    return vswitch_id


def create_snat(
    cloud: VSwitchWriter, facts: OutboundFacts, vswitch_id: str, *, say: Say, region: str,
    timeout: float = DEFAULT_CLOUD_TIMEOUT, clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """CreateSnatEntry for the whole vSwitch on the NAT gateway of its default route; wait until Available."""
    table, ip = facts.snat_table, facts.snat_ip
    if facts.nat is None or table is None:
        raise refusal(facts, region)
    if ip is None:
        raise InvalidInput(f"NAT gateway {facts.nat.nat_id} has no EIP to translate to",
                           hint=f"bind an EIP to it first: aliyun vpc AssociateEipAddress --InstanceId "
                                f"{facts.nat.nat_id} --InstanceType Nat --AllocationId <eip-...>")
    entry_id = cloud.create_snat_entry(table, snat_ip=ip, source_vswitch_id=vswitch_id)
    say(f"created SNAT entry {entry_id} in {table} of NAT gateway {facts.nat.nat_id}: {vswitch_id} -> {ip}; "
        "waiting until it is Available")

    def available() -> bool:
        return any(e.snat_entry_id == entry_id and e.status == "Available"
                   for e in cloud.describe_snat_table_entries(table, source_vswitch_id=vswitch_id))

    seconds = wait_until(available, what=f"SNAT entry {entry_id}", timeout=timeout, clock=clock, sleep=sleep)
    say(f"SNAT entry {entry_id} is Available ({seconds:.0f}s)")
    return entry_id


def snat_call(facts: OutboundFacts, vswitch_id: str) -> str:
    """The CreateSnatEntry call --snat makes, for --dry-run."""
    return (f"CreateSnatEntry SnatTableId={facts.snat_table or '?'} SourceVSwitchId={vswitch_id} "
            f"SnatIp={facts.snat_ip or '?'}")


def describe(facts: Sequence[OutboundFacts]) -> list[str]:
    """One line per vSwitch whose outbound path is fine, for the command's output."""
    lines = []
    for fact in facts:
        verdict = fact.verdict
        if verdict.ok:
            entry = verdict.covering[0]
            source = f"SourceVSwitchId {entry.source_vswitch_id}" if entry.source_vswitch_id else \
                f"SourceCIDR {entry.source_cidr}"
            lines.append(f"outbound ok: {verdict.vswitch_id} -> 0.0.0.0/0 via NAT gateway {verdict.nat_id} "
                         f"({verdict.route_table_type.lower()} route table {verdict.route_table_id}), SNAT entry "
                         f"{entry.entry_id} ({source}) -> {entry.snat_ip}")
    return lines
