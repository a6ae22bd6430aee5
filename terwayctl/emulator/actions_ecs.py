"""ECS 2014-05-26 actions: instance types, instances, ENIs and their private addresses."""

from __future__ import annotations

import sqlite3
from typing import Any

from terwayctl.core.catalog import InstanceType
from terwayctl.data import embedded_catalog
from terwayctl.emulator import ipv6
from terwayctl.emulator import params as p
from terwayctl.emulator.context import Call, Handler, Reply, eni_info, loads
from terwayctl.emulator.errors import ApiError
from terwayctl.emulator.hooks import HookEvent
from terwayctl.emulator.store import (
    CREATED_AT,
    allocate,
    allocate_specific,
    available_count,
    dumps,
    eni_ips,
    eni_row,
    new_id,
    new_mac,
    release_ips,
    row_or_not_found,
    vswitch_row,
)

MAX_IPS_PER_ASSIGN = 10
MAX_IPS_UNATTACHED_ENI = 50
MAX_SECURITY_GROUPS = 5
ATTACHED_STATES = ("InUse", "Attaching", "Detaching")


# --- instance types -----------------------------------------------------------------------------


def _type_reply(t: InstanceType) -> Reply:
    values: dict[str, Any] = {
        "InstanceTypeId": t.name,
        "InstanceTypeFamily": t.family,
        "CpuCoreCount": t.vcpu,
        "MemorySize": t.memory_gib,
        "EniQuantity": t.eni_quantity,
        "EniPrivateIpAddressQuantity": t.eni_private_ip_quantity,
        "EniIpv6AddressQuantity": t.eni_ipv6_quantity,
        "EniTotalQuantity": t.eni_total_quantity,
        "EniTrunkSupported": t.eni_trunk_supported,
    }
    # The catalog leaves unknown cells empty; an unknown field is left out rather than guessed.
    return {k: v for k, v in values.items() if v is not None}


def describe_instance_types(call: Call) -> Reply:
    names = set(p.indexed(call.params, "InstanceTypes"))
    family = p.optional(call.params, "InstanceTypeFamily")
    families = set(p.indexed(call.params, "InstanceTypeFamilies"))
    rows = [
        t for t in embedded_catalog().types
        if (not names or t.name in names) and (family is None or t.family == family)
        and (not families or t.family in families)
    ]
    page = p.page_by_token(call.params, len(rows), 1600, 1600)
    return {
        "NextToken": page.next_token,
        "InstanceTypes": {"InstanceType": [_type_reply(t) for t in rows[page.items_from:page.items_to]]},
    }


def instance_type_of(conn: sqlite3.Connection, instance_id: str) -> InstanceType:
    row = row_or_not_found(conn, "SELECT instance_type FROM instances WHERE instance_id = ?", "Instance", instance_id)
    return embedded_catalog().by_name()[row["instance_type"]]


# --- instances ----------------------------------------------------------------------------------


def describe_instances(call: Call) -> Reply:
    ids = p.json_list(call.params, "InstanceIds")
    clauses, args = [], []
    for column, name in (("vpc_id", "VpcId"), ("zone_id", "ZoneId"), ("vswitch_id", "VSwitchId"),
                         ("instance_type", "InstanceType")):
        value = p.optional(call.params, name)
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    rows = call.conn.execute(f"SELECT * FROM instances{where} ORDER BY rowid", args).fetchall()
    if ids is not None:
        rows = [r for r in rows if r["instance_id"] in ids]
    page = p.paginate(call.params, len(rows), 10, 100, tokens=True)
    instances = [_instance_reply(call, r) for r in rows[page.items_from:page.items_to]]
    return {**page.fields(), "Instances": {"Instance": instances}}


