"""VPC 2016-04-28 actions: VPCs, vSwitches, route tables, NAT gateways, SNAT entries and EIPs.

Writes: CreateVSwitch, CreateRouteEntry, CreateRouteTable, AssociateRouteTable, UnassociateRouteTable,
DeleteRouteTable, CreateSnatEntry and DeleteSnatEntry (the lab enforces the SNAT table and the vSwitches'
route tables in its router namespace, and changes them to inject "pods have no internet").
Created vSwitches and SNAT entries are asynchronous as in the real API: they read Pending first
(for `pending_polls` reads, default 1), then Available.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Sequence
from typing import Any

from terwayctl.emulator import ipv6
from terwayctl.emulator import params as p
from terwayctl.emulator.context import Call, Handler, Reply
from terwayctl.emulator.errors import ApiError, invalid_parameter, not_found
from terwayctl.emulator.store import (
    CREATED_AT,
    add_route,
    available_count,
    mark_pending,
    new_id,
    route_table_of,
    row_or_not_found,
    status_of,
    system_route_table,
)

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
            "Description": "", "CreationTime": CREATION_TIME, "ResourceGroupId": "",
            "Ipv6CidrBlock": ipv6.vpc_ipv6(conn, vpc["vpc_id"]),
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
        table_id, table_type = route_table_of(conn, vsw["vswitch_id"], vsw["vpc_id"])
        return {
            "VSwitchId": vsw["vswitch_id"], "VSwitchName": vsw["name"], "VpcId": vsw["vpc_id"],
            "ZoneId": vsw["zone_id"], "CidrBlock": vsw["cidr"], "Status": status_of(conn, vsw["vswitch_id"]),
            "AvailableIpAddressCount": available_count(conn, vsw["vswitch_id"]), "IsDefault": False,
            "Description": "", "CreationTime": CREATION_TIME, "ResourceGroupId": "",
            "Ipv6CidrBlock": ipv6.vswitch_ipv6(conn, vsw["vswitch_id"]), "NetworkAclId": "",
            "RouteTable": {"RouteTableId": table_id, "RouteTableType": table_type},
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
            "SourceVSwitchId": entry["source_vswitch_id"], "SnatIp": entry["snat_ip"],
            "Status": status_of(conn, entry["entry_id"]),
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
    return row_or_not_found(conn, "SELECT * FROM nat_gateways WHERE snat_table_id = ?", "SnatTable", table_id)


def create_snat_entry(call: Call) -> Reply:
    """Add an entry: the sources of a vSwitch (SourceVSwitchId) or a CIDR (SourceCIDR), never both.

    Each vSwitch and each source CIDR may appear in one entry of a table only; the SNAT IP must be
    an EIP bound to the table's NAT gateway. The entry reads Pending first, then Available.
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
        vsw = row_or_not_found(conn, "SELECT cidr, vpc_id FROM vswitches WHERE vswitch_id = ?", "VSwitch", source_vsw)
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
    mark_pending(conn, entry_id)
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


