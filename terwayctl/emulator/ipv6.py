"""IPv6 in the emulator: a /56 per VPC, a /64 per vSwitch, ENI IPv6 addresses, IPv6 gateways and the
per-address IPv6 internet bandwidth (docs/emulator.md, "IPv6").

ECS 2014-05-26: AssignIpv6Addresses (NetworkInterfaceId, Ipv6AddressCount or Ipv6Address.N,
ClientToken), UnassignIpv6Addresses (Ipv6Address.N), `Ipv6AddressCount` on CreateNetworkInterface,
`Ipv6Sets` in DescribeNetworkInterfaces. VPC 2016-04-28: `Ipv6CidrBlock` on DescribeVpcs /
DescribeVSwitches and CreateVSwitch (the /64's index in the VPC's /56), CreateIpv6Gateway,
DescribeIpv6Gateways, DescribeIpv6Addresses, AllocateIpv6InternetBandwidth,
DeleteIpv6InternetBandwidth.

Addresses are handed out in order from `<vSwitch /64>::1`; the last three of the /64 are reserved as
for IPv4 (the gateway is the third from the end, as upstream Terway derives it).
"""

from __future__ import annotations

import hashlib
import ipaddress
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from terwayctl.emulator import params as p
from terwayctl.emulator.errors import ApiError, not_found
from terwayctl.emulator.store import eni_row, row_or_not_found

if TYPE_CHECKING:
    from terwayctl.emulator.context import Call

Reply = dict[str, Any]
Handler = Callable[["Call"], Reply]

SCHEMA = """
CREATE TABLE IF NOT EXISTS vpc_ipv6 (vpc_id TEXT PRIMARY KEY, cidr TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vswitch_ipv6 (vswitch_id TEXT PRIMARY KEY, cidr TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ipv6s (address_id TEXT PRIMARY KEY, vswitch_id TEXT NOT NULL, ip TEXT NOT NULL,
    eni_id TEXT NOT NULL, UNIQUE (vswitch_id, ip));
CREATE INDEX IF NOT EXISTS ipv6s_eni ON ipv6s (eni_id);
CREATE TABLE IF NOT EXISTS ipv6_gateways (gateway_id TEXT PRIMARY KEY, vpc_id TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ipv6_bandwidth (bandwidth_id TEXT PRIMARY KEY, address_id TEXT NOT NULL UNIQUE,
    gateway_id TEXT NOT NULL, bandwidth INTEGER NOT NULL);
"""

VPC_BASE = ipaddress.IPv6Network("2001:db8::/32")
"""The emulator's VPC /56s come from the documentation prefix (RFC 3849), one per VPC in order."""
MAX_PER_CALL = 10
MAX_UNATTACHED = 10
RESERVED_TAIL = 3

# Codes. Confirmed: InvalidOperation.Ipv6CountExceeded (upstream Terway's errors.go),
# InvalidVSwitchId.IpNotEnough (the IPv4 code; the docs name no IPv6 variant). Not confirmed (the
# public error tables could not be read): InvalidOperation.Ipv6NotSupported, InvalidIpv6Address.*,
# InvalidIpv6Gateway.*, see docs/emulator.md.
IPV6_COUNT_EXCEEDED = "InvalidOperation.Ipv6CountExceeded"
IPV6_NOT_SUPPORTED = "InvalidOperation.Ipv6NotSupported"
IP_NOT_ENOUGH = "InvalidVSwitchId.IpNotEnough"


def vpc_cidr_for(index: int) -> str:
    """The /56 of the `index`-th IPv6 VPC: 2001:db8:0:<index>00::/56."""
    return str(ipaddress.IPv6Network((int(VPC_BASE.network_address) + (index << 72), 56)))


def vswitch_cidr_in(vpc_cidr: str, block: int) -> str:
    """The /64 number `block` (0..255) of a VPC's /56 (CreateVSwitch's Ipv6CidrBlock)."""
    net = ipaddress.IPv6Network(vpc_cidr)
    return str(ipaddress.IPv6Network((int(net.network_address) + (block << 64), 64)))