def _instance_reply(call: Call, inst: sqlite3.Row) -> Reply:
    conn = call.conn
    itype = embedded_catalog().by_name()[inst["instance_type"]]
    enis = conn.execute(
        "SELECT * FROM enis WHERE instance_id = ? AND status = 'InUse' ORDER BY type = 'Secondary', rowid",
        (inst["instance_id"],),
    ).fetchall()
    interfaces = []
    primary_ip = ""
    for eni in enis:
        ips = eni_ips(conn, eni["eni_id"])
        first = ips[0][0] if ips else ""
        if eni["type"] == "Primary":
            primary_ip = first
        interfaces.append({
            "NetworkInterfaceId": eni["eni_id"], "Type": eni["type"], "MacAddress": eni["mac"],
            "PrimaryIpAddress": first,
            "PrivateIpSets": {"PrivateIpSet": [{"PrivateIpAddress": ip, "Primary": prim} for ip, prim in ips]},
            "Ipv6Sets": ipv6.sets_reply(conn, eni["eni_id"]),
        })
    return {
        "InstanceId": inst["instance_id"], "InstanceName": inst["name"] or inst["instance_id"],
        "HostName": inst["name"] or inst["instance_id"], "InstanceType": inst["instance_type"],
        "InstanceTypeFamily": itype.family, "Cpu": itype.vcpu or 0,
        "Memory": int((itype.memory_gib or 0) * 1024), "RegionId": call.region, "ZoneId": inst["zone_id"],
        "Status": "Running", "InstanceNetworkType": "vpc", "CreationTime": "2026-11-01T00:00Z",
        "VpcAttributes": {
            "VpcId": inst["vpc_id"], "VSwitchId": inst["vswitch_id"], "NatIpAddress": "",
            "PrivateIpAddress": {"IpAddress": [primary_ip] if primary_ip else []},
        },
        "NetworkInterfaces": {"NetworkInterface": interfaces},
        "SecurityGroupIds": {"SecurityGroupId": loads(inst["security_group_ids"])},
        "EipAddress": _eip_of(conn, inst["instance_id"]),
        "PublicIpAddress": {"IpAddress": []},
        "InnerIpAddress": {"IpAddress": []},
    }


def _eip_of(conn: sqlite3.Connection, instance_id: str) -> Reply:
    row = conn.execute("SELECT * FROM eips WHERE instance_id = ? ORDER BY rowid LIMIT 1", (instance_id,)).fetchone()
    if row is None:
        return {"AllocationId": "", "IpAddress": "", "Bandwidth": 0, "InternetChargeType": "",
                "IsSupportUnassociate": False}
    return {"AllocationId": row["allocation_id"], "IpAddress": row["ip"], "Bandwidth": row["bandwidth"],
            "InternetChargeType": "PayByTraffic", "IsSupportUnassociate": True}


# --- network interfaces -------------------------------------------------------------------------


def eni_reply(conn: sqlite3.Connection, eni: sqlite3.Row) -> Reply:
    ips = eni_ips(conn, eni["eni_id"])
    return {
        "NetworkInterfaceId": eni["eni_id"], "NetworkInterfaceName": eni["name"], "Description": eni["description"],
        "Status": eni["status"], "Type": eni["type"], "VpcId": eni["vpc_id"], "VSwitchId": eni["vswitch_id"],
        "ZoneId": eni["zone_id"], "InstanceId": eni["instance_id"], "MacAddress": eni["mac"],
        "PrivateIpAddress": ips[0][0] if ips else "",
        "PrivateIpSets": {"PrivateIpSet": [{"PrivateIpAddress": ip, "Primary": prim} for ip, prim in ips]},
        "SecurityGroupIds": {"SecurityGroupId": loads(eni["security_group_ids"])},
        "Tags": {"Tag": [{"TagKey": t["Key"], "TagValue": t.get("Value", "")} for t in loads(eni["tags"])]},
        "Ipv6Sets": ipv6.sets_reply(conn, eni["eni_id"]), "CreationTime": eni["created_at"], "ServiceManaged": False,
        "ResourceGroupId": "",
    }


def describe_network_interfaces(call: Call) -> Reply:
    clauses, args = [], []
    for column, name in (("instance_id", "InstanceId"), ("vswitch_id", "VSwitchId"), ("vpc_id", "VpcId"),
                         ("status", "Status"), ("type", "Type")):
        value = p.optional(call.params, name)
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    rows = call.conn.execute(f"SELECT * FROM enis{where} ORDER BY rowid", args).fetchall()
    ids = p.indexed(call.params, "NetworkInterfaceId")
    if ids:
        rows = [r for r in rows if r["eni_id"] in ids]
    tags = p.indexed_struct(call.params, "Tag", ("Key", "Value"))
    if tags:
        rows = [r for r in rows if all(t in loads(r["tags"]) for t in tags)]
    page = p.paginate(call.params, len(rows), 10, 1000, tokens=True)
    sets = [eni_reply(call.conn, r) for r in rows[page.items_from:page.items_to]]
    return {**page.fields(), "NetworkInterfaceSets": {"NetworkInterfaceSet": sets}}


