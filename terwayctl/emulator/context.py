"""What an action handler gets: its parameters, the open transaction and where to put hook events."""

from __future__ import annotations

import ipaddress
import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from terwayctl.emulator.hooks import EniInfo, HookEvent
from terwayctl.emulator.store import eni_ips, get_meta

Reply = dict[str, Any]


@dataclass
class Call:
    action: str
    params: Mapping[str, str]
    conn: sqlite3.Connection
    region: str
    now: float
    events: list[HookEvent] = field(default_factory=list)

    def delay_s(self, key: str) -> float:
        return int(get_meta(self.conn, key, "0")) / 1000.0


Handler = Callable[[Call], Reply]


def eni_info(conn: sqlite3.Connection, eni: sqlite3.Row) -> EniInfo:
    """The hook's view of an ENI row."""
    ips = eni_ips(conn, eni["eni_id"])
    cidr = conn.execute("SELECT cidr FROM vswitches WHERE vswitch_id = ?", (eni["vswitch_id"],)).fetchone()[0]
    net = ipaddress.IPv4Network(cidr)
    gateway = str(net.broadcast_address - 2)
    primary = next((ip for ip, is_primary in ips if is_primary), ips[0][0] if ips else "")
    return EniInfo(
        eni_id=eni["eni_id"], mac=eni["mac"], primary_ip=primary, private_ips=tuple(ip for ip, _ in ips),
        vswitch_id=eni["vswitch_id"], vswitch_cidr=cidr, gateway=gateway, vpc_id=eni["vpc_id"],
        zone_id=eni["zone_id"], **_ipv6_fields(conn, eni),
    )


def _ipv6_fields(conn: sqlite3.Connection, eni: sqlite3.Row) -> dict[str, Any]:
    from terwayctl.emulator import ipv6

    cidr = ipv6.vswitch_ipv6(conn, eni["vswitch_id"])
    if not cidr:
        return {}
    return {"ipv6_ips": tuple(ipv6.eni_ipv6s(conn, eni["eni_id"])), "ipv6_cidr": cidr,
            "ipv6_gateway": ipv6.gateway_of(cidr), "ipv6_internet": tuple(ipv6.internet_ipv6s(conn, eni["eni_id"]))}


def settle(conn: sqlite3.Connection, now: float) -> list[HookEvent]:
    """Finish Attaching / Detaching transitions that are due; return the hook events they cause."""
    events = []
    due = conn.execute(
        "SELECT * FROM enis WHERE pending_status IS NOT NULL AND pending_at <= ? ORDER BY pending_at", (now,)
    ).fetchall()
    for eni in due:
        if eni["pending_status"] == "InUse":
            conn.execute("UPDATE enis SET status = 'InUse', pending_status = NULL, pending_at = NULL WHERE eni_id = ?",
                         (eni["eni_id"],))
            events.append(HookEvent("attach", eni["instance_id"], eni_info(conn, eni)))
        else:
            conn.execute("UPDATE enis SET status = 'Available', instance_id = '', pending_status = NULL,"
                         " pending_at = NULL WHERE eni_id = ?", (eni["eni_id"],))
            events.append(HookEvent("detach", eni["instance_id"], eni_info(conn, eni)))
    return events


def next_due(conn: sqlite3.Connection) -> float | None:
    row = conn.execute("SELECT MIN(pending_at) FROM enis WHERE pending_status IS NOT NULL").fetchone()
    return None if row[0] is None else float(row[0])


def loads(text: str) -> Any:
    return json.loads(text)