def gateway_of(cidr: str) -> str:
    """The vSwitch's IPv6 gateway: the third address from the end of its /64 (upstream
    DeriveGatewayIP, index -3)."""
    net = ipaddress.IPv6Network(cidr)
    return str(net.broadcast_address - 2)


def vpc_ipv6(conn: sqlite3.Connection, vpc_id: str) -> str:
    row = conn.execute("SELECT cidr FROM vpc_ipv6 WHERE vpc_id = ?", (vpc_id,)).fetchone()
    return "" if row is None else str(row[0])


def vswitch_ipv6(conn: sqlite3.Connection, vswitch_id: str) -> str:
    row = conn.execute("SELECT cidr FROM vswitch_ipv6 WHERE vswitch_id = ?", (vswitch_id,)).fetchone()
    return "" if row is None else str(row[0])


def enable_vpc(conn: sqlite3.Connection, vpc_id: str, cidr: str = "") -> str:
    """Give the VPC its /56 (the next free one of 2001:db8::/32 unless given)."""
    current = vpc_ipv6(conn, vpc_id)
    if current:
        return current
    if not cidr:
        taken = {str(r[0]) for r in conn.execute("SELECT cidr FROM vpc_ipv6")}
        cidr = next(c for c in (vpc_cidr_for(i) for i in range(1 << 16)) if c not in taken)
    conn.execute("INSERT INTO vpc_ipv6 VALUES (?, ?)", (vpc_id, cidr))
    return cidr


def enable_vswitch(conn: sqlite3.Connection, vswitch_id: str, vpc_id: str, block: int) -> str:
    vpc_cidr = vpc_ipv6(conn, vpc_id)
    if not vpc_cidr:
        raise ApiError("InvalidVpc.Ipv6NotEnabled", f"The VPC \"{vpc_id}\" has no IPv6 CIDR block; enable IPv6 on it first.")
    cidr = vswitch_cidr_in(vpc_cidr, block)
    if conn.execute("SELECT 1 FROM vswitch_ipv6 WHERE cidr = ?", (cidr,)).fetchone() is not None:
        raise ApiError("InvalidIpv6CidrBlock.Overlapped", f"The IPv6 CIDR block {cidr} is used by another vSwitch.")
    conn.execute("INSERT OR REPLACE INTO vswitch_ipv6 VALUES (?, ?)", (vswitch_id, cidr))
    return cidr


def eni_ipv6s(conn: sqlite3.Connection, eni_id: str) -> list[str]:
    rows = conn.execute("SELECT ip FROM ipv6s WHERE eni_id = ?", (eni_id,)).fetchall()
    return sorted((str(r[0]) for r in rows), key=lambda a: int(ipaddress.IPv6Address(a)))