def _security_groups(call: Call, vpc_id: str) -> list[str]:
    groups = p.indexed(call.params, "SecurityGroupIds")
    single = p.optional(call.params, "SecurityGroupId")
    if single is not None:
        groups = [single, *[g for g in groups if g != single]]
    if not groups:
        raise ApiError("MissingSecurityGroupId", "SecurityGroupId or SecurityGroupIds.N is mandatory for this action.")
    if len(groups) > MAX_SECURITY_GROUPS:
        raise ApiError("InvalidParameter.SecurityGroupIds",
                       f"An ENI can join at most {MAX_SECURITY_GROUPS} security groups.")
    for group in groups:
        row = row_or_not_found(call.conn, "SELECT vpc_id FROM security_groups WHERE sg_id = ?", "SecurityGroup", group)
        if row["vpc_id"] != vpc_id:
            raise ApiError("InvalidSecurityGroupId.VpcMismatch",
                           f"The security group \"{group}\" is not in the vSwitch's VPC \"{vpc_id}\".")
    return groups


def create_network_interface(call: Call) -> Reply:
    conn = call.conn
    vsw = vswitch_row(conn, p.required(call.params, "VSwitchId"))
    groups = _security_groups(call, vsw["vpc_id"])
    count = p.integer(call.params, "SecondaryPrivateIpAddressCount", 0, 0, 1 << 16)
    wanted = p.indexed(call.params, "PrivateIpAddress")
    if count + len(wanted) + 1 > MAX_IPS_UNATTACHED_ENI:
        raise ApiError("InvalidOperation.Ipv4CountExceeded",
                       f"An ENI holds at most {MAX_IPS_UNATTACHED_ENI} private addresses.")
    if count and wanted:
        raise ApiError("InvalidParameter.Conflict",
                       "SecondaryPrivateIpAddressCount and PrivateIpAddress.N cannot be given together.")
    primary = p.optional(call.params, "PrimaryIpAddress")
    count6 = p.integer(call.params, "Ipv6AddressCount", 0, 0, 1 << 16)
    wanted6 = p.indexed(call.params, "Ipv6Address")
    if count6 and wanted6:
        raise ApiError("InvalidParameter.Conflict", "Ipv6AddressCount and Ipv6Address.N cannot be given together.")
    if len(wanted6) or count6:
        if not ipv6.vswitch_ipv6(conn, vsw["vswitch_id"]):
            raise ApiError(ipv6.IPV6_NOT_SUPPORTED,
                           f"The vSwitch \"{vsw['vswitch_id']}\" has no IPv6 CIDR block; enable IPv6 on it.")
        if len(wanted6) + count6 > ipv6.MAX_UNATTACHED:
            raise ApiError(ipv6.IPV6_COUNT_EXCEEDED,
                           f"An ENI that is not attached holds at most {ipv6.MAX_UNATTACHED} IPv6 addresses.")
    if 1 + count + len(wanted) > available_count(conn, vsw["vswitch_id"]):
        raise ApiError("InvalidVSwitchId.IpNotEnough",
                       f"The specified VSwitch \"{vsw['vswitch_id']}\" has not enough IpAddress.")
    eni_id = new_id(conn, "eni")
    tags = p.indexed_struct(call.params, "Tag", ("Key", "Value"))
    conn.execute(
        "INSERT INTO enis (eni_id, type, status, vswitch_id, vpc_id, zone_id, mac, description, name,"
        " security_group_ids, tags, created_at) VALUES (?, 'Secondary', 'Available', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (eni_id, vsw["vswitch_id"], vsw["vpc_id"], vsw["zone_id"], new_mac(conn),
         call.params.get("Description", ""), call.params.get("NetworkInterfaceName", ""), dumps(groups),
         dumps(tags), CREATED_AT),
    )
    if primary is not None:
        allocate_specific(conn, vsw["vswitch_id"], eni_id, [primary], primary=True)
    else:
        allocate(conn, vsw["vswitch_id"], eni_id, 1, primary=True)
    if wanted:
        allocate_specific(conn, vsw["vswitch_id"], eni_id, wanted)
    elif count:
        allocate(conn, vsw["vswitch_id"], eni_id, count)
    if wanted6:
        ipv6.allocate_specific(conn, vsw["vswitch_id"], eni_id, wanted6)
    elif count6:
        ipv6.allocate(conn, vsw["vswitch_id"], eni_id, count6)
    reply = eni_reply(conn, eni_row(conn, eni_id))
    reply.pop("InstanceId")
    return reply


