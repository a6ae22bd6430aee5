"""VPC 2016-04-28 actions: VPCs, vSwitches, NAT gateways, SNAT entries and EIPs.

Everything is read only except the SNAT table: CreateSnatEntry and DeleteSnatEntry (the lab
enforces the table in its router namespace, and removes an entry to inject "pods have no internet").
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Sequence
from typing import Any

from terwayctl.emulator import params as p
from terwayctl.emulator.context import Call, Handler, Reply
from terwayctl.emulator.errors import ApiError, invalid_parameter, not_found
from terwayctl.emulator.store import CREATED_AT, available_count, new_id

CREATION_TIME = CREATED_AT


def _select(
    conn: sqlite3.Connection, table: str, filters: Sequence[tuple[str, str | None]]
) -> list[sqlite3.Row]:
    clauses = [f"{column} = ?" for column, value in filters if value is not None]
    args = [value for _, value in filters if value is not None]
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    return conn.execute(f"SELECT * FROM {table}{where} ORDER BY rowid", args).fetchall()


def _paged(call: Call, rows: list[Any], key: str, inner: str, size: int, render: Any) -> Reply:
    page = p.page_by_number(call.params, len(rows), 10, size)
    return {**page.fields(), key: {inner: [render(r) for r in rows[page.items_from:page.items_to]]}}


def describe_vpcs(call: Call) -> Reply:
    conn = call.conn
    rows = _select(conn, "vpcs", [("name", p.optional(call.params, "VpcName"))])
    wanted = p.optional(call.params, "VpcId")
    if wanted is not None:
        ids = {v.strip() for v in wanted.split(",")}
        rows = [r for r in rows if r["vpc_id"] in ids]

    def render(vpc: sqlite3.Row) -> Reply:
        vswitches = [r[0] for r in conn.execute("SELECT vswitch_id FROM vswitches WHERE vpc_id = ? ORDER BY rowid",
                                                (vpc["vpc_id"],))]
        nats = [r[0] for r in conn.execute("SELECT nat_id FROM nat_gateways WHERE vpc_id = ? ORDER BY rowid",
                                           (vpc["vpc_id"],))]
        return {
            "VpcId": vpc["vpc_id"], "VpcName": vpc["name"], "RegionId": call.region, "Status": "Available",
            "CidrBlock": vpc["cidr"], "VRouterId": "vrt-" + vpc["vpc_id"].removeprefix("vpc-"), "IsDefault": False,
            "Description": "", "CreationTime": CREATION_TIME, "ResourceGroupId": "", "Ipv6CidrBlock": "",
            "VSwitchIds": {"VSwitchId": vswitches}, "NatGatewayIds": {"NatGatewayIds": nats},
            "SecondaryCidrBlocks": {"SecondaryCidrBlock": []}, "UserCidrs": {"UserCidr": []},
        }

    return _paged(call, rows, "Vpcs", "Vpc", 50, render)


def describe_vswitches(call: Call) -> Reply:
    conn = call.conn
    rows = _select(conn, "vswitches", [
        ("vpc_id", p.optional(call.params, "VpcId")), ("zone_id", p.optional(call.params, "ZoneId")),
        ("vswitch_id", p.optional(call.params, "VSwitchId")), ("name", p.optional(call.params, "VSwitchName")),
    ])

    def render(vsw: sqlite3.Row) -> Reply:
        return {
            "VSwitchId": vsw["vswitch_id"], "VSwitchName": vsw["name"], "VpcId": vsw["vpc_id"],
            "ZoneId": vsw["zone_id"], "CidrBlock": vsw["cidr"], "Status": "Available",
            "AvailableIpAddressCount": available_count(conn, vsw["vswitch_id"]), "IsDefault": False,
            "Description": "", "CreationTime": CREATION_TIME, "ResourceGroupId": "", "Ipv6CidrBlock": "",
            "NetworkAclId": "",
            "RouteTable": {"RouteTableId": "vtb-" + vsw["vpc_id"].removeprefix("vpc-"), "RouteTableType": "System"},
        }

    return _paged(call, rows, "VSwitches", "VSwitch", 50, render)


def describe_nat_gateways(call: Call) -> Reply:
    conn = call.conn
    rows = _select(conn, "nat_gateways", [
        ("vpc_id", p.optional(call.params, "VpcId")), ("nat_id", p.optional(call.params, "NatGatewayId")),
        ("name", p.optional(call.params, "Name")),
    ])

    def render(nat: sqlite3.Row) -> Reply:
        eips = conn.execute("SELECT * FROM eips WHERE instance_id = ? ORDER BY rowid", (nat["nat_id"],)).fetchall()
        vsw = conn.execute("SELECT zone_id FROM vswitches WHERE vswitch_id = ?", (nat["vswitch_id"],)).fetchone()
        return {
            "NatGatewayId": nat["nat_id"], "Name": nat["name"], "VpcId": nat["vpc_id"], "RegionId": call.region,
            "Status": "Available", "NatType": "Enhanced", "NetworkType": "internet", "Spec": "",
            "InstanceChargeType": "PostPaid", "Description": "", "CreationTime": CREATION_TIME,
            "SnatTableIds": {"SnatTableId": [nat["snat_table_id"]]},
            "ForwardTableIds": {"ForwardTableId": []},
            "IpLists": {"IpList": [{"IpAddress": e["ip"], "AllocationId": e["allocation_id"], "SnatEntryEnabled": True,
                                    "UsingStatus": "UsedBySnatTable"} for e in eips]},
            "NatGatewayPrivateInfo": {"VswitchId": nat["vswitch_id"], "IzNo": vsw["zone_id"] if vsw else "",
                                      "EniInstanceId": "", "PrivateIpAddress": "", "MaxBandwidth": 5120},
        }

    return _paged(call, rows, "NatGateways", "NatGateway", 50, render)


def describe_snat_table_entries(call: Call) -> Reply:
    conn = call.conn
    table = p.optional(call.params, "SnatTableId")
    nat = p.optional(call.params, "NatGatewayId")
    if table is None and nat is None:
        table = p.required(call.params, "SnatTableId")
    if table is not None and conn.execute("SELECT 1 FROM nat_gateways WHERE snat_table_id = ?", (table,)).fetchone() is None:
        raise not_found("SnatTable", table)
    rows = _select(conn, "snat_entries", [
        ("snat_table_id", table), ("nat_id", nat), ("source_cidr", p.optional(call.params, "SourceCIDR")),
        ("source_vswitch_id", p.optional(call.params, "SourceVSwitchId")),
        ("entry_id", p.optional(call.params, "SnatEntryId")), ("snat_ip", p.optional(call.params, "SnatIp")),
    ])

    def render(entry: sqlite3.Row) -> Reply:
        return {
            "SnatEntryId": entry["entry_id"], "SnatEntryName": "", "SnatTableId": entry["snat_table_id"],
            "NatGatewayId": entry["nat_id"], "SourceCIDR": entry["source_cidr"],
            "SourceVSwitchId": entry["source_vswitch_id"], "SnatIp": entry["snat_ip"], "Status": "Available",
        }

    return _paged(call, rows, "SnatTableEntries", "SnatTableEntry", 100, render)


def describe_eip_addresses(call: Call) -> Reply:
    rows = _select(call.conn, "eips", [
        ("allocation_id", p.optional(call.params, "AllocationId")), ("ip", p.optional(call.params, "EipAddress")),
        ("instance_id", p.optional(call.params, "AssociatedInstanceId")),
        ("instance_type", p.optional(call.params, "AssociatedInstanceType")),
    ])
    status = p.optional(call.params, "Status")
    if status is not None:
        rows = [r for r in rows if ("InUse" if r["instance_id"] else "Available") == status]

    def render(eip: sqlite3.Row) -> Reply:
        return {
            "AllocationId": eip["allocation_id"], "IpAddress": eip["ip"],
            "Status": "InUse" if eip["instance_id"] else "Available", "InstanceId": eip["instance_id"],
            "InstanceType": eip["instance_type"], "InstanceRegionId": call.region if eip["instance_id"] else "",
            "RegionId": call.region, "Bandwidth": str(eip["bandwidth"]), "InternetChargeType": "PayByTraffic",
            "ChargeType": "PostPaid", "AllocationTime": CREATION_TIME, "Name": "", "Description": "",
        }

    return _paged(call, rows, "EipAddresses", "EipAddress", 100, render)


def _snat_table(conn: sqlite3.Connection, table_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM nat_gateways WHERE snat_table_id = ?", (table_id,)).fetchone()
    if row is None:
        raise not_found("SnatTable", table_id)
    return row  # type: ignore[no-any-return]


def create_snat_entry(call: Call) -> Reply:
    """Add an entry: the sources of a vSwitch (SourceVSwitchId) or a CIDR (SourceCIDR), never both.

    Each vSwitch and each source CIDR may appear in one entry of a table only; the SNAT IP must be
    an EIP bound to the table's NAT gateway. The entry is Available at once (the real one is Pending
    for a moment).
    """
    conn = call.conn
    table_id = p.required(call.params, "SnatTableId")
    snat_ip = p.required(call.params, "SnatIp")
    nat = _snat_table(conn, table_id)
    source_vsw = p.optional(call.params, "SourceVSwitchId")
    source_cidr = p.optional(call.params, "SourceCIDR")
    if (source_vsw is None) == (source_cidr is None):
        raise invalid_parameter("SourceVSwitchId", "give exactly one of SourceVSwitchId and SourceCIDR")
    if source_vsw is not None:
        vsw = conn.execute("SELECT cidr, vpc_id FROM vswitches WHERE vswitch_id = ?", (source_vsw,)).fetchone()
        if vsw is None:
            raise not_found("VSwitch", source_vsw)
        if vsw["vpc_id"] != nat["vpc_id"]:
            raise invalid_parameter("SourceVSwitchId", f"{source_vsw} is not in the NAT gateway's VPC {nat['vpc_id']}")
        cidr = str(vsw["cidr"])
    else:
        try:
            cidr = str(ipaddress.IPv4Network(str(source_cidr), strict=False))
        except ValueError:
            raise invalid_parameter("SourceCIDR", f"{source_cidr!r} is not an IPv4 CIDR") from None
    bound = {r[0] for r in conn.execute("SELECT ip FROM eips WHERE instance_id = ?", (nat["nat_id"],))}
    for ip in snat_ip.split(","):
        if ip.strip() not in bound:
            raise ApiError("InvalidIp.NotInNatgw", f"The SNAT IP \"{ip.strip()}\" is not an EIP of the NAT gateway "
                           f"{nat['nat_id']}.")
    clash = conn.execute(
        "SELECT entry_id FROM snat_entries WHERE snat_table_id = ? AND ((? != '' AND source_vswitch_id = ?)"
        " OR (? = '' AND source_vswitch_id = '' AND source_cidr = ?))",
        (table_id, source_vsw or "", source_vsw or "", source_vsw or "", cidr),
    ).fetchone()
    if clash is not None:
        raise ApiError("Forbidden.SourceDuplicated", f"The source {source_vsw or cidr} already has the SNAT entry "
                       f"{clash[0]} in {table_id}.", 403)
    entry_id = new_id(conn, "snat")
    conn.execute("INSERT INTO snat_entries VALUES (?, ?, ?, ?, ?, ?)",
                 (entry_id, table_id, nat["nat_id"], cidr, source_vsw or "", snat_ip))
    return {"SnatEntryId": entry_id}


def delete_snat_entry(call: Call) -> Reply:
    conn = call.conn
    table_id = p.required(call.params, "SnatTableId")
    entry_id = p.required(call.params, "SnatEntryId")
    _snat_table(conn, table_id)
    gone = conn.execute("DELETE FROM snat_entries WHERE snat_table_id = ? AND entry_id = ?", (table_id, entry_id))
    if gone.rowcount == 0:
        raise ApiError("InvalidSnatEntryId.NotFound", f"The specified SnatEntry \"{entry_id}\" does not exist.", 404)
    return {}


VPC_ACTIONS: dict[str, Handler] = {
    "DescribeVpcs": describe_vpcs,
    "DescribeVSwitches": describe_vswitches,
    "DescribeNatGateways": describe_nat_gateways,
    "DescribeSnatTableEntries": describe_snat_table_entries,
    "DescribeEipAddresses": describe_eip_addresses,
    "CreateSnatEntry": create_snat_entry,
    "DeleteSnatEntry": delete_snat_entry,
}