def internet_ipv6s(conn: sqlite3.Connection, eni_id: str) -> list[str]:
    """The ENI's IPv6 addresses that have IPv6 internet bandwidth (through the VPC's IPv6 gateway)."""
    rows = conn.execute(
        "SELECT a.ip FROM ipv6s a JOIN ipv6_bandwidth b ON b.address_id = a.address_id WHERE a.eni_id = ?", (eni_id,)
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def _address_id(vswitch_id: str, ip: str) -> str:
    return "ipv6-bp1" + hashlib.sha1(f"{vswitch_id}:{ip}".encode()).hexdigest()[:17]


def _usable(cidr: str) -> tuple[int, int]:
    net = ipaddress.IPv6Network(cidr)
    return int(net.network_address) + 1, int(net.broadcast_address) - RESERVED_TAIL


def _require_cidr(conn: sqlite3.Connection, vswitch_id: str) -> str:
    cidr = vswitch_ipv6(conn, vswitch_id)
    if not cidr:
        raise ApiError(IPV6_NOT_SUPPORTED, f"The vSwitch \"{vswitch_id}\" has no IPv6 CIDR block; enable IPv6 on it.")
    return cidr


def allocate(conn: sqlite3.Connection, vswitch_id: str, eni_id: str, count: int) -> list[str]:
    """The `count` lowest free IPv6 addresses of the vSwitch's /64."""
    cidr = _require_cidr(conn, vswitch_id)
    first, last = _usable(cidr)
    used = {int(ipaddress.IPv6Address(r[0])) for r in conn.execute("SELECT ip FROM ipv6s WHERE vswitch_id = ?",
                                                                    (vswitch_id,))}
    chosen: list[str] = []
    candidate = first
    while len(chosen) < count and candidate <= last:
        if candidate not in used:
            chosen.append(str(ipaddress.IPv6Address(candidate)))
        candidate += 1
    if len(chosen) < count:
        raise ApiError(IP_NOT_ENOUGH, f"The specified VSwitch \"{vswitch_id}\" has not enough IpAddress.")
    _insert(conn, vswitch_id, eni_id, chosen)
    return chosen


def allocate_specific(conn: sqlite3.Connection, vswitch_id: str, eni_id: str, addresses: Sequence[str]) -> list[str]:
    cidr = _require_cidr(conn, vswitch_id)
    first, last = _usable(cidr)
    chosen: list[str] = []
    for text in addresses:
        try:
            value = int(ipaddress.IPv6Address(text))
        except ValueError:
            raise ApiError("InvalidIpv6Address.Malformed", f"The IPv6 address \"{text}\" is malformed.") from None
        if not first <= value <= last:
            raise ApiError("InvalidIpv6Address.Mismatch",
                           f"The IPv6 address \"{text}\" is not a usable address of the vSwitch {vswitch_id} ({cidr}).")
        address = str(ipaddress.IPv6Address(value))
        taken = conn.execute("SELECT 1 FROM ipv6s WHERE vswitch_id = ? AND ip = ?", (vswitch_id, address)).fetchone()
        if taken is not None or address in chosen:
            raise ApiError("InvalidIpv6Address.Duplicated", f"The IPv6 address \"{text}\" is already in use.")
        chosen.append(address)
    _insert(conn, vswitch_id, eni_id, chosen)
    return chosen


def _insert(conn: sqlite3.Connection, vswitch_id: str, eni_id: str, addresses: Sequence[str]) -> None:
    conn.executemany("INSERT INTO ipv6s VALUES (?, ?, ?, ?)",
                     [(_address_id(vswitch_id, a), vswitch_id, a, eni_id) for a in addresses])


def release(conn: sqlite3.Connection, eni_id: str, addresses: Sequence[str] | None = None) -> None:
    """Give addresses back (all of the ENI's when None); their internet bandwidth goes with them."""
    if addresses is None:
        rows = conn.execute("SELECT address_id FROM ipv6s WHERE eni_id = ?", (eni_id,)).fetchall()
    else:
        wanted = [str(ipaddress.IPv6Address(a)) for a in addresses]
        rows = [r for a in wanted for r in conn.execute(
            "SELECT address_id FROM ipv6s WHERE eni_id = ? AND ip = ?", (eni_id, a)).fetchall()]
    ids = [(str(r[0]),) for r in rows]
    conn.executemany("DELETE FROM ipv6_bandwidth WHERE address_id = ?", ids)
    conn.executemany("DELETE FROM ipv6s WHERE address_id = ?", ids)


def ipv6_limit(per_eni: int | None, attached: bool) -> int:
    """The IPv6 quota of an ENI: the instance type's IPv6-per-ENI when attached, 10 when Available."""
    return (per_eni or 0) if attached else MAX_UNATTACHED


def sets_reply(conn: sqlite3.Connection, eni_id: str) -> Reply:
    """DescribeNetworkInterfaces' `Ipv6Sets` of an ENI."""
    return {"Ipv6Set": [{"Ipv6Address": a} for a in eni_ipv6s(conn, eni_id)]}


# --- ECS actions -------------------------------------------------------------------------------------


def _limit(conn: sqlite3.Connection, eni: sqlite3.Row) -> int:
    if not eni["instance_id"]:
        return MAX_UNATTACHED
    from terwayctl.emulator.actions_ecs import instance_type_of

    return ipv6_limit(instance_type_of(conn, eni["instance_id"]).eni_ipv6_quantity, True)


def check_quota(conn: sqlite3.Connection, eni: sqlite3.Row, number: int) -> None:
    have, limit = len(eni_ipv6s(conn, eni["eni_id"])), _limit(conn, eni)
    if have + number > limit:
        raise ApiError(IPV6_COUNT_EXCEEDED, f"The ENI \"{eni['eni_id']}\" has {have} of at most {limit} IPv6 "
                       f"addresses; {number} more do not fit.")


def assign_ipv6_addresses(call: Call) -> Reply:
    conn = call.conn
    eni = eni_row(conn, p.required(call.params, "NetworkInterfaceId"))
    wanted, number = p.count_or_addresses(call.params, "Ipv6AddressCount", "Ipv6Address", "InvalidParam.Ipv6Count",
                                          MAX_PER_CALL, "IPv6 addresses")
    if eni["status"] not in ("Available", "InUse"):
        raise ApiError("InvalidOperation.InvalidEniState",
                       f"The ENI \"{eni['eni_id']}\" is {eni['status']}; this operation needs it Available or InUse.")
    _require_cidr(conn, eni["vswitch_id"])
    check_quota(conn, eni, number)
    if wanted:
        assigned = allocate_specific(conn, eni["vswitch_id"], eni["eni_id"], wanted)
    else:
        assigned = allocate(conn, eni["vswitch_id"], eni["eni_id"], number)
    _changed(call, eni["eni_id"])
    return {"NetworkInterfaceId": eni["eni_id"], "Ipv6Sets": {"Ipv6Address": assigned}}


def unassign_ipv6_addresses(call: Call) -> Reply:
    conn = call.conn
    eni = eni_row(conn, p.required(call.params, "NetworkInterfaceId"))
    addresses = p.addresses_to_release(call.params, "Ipv6Address", "MissingIpv6Address", "InvalidParam.Ipv6Count",
                                       MAX_PER_CALL, "IPv6 addresses")
    if eni["status"] not in ("Available", "InUse"):
        raise ApiError("InvalidOperation.InvalidEniState",
                       f"The ENI \"{eni['eni_id']}\" is {eni['status']}; this operation needs it Available or InUse.")
    held = set(eni_ipv6s(conn, eni["eni_id"]))
    for address in addresses:
        try:
            normal = str(ipaddress.IPv6Address(address))
        except ValueError:
            raise ApiError("InvalidIpv6Address.Malformed", f"The IPv6 address \"{address}\" is malformed.") from None
        if normal not in held:
            raise ApiError("InvalidIp.IpUnassigned", f"The address \"{address}\" is not assigned to {eni['eni_id']}.")
    release(conn, eni["eni_id"], addresses)
    _changed(call, eni["eni_id"])
    return {}


def _changed(call: Call, eni_id: str) -> None:
    from terwayctl.emulator.actions_ecs import _ips_changed

    _ips_changed(call, eni_id)


ECS_IPV6_ACTIONS: dict[str, Handler] = {
    "AssignIpv6Addresses": assign_ipv6_addresses,
    "UnassignIpv6Addresses": unassign_ipv6_addresses,
}


# --- VPC actions -------------------------------------------------------------------------------------


def create_ipv6_gateway(call: Call) -> Reply:
    conn = call.conn
    vpc_id = p.required(call.params, "VpcId")
    if conn.execute("SELECT 1 FROM vpcs WHERE vpc_id = ?", (vpc_id,)).fetchone() is None:
        raise not_found("Vpc", vpc_id)
    if not vpc_ipv6(conn, vpc_id):
        raise ApiError("OperationFailed.VpcNotEnableIpv6", f"The VPC \"{vpc_id}\" has no IPv6 CIDR block.")
    if conn.execute("SELECT 1 FROM ipv6_gateways WHERE vpc_id = ?", (vpc_id,)).fetchone() is not None:
        raise ApiError("QuotaExceeded.Ipv6Gateway", f"The VPC \"{vpc_id}\" already has an IPv6 gateway.")
    gateway_id = "ipv6gw-bp1" + hashlib.sha1(f"ipv6gw:{vpc_id}".encode()).hexdigest()[:17]
    conn.execute("INSERT INTO ipv6_gateways VALUES (?, ?, ?)", (gateway_id, vpc_id, call.params.get("Name", "")))
    return {"Ipv6GatewayId": gateway_id}


def describe_ipv6_gateways(call: Call) -> Reply:
    conn = call.conn
    rows = conn.execute("SELECT * FROM ipv6_gateways ORDER BY rowid").fetchall()
    vpc = p.optional(call.params, "VpcId")
    gid = p.optional(call.params, "Ipv6GatewayId")
    rows = [r for r in rows if (vpc is None or r["vpc_id"] == vpc) and (gid is None or r["gateway_id"] == gid)]
    page = p.page_by_number(call.params, len(rows), 10, 50)
    return {**page.fields(), "Ipv6Gateways": {"Ipv6Gateway": [
        {"Ipv6GatewayId": r["gateway_id"], "VpcId": r["vpc_id"], "Name": r["name"], "Status": "Available",
         "RegionId": call.region, "BusinessStatus": "Normal", "Spec": "Small", "InstanceChargeType": "PostPaid"}
        for r in rows[page.items_from:page.items_to]]}}


def _address_reply(conn: sqlite3.Connection, row: sqlite3.Row, region: str) -> Reply:
    eni = conn.execute("SELECT * FROM enis WHERE eni_id = ?", (row["eni_id"],)).fetchone()
    bw = conn.execute("SELECT * FROM ipv6_bandwidth WHERE address_id = ?", (row["address_id"],)).fetchone()
    vpc = eni["vpc_id"] if eni is not None else ""
    gateway = conn.execute("SELECT gateway_id FROM ipv6_gateways WHERE vpc_id = ?", (vpc,)).fetchone()
    return {
        "Ipv6AddressId": row["address_id"], "Ipv6Address": row["ip"], "VSwitchId": row["vswitch_id"], "VpcId": vpc,
        "Ipv6GatewayId": gateway[0] if gateway else "", "Status": "Available", "AddressType": "Ipv6Address",
        "NetworkType": "Public" if bw is not None else "Private", "RegionId": region,
        "AssociatedInstanceId": row["eni_id"], "AssociatedInstanceType": "NetworkInterface",
        "Ipv6InternetBandwidth": ({"Ipv6InternetBandwidthId": bw["bandwidth_id"], "Bandwidth": bw["bandwidth"],
                                   "InternetChargeType": "PayByTraffic", "BusinessStatus": "Normal"}
                                  if bw is not None else {}),
    }


def describe_ipv6_addresses(call: Call) -> Reply:
    conn = call.conn
    rows = conn.execute("SELECT * FROM ipv6s ORDER BY rowid").fetchall()
    address = p.optional(call.params, "Ipv6Address")
    if address is not None:
        try:
            address = str(ipaddress.IPv6Address(address))
        except ValueError:
            raise ApiError("InvalidIpv6Address.Malformed", f"The IPv6 address \"{address}\" is malformed.") from None
    aid = p.optional(call.params, "Ipv6AddressId")
    vsw = p.optional(call.params, "VSwitchId")
    inst = p.optional(call.params, "AssociatedInstanceId")
    rows = [r for r in rows if (address is None or r["ip"] == address) and (aid is None or r["address_id"] == aid)
            and (vsw is None or r["vswitch_id"] == vsw) and (inst is None or r["eni_id"] == inst)]
    page = p.page_by_number(call.params, len(rows), 10, 50)
    return {**page.fields(), "Ipv6Addresses": {"Ipv6Address": [
        _address_reply(conn, r, call.region) for r in rows[page.items_from:page.items_to]]}}


def allocate_ipv6_internet_bandwidth(call: Call) -> Reply:
    """Open IPv6 internet bandwidth for one address: the address's traffic may then pass the VPC's
    IPv6 gateway (both directions)."""
    conn = call.conn
    aid = p.required(call.params, "Ipv6AddressId")
    gid = p.required(call.params, "Ipv6GatewayId")
    bandwidth = p.integer(call.params, "Bandwidth", 0, 1, 5000)
    if bandwidth == 0:
        raise ApiError("MissingParameter", "Bandwidth is mandatory for this action.")
    row = row_or_not_found(conn, "SELECT * FROM ipv6s WHERE address_id = ?", "Ipv6Address", aid)
    gateway = row_or_not_found(conn, "SELECT * FROM ipv6_gateways WHERE gateway_id = ?", "Ipv6Gateway", gid)
    eni = eni_row(conn, row["eni_id"])
    if gateway["vpc_id"] != eni["vpc_id"]:
        raise ApiError("InvalidIpv6Gateway.VpcMismatch", f"The IPv6 gateway \"{gid}\" is not in the address's VPC.")
    if conn.execute("SELECT 1 FROM ipv6_bandwidth WHERE address_id = ?", (aid,)).fetchone() is not None:
        raise ApiError("OperationFailed.Ipv6AddressHasBandwidth", f"The IPv6 address \"{aid}\" already has bandwidth.")
    bandwidth_id = "ipv6bw-bp1" + hashlib.sha1(f"bw:{aid}".encode()).hexdigest()[:17]
    conn.execute("INSERT INTO ipv6_bandwidth VALUES (?, ?, ?, ?)", (bandwidth_id, aid, gid, bandwidth))
    _changed(call, eni["eni_id"])
    return {"Ipv6AddressId": aid, "InternetBandwidthId": bandwidth_id}


def delete_ipv6_internet_bandwidth(call: Call) -> Reply:
    conn = call.conn
    aid = p.optional(call.params, "Ipv6AddressId")
    address = p.optional(call.params, "Ipv6InternetBandwidthId")
    row = None
    if aid is not None:
        row = conn.execute("SELECT * FROM ipv6_bandwidth WHERE address_id = ?", (aid,)).fetchone()
    elif address is not None:
        row = conn.execute("SELECT * FROM ipv6_bandwidth WHERE bandwidth_id = ?", (address,)).fetchone()
    else:
        raise ApiError("MissingParameter", "Ipv6AddressId or Ipv6InternetBandwidthId is mandatory for this action.")
    if row is None:
        raise not_found("Ipv6InternetBandwidth", aid or address or "")
    conn.execute("DELETE FROM ipv6_bandwidth WHERE bandwidth_id = ?", (row["bandwidth_id"],))
    owner = conn.execute("SELECT eni_id FROM ipv6s WHERE address_id = ?", (row["address_id"],)).fetchone()
    if owner is not None:
        _changed(call, str(owner[0]))
    return {}


VPC_IPV6_ACTIONS: dict[str, Handler] = {
    "CreateIpv6Gateway": create_ipv6_gateway,
    "DescribeIpv6Gateways": describe_ipv6_gateways,
    "DescribeIpv6Addresses": describe_ipv6_addresses,
    "AllocateIpv6InternetBandwidth": allocate_ipv6_internet_bandwidth,
    "DeleteIpv6InternetBandwidth": delete_ipv6_internet_bandwidth,
}