def _instance_row(conn: sqlite3.Connection, instance_id: str) -> sqlite3.Row:
    return row_or_not_found(conn, "SELECT * FROM instances WHERE instance_id = ?", "Instance", instance_id)


def _wrong_state(eni: sqlite3.Row, wanted: str) -> ApiError:
    return ApiError("InvalidOperation.InvalidEniState",
                    f"The ENI \"{eni['eni_id']}\" is {eni['status']}; this operation needs it {wanted}.")


def attach_network_interface(call: Call) -> Reply:
    conn = call.conn
    eni = eni_row(conn, p.required(call.params, "NetworkInterfaceId"))
    inst = _instance_row(conn, p.required(call.params, "InstanceId"))
    if eni["status"] != "Available":
        raise _wrong_state(eni, "Available")
    if eni["zone_id"] != inst["zone_id"] or eni["vpc_id"] != inst["vpc_id"]:
        raise ApiError("InvalidOperation.ZoneMismatch",
                       f"The ENI \"{eni['eni_id']}\" ({eni['zone_id']}, {eni['vpc_id']}) is not in the instance's "
                       f"zone and VPC ({inst['zone_id']}, {inst['vpc_id']}).")
    itype = instance_type_of(conn, inst["instance_id"])
    attached = conn.execute(
        f"SELECT COUNT(*) FROM enis WHERE instance_id = ? AND status IN {ATTACHED_STATES}", (inst["instance_id"],)
    ).fetchone()[0]
    if attached >= (itype.eni_quantity or 0):
        raise ApiError("EniPerInstanceLimitExceeded",
                       f"The instance type {itype.name} takes at most {itype.eni_quantity} ENIs (primary included).")
    if len(eni_ips(conn, eni["eni_id"])) > (itype.eni_private_ip_quantity or 0):
        raise ApiError("InvalidOperation.Ipv4CountExceeded",
                       f"The ENI has more private addresses than {itype.name} allows per ENI "
                       f"({itype.eni_private_ip_quantity}).")
    if len(ipv6.eni_ipv6s(conn, eni["eni_id"])) > (itype.eni_ipv6_quantity or 0):
        raise ApiError(ipv6.IPV6_COUNT_EXCEEDED,
                       f"The ENI has more IPv6 addresses than {itype.name} allows per ENI ({itype.eni_ipv6_quantity}).")
    delay = call.delay_s("attach_delay_ms")
    if delay > 0:
        conn.execute("UPDATE enis SET status = 'Attaching', instance_id = ?, pending_status = 'InUse', pending_at = ?"
                     " WHERE eni_id = ?", (inst["instance_id"], call.now + delay, eni["eni_id"]))
    else:
        conn.execute("UPDATE enis SET status = 'InUse', instance_id = ? WHERE eni_id = ?",
                     (inst["instance_id"], eni["eni_id"]))
        call.events.append(HookEvent("attach", inst["instance_id"], eni_info(conn, eni_row(conn, eni["eni_id"]))))
    return {}


def detach_network_interface(call: Call) -> Reply:
    conn = call.conn
    eni = eni_row(conn, p.required(call.params, "NetworkInterfaceId"))
    inst = _instance_row(conn, p.required(call.params, "InstanceId"))
    if eni["type"] == "Primary":
        raise ApiError("InvalidOperation.DetachPrimaryEniNotAllowed", "The primary ENI cannot be detached.")
    if eni["status"] != "InUse" or eni["instance_id"] != inst["instance_id"]:
        raise _wrong_state(eni, f"InUse on {inst['instance_id']}")
    delay = call.delay_s("detach_delay_ms")
    if delay > 0:
        conn.execute("UPDATE enis SET status = 'Detaching', pending_status = 'Available', pending_at = ?"
                     " WHERE eni_id = ?", (call.now + delay, eni["eni_id"]))
    else:
        conn.execute("UPDATE enis SET status = 'Available', instance_id = '' WHERE eni_id = ?", (eni["eni_id"],))
        call.events.append(HookEvent("detach", inst["instance_id"], eni_info(conn, eni)))
    return {}