def _network(name: str, text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ValueError:
        raise ApiError("InvalidCidrBlock.Malformed", f"The specified {name} \"{text}\" is not a valid CIDR block.") from None


def create_vswitch(call: Call) -> Reply:
    """A vSwitch in a zone of the region, inside the VPC's CIDR, overlapping no vSwitch of the VPC (/16 to /29)."""
    conn = call.conn
    vpc_id = p.required(call.params, "VpcId")
    zone = p.required(call.params, "ZoneId")
    text = p.required(call.params, "CidrBlock")
    vpc = row_or_not_found(conn, "SELECT * FROM vpcs WHERE vpc_id = ?", "Vpc", vpc_id)
    if conn.execute("SELECT 1 FROM zones WHERE zone_id = ?", (zone,)).fetchone() is None:
        raise ApiError("InvalidZoneId.NotFound", f"The specified zone \"{zone}\" does not exist in {call.region}.",
                       404)
    net = _network("CidrBlock", text)
    if not 16 <= net.prefixlen <= 29:
        raise ApiError("InvalidCidrBlock.Malformed", f"The mask of the CidrBlock \"{text}\" must be /16 to /29.")
    if not net.subnet_of(ipaddress.IPv4Network(vpc["cidr"])):
        raise ApiError("InvalidCidrBlock.Malformed", f"The CidrBlock \"{text}\" is not inside the VPC's CIDR block "
                       f"{vpc['cidr']}.")
    for other in conn.execute("SELECT vswitch_id, cidr FROM vswitches WHERE vpc_id = ?", (vpc_id,)):
        if net.overlaps(ipaddress.IPv4Network(other["cidr"])):
            raise ApiError("InvalidCidrBlock.Overlapped", f"The specified CidrBlock \"{text}\" overlaps the vSwitch "
                           f"{other['vswitch_id']} ({other['cidr']}).")
    block = call.params.get("Ipv6CidrBlock", "")
    if block and not ipv6.vpc_ipv6(conn, vpc_id):
        raise ApiError("InvalidVpc.Ipv6NotEnabled", f"The VPC \"{vpc_id}\" has no IPv6 CIDR block; enable IPv6 on it first.")
    vswitch_id = new_id(conn, "vsw")
    conn.execute("INSERT INTO vswitches VALUES (?, ?, ?, ?, ?)",
                 (vswitch_id, vpc_id, zone, str(net), p.optional(call.params, "VSwitchName") or ""))
    if block:
        ipv6.enable_vswitch(conn, vswitch_id, vpc_id, p.integer(call.params, "Ipv6CidrBlock", 0, 0, 255))
    mark_pending(conn, vswitch_id)
    return {"VSwitchId": vswitch_id}


def _route_table(conn: sqlite3.Connection, table_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM route_tables WHERE route_table_id = ?", (table_id,)).fetchone()
    if row is None:
        raise ApiError("InvalidRouteTableId.NotFound", f"The specified route table \"{table_id}\" does not exist.",
                       404)
    return row  # type: ignore[no-any-return]


def describe_route_table_list(call: Call) -> Reply:
    conn = call.conn
    vpc_id = p.optional(call.params, "VpcId")
    for vpc in conn.execute("SELECT vpc_id FROM vpcs").fetchall():
        system_route_table(conn, vpc[0])
    rows = _select(conn, "route_tables", [
        ("vpc_id", vpc_id), ("route_table_id", p.optional(call.params, "RouteTableId")),
        ("type", p.optional(call.params, "RouteTableType")), ("name", p.optional(call.params, "RouteTableName")),
    ])

    def render(table: sqlite3.Row) -> Reply:
        if table["type"] == "System":
            bound = [r[0] for r in conn.execute(
                "SELECT vswitch_id FROM vswitches WHERE vpc_id = ? AND vswitch_id NOT IN"
                " (SELECT vswitch_id FROM route_table_vswitches) ORDER BY rowid", (table["vpc_id"],))]
        else:
            bound = [r[0] for r in conn.execute(
                "SELECT vswitch_id FROM route_table_vswitches WHERE route_table_id = ? ORDER BY rowid",
                (table["route_table_id"],))]
        return {
            "RouteTableId": table["route_table_id"], "RouteTableName": table["name"],
            "RouteTableType": table["type"], "VpcId": table["vpc_id"], "RouterType": "VRouter",
            "RouterId": "vrt-" + table["vpc_id"].removeprefix("vpc-"), "Status": "Available",
            "CreationTime": CREATION_TIME, "Description": "", "ResourceGroupId": "",
            "VSwitchIds": {"VSwitchId": bound},
        }

    return _paged(call, rows, "RouterTableList", "RouterTableListType", 50, render)


def describe_route_entry_list(call: Call) -> Reply:
    conn = call.conn
    table_id = p.required(call.params, "RouteTableId")
    _route_table(conn, table_id)
    rows = _select(conn, "route_entries", [
        ("route_table_id", table_id), ("destination", p.optional(call.params, "DestinationCidrBlock")),
        ("entry_id", p.optional(call.params, "RouteEntryId")), ("next_hop_id", p.optional(call.params, "NextHopId")),
        ("next_hop_type", p.optional(call.params, "NextHopType")),
    ])
    size = p.integer(call.params, "MaxResult", 20, 20, 100)  # MaxResult (singular) in this API
    token = call.params.get("NextToken", "")
    start = min(p.decode_token(token), len(rows)) if token else 0
    end = min(start + size, len(rows))

    def render(entry: sqlite3.Row) -> Reply:
        return {
            "RouteEntryId": entry["entry_id"], "RouteEntryName": entry["name"], "RouteTableId": table_id,
            "DestinationCidrBlock": entry["destination"], "Type": entry["type"], "IpVersion": "ipv4",
            "Status": status_of(conn, entry["entry_id"]), "Description": "",
            "NextHops": {"NextHop": [{"NextHopType": entry["next_hop_type"], "NextHopId": entry["next_hop_id"],
                                      "Enabled": 1, "Weight": 0}]},
        }

    return {"RouteEntrys": {"RouteEntry": [render(r) for r in rows[start:end]]},
            "NextToken": p.encode_token(end) if end < len(rows) else ""}


NEXT_HOP_PREFIXES = {"NatGateway": "ngw-", "Instance": "i-", "NetworkInterface": "eni-"}


def create_route_entry(call: Call) -> Reply:
    conn = call.conn
    table_id = p.required(call.params, "RouteTableId")
    destination = p.required(call.params, "DestinationCidrBlock")
    hop_type = p.required(call.params, "NextHopType")
    hop_id = p.required(call.params, "NextHopId")
    table = _route_table(conn, table_id)
    net = _network("DestinationCidrBlock", destination)
    prefix = NEXT_HOP_PREFIXES.get(hop_type)
    if prefix is None:
        raise invalid_parameter("NextHopType", f"{hop_type!r} is not one of {', '.join(NEXT_HOP_PREFIXES)}")
    if hop_type == "NatGateway":
        nat = conn.execute("SELECT vpc_id FROM nat_gateways WHERE nat_id = ?", (hop_id,)).fetchone()
        if nat is None or nat["vpc_id"] != table["vpc_id"]:
            raise ApiError("InvalidNextHop.NotFound", f"The next hop \"{hop_id}\" does not exist in {table['vpc_id']}.",
                           404)
    elif not hop_id.startswith(prefix):
        raise ApiError("InvalidNextHop.NotFound", f"The next hop \"{hop_id}\" is not a {hop_type}.", 404)
    if conn.execute("SELECT 1 FROM route_entries WHERE route_table_id = ? AND destination = ?",
                    (table_id, str(net))).fetchone() is not None:
        raise ApiError("InvalidCIDRBlock.Duplicate", f"The route table {table_id} already has a route entry for "
                       f"{net}.")
    entry_id = add_route(conn, table_id, str(net), hop_type, hop_id, p.optional(call.params, "RouteEntryName") or "")
    mark_pending(conn, entry_id)
    return {"RouteEntryId": entry_id}


def create_route_table(call: Call) -> Reply:
    """A custom route table in a VPC (AssociateType VSwitch, the default): no custom route entries yet."""
    conn = call.conn
    vpc_id = p.required(call.params, "VpcId")
    row_or_not_found(conn, "SELECT vpc_id FROM vpcs WHERE vpc_id = ?", "Vpc", vpc_id)
    associate = p.optional(call.params, "AssociateType") or "VSwitch"
    if associate != "VSwitch":
        raise invalid_parameter("AssociateType", f"{associate!r}: the emulator has vSwitch route tables only")
    system_route_table(conn, vpc_id)
    table_id = new_id(conn, "vtb")
    conn.execute("INSERT INTO route_tables VALUES (?, ?, 'Custom', ?)",
                 (table_id, vpc_id, p.optional(call.params, "RouteTableName") or ""))
    return {"RouteTableId": table_id, "VRouterId": "vrt-" + vpc_id.removeprefix("vpc-")}


def _custom_table(conn: sqlite3.Connection, table_id: str) -> sqlite3.Row:
    table = _route_table(conn, table_id)
    if table["type"] != "Custom":
        raise ApiError("IncorrectRouteTableType", f"The route table \"{table_id}\" is a {table['type']} route table; "
                       "only a custom route table can be associated, unassociated or deleted.")
    return table


def _vswitch_of(conn: sqlite3.Connection, vswitch_id: str) -> sqlite3.Row:
    return row_or_not_found(conn, "SELECT vswitch_id, vpc_id FROM vswitches WHERE vswitch_id = ?", "VSwitch", vswitch_id)


def associate_route_table(call: Call) -> Reply:
    """Bind a custom route table to a vSwitch of its VPC; a vSwitch has at most one custom table."""
    conn = call.conn
    table = _custom_table(conn, p.required(call.params, "RouteTableId"))
    vsw = _vswitch_of(conn, p.required(call.params, "VSwitchId"))
    if vsw["vpc_id"] != table["vpc_id"]:
        raise invalid_parameter("VSwitchId", f"{vsw['vswitch_id']} is not in the route table's VPC {table['vpc_id']}")
    bound = conn.execute("SELECT route_table_id FROM route_table_vswitches WHERE vswitch_id = ?",
                         (vsw["vswitch_id"],)).fetchone()
    if bound is not None:
        raise ApiError("ResourceAlreadyAssociated.RouteTable", f"The vSwitch \"{vsw['vswitch_id']}\" is already "
                       f"associated with the route table {bound[0]}.")
    conn.execute("INSERT INTO route_table_vswitches VALUES (?, ?)", (vsw["vswitch_id"], table["route_table_id"]))
    return {}


def unassociate_route_table(call: Call) -> Reply:
    """Unbind a custom route table from a vSwitch: the vSwitch uses the VPC's system table again."""
    conn = call.conn
    table = _custom_table(conn, p.required(call.params, "RouteTableId"))
    vsw = _vswitch_of(conn, p.required(call.params, "VSwitchId"))
    gone = conn.execute("DELETE FROM route_table_vswitches WHERE vswitch_id = ? AND route_table_id = ?",
                        (vsw["vswitch_id"], table["route_table_id"]))
    if gone.rowcount == 0:
        raise ApiError("IncorrectStatus.VSwitch", f"The vSwitch \"{vsw['vswitch_id']}\" is not associated with the "
                       f"route table {table['route_table_id']}.")
    return {}


def delete_route_table(call: Call) -> Reply:
    """Delete a custom route table with no vSwitch bound and no custom route entry left."""
    conn = call.conn
    table = _custom_table(conn, p.required(call.params, "RouteTableId"))
    table_id = table["route_table_id"]
    if conn.execute("SELECT 1 FROM route_table_vswitches WHERE route_table_id = ?", (table_id,)).fetchone():
        raise ApiError("DependencyViolation.VSwitch", f"The route table \"{table_id}\" is still associated with a "
                       "vSwitch; unassociate it first.")
    if conn.execute("SELECT 1 FROM route_entries WHERE route_table_id = ?", (table_id,)).fetchone():
        raise ApiError("IncorrectRouteTableStatus.RouteEntryExist", "You cannot delete the specified route table "
                       "because it still has custom route entry.")
    conn.execute("DELETE FROM route_tables WHERE route_table_id = ?", (table_id,))
    return {}


VPC_ACTIONS: dict[str, Handler] = {
    "CreateVSwitch": create_vswitch,
    "DescribeRouteTableList": describe_route_table_list,
    "DescribeRouteEntryList": describe_route_entry_list,
    "CreateRouteEntry": create_route_entry,
    "CreateRouteTable": create_route_table,
    "AssociateRouteTable": associate_route_table,
    "UnassociateRouteTable": unassociate_route_table,
    "DeleteRouteTable": delete_route_table,
    "DescribeVpcs": describe_vpcs,
    "DescribeVSwitches": describe_vswitches,
    "DescribeNatGateways": describe_nat_gateways,
    "DescribeSnatTableEntries": describe_snat_table_entries,
    "DescribeEipAddresses": describe_eip_addresses,
    "CreateSnatEntry": create_snat_entry,
    "DeleteSnatEntry": delete_snat_entry,
    **ipv6.VPC_IPV6_ACTIONS,
}