def delete_network_interface(call: Call) -> Reply:
    conn = call.conn
    eni = eni_row(conn, p.required(call.params, "NetworkInterfaceId"))
    if eni["type"] == "Primary" or eni["status"] != "Available":
        raise _wrong_state(eni, "Available (and not a primary ENI)")
    release_ips(conn, eni["eni_id"])
    ipv6.release(conn, eni["eni_id"])
    conn.execute("DELETE FROM enis WHERE eni_id = ?", (eni["eni_id"],))
    return {}


def _ip_limit(conn: sqlite3.Connection, eni: sqlite3.Row) -> int:
    if eni["instance_id"]:
        return instance_type_of(conn, eni["instance_id"]).eni_private_ip_quantity or 0
    return MAX_IPS_UNATTACHED_ENI


def assign_private_ip_addresses(call: Call) -> Reply:
    conn = call.conn
    eni = eni_row(conn, p.required(call.params, "NetworkInterfaceId"))
    wanted, number = p.count_or_addresses(call.params, "SecondaryPrivateIpAddressCount", "PrivateIpAddress",
                                          "InvalidParam.IpCount", MAX_IPS_PER_ASSIGN)
    if eni["status"] not in ("Available", "InUse"):
        raise _wrong_state(eni, "Available or InUse")
    have, limit = len(eni_ips(conn, eni["eni_id"])), _ip_limit(conn, eni)
    if have + number > limit:
        raise ApiError("InvalidOperation.Ipv4CountExceeded",
                       f"The ENI \"{eni['eni_id']}\" has {have} of at most {limit} private addresses; "
                       f"{number} more do not fit.")
    if wanted:
        assigned = allocate_specific(conn, eni["vswitch_id"], eni["eni_id"], wanted)
    else:
        assigned = allocate(conn, eni["vswitch_id"], eni["eni_id"], number)
    _ips_changed(call, eni["eni_id"])
    return {"AssignedPrivateIpAddressesSet": {
        "NetworkInterfaceId": eni["eni_id"], "PrivateIpSet": {"PrivateIpAddress": assigned},
    }}


def unassign_private_ip_addresses(call: Call) -> Reply:
    conn = call.conn
    eni = eni_row(conn, p.required(call.params, "NetworkInterfaceId"))
    addresses = p.addresses_to_release(call.params, "PrivateIpAddress", "MissingPrivateIpAddress",
                                       "InvalidParam.IpCount", MAX_IPS_PER_ASSIGN)
    if eni["status"] not in ("Available", "InUse"):
        raise _wrong_state(eni, "Available or InUse")
    held = dict(eni_ips(conn, eni["eni_id"]))
    for address in addresses:
        if address not in held:
            raise ApiError("InvalidIp.IpUnassigned", f"The address \"{address}\" is not assigned to {eni['eni_id']}.")
        if held[address]:
            raise ApiError("InvalidOperation.DeletePrimaryIp", "The primary private address cannot be unassigned.")
    release_ips(conn, eni["eni_id"], addresses)
    _ips_changed(call, eni["eni_id"])
    return {}


def _ips_changed(call: Call, eni_id: str) -> None:
    """Tell the hook the addresses of an attached ENI changed (the datapath routes each one)."""
    eni = eni_row(call.conn, eni_id)
    if eni["status"] == "InUse" and eni["instance_id"]:
        call.events.append(HookEvent("ips", eni["instance_id"], eni_info(call.conn, eni)))


ECS_ACTIONS: dict[str, Handler] = {
    "DescribeInstanceTypes": describe_instance_types,
    "DescribeInstances": describe_instances,
    "DescribeNetworkInterfaces": describe_network_interfaces,
    "CreateNetworkInterface": create_network_interface,
    "AttachNetworkInterface": attach_network_interface,
    "DetachNetworkInterface": detach_network_interface,
    "DeleteNetworkInterface": delete_network_interface,
    "AssignPrivateIpAddresses": assign_private_ip_addresses,
    "UnassignPrivateIpAddresses": unassign_private_ip_addresses,
    **ipv6.ECS_IPV6_ACTIONS,
}
