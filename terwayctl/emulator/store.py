"""The emulator's state in one SQLite file (WAL), and the address and ENI bookkeeping on it.

One connection, serialised by a lock: every API call is one `transaction()`. Addresses are stored
as integers per vSwitch; the first address and the last three of each vSwitch are never handed out.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terwayctl.core import defaults
from terwayctl.core.errors import InvalidInput
from terwayctl.emulator.errors import ApiError, not_found
from terwayctl.emulator.world import World

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS key_pairs (access_key_id TEXT PRIMARY KEY, secret TEXT NOT NULL,
    security_token TEXT, denied_actions TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS zones (zone_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS vpcs (vpc_id TEXT PRIMARY KEY, cidr TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vswitches (vswitch_id TEXT PRIMARY KEY, vpc_id TEXT NOT NULL, zone_id TEXT NOT NULL,
    cidr TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS security_groups (sg_id TEXT PRIMARY KEY, vpc_id TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (instance_id TEXT PRIMARY KEY, instance_type TEXT NOT NULL,
    zone_id TEXT NOT NULL, vswitch_id TEXT NOT NULL, vpc_id TEXT NOT NULL, name TEXT NOT NULL,
    security_group_ids TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS enis (eni_id TEXT PRIMARY KEY, type TEXT NOT NULL, status TEXT NOT NULL,
    instance_id TEXT NOT NULL DEFAULT '', vswitch_id TEXT NOT NULL, vpc_id TEXT NOT NULL, zone_id TEXT NOT NULL,
    mac TEXT NOT NULL, description TEXT NOT NULL DEFAULT '', name TEXT NOT NULL DEFAULT '',
    security_group_ids TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL,
    pending_status TEXT, pending_at REAL);
CREATE INDEX IF NOT EXISTS enis_instance ON enis (instance_id);
CREATE TABLE IF NOT EXISTS ips (vswitch_id TEXT NOT NULL, ip INTEGER NOT NULL, eni_id TEXT NOT NULL,
    is_primary INTEGER NOT NULL, PRIMARY KEY (vswitch_id, ip));
CREATE INDEX IF NOT EXISTS ips_eni ON ips (eni_id);
CREATE TABLE IF NOT EXISTS nat_gateways (nat_id TEXT PRIMARY KEY, vpc_id TEXT NOT NULL, vswitch_id TEXT NOT NULL,
    snat_table_id TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snat_entries (entry_id TEXT PRIMARY KEY, snat_table_id TEXT NOT NULL,
    nat_id TEXT NOT NULL, source_cidr TEXT NOT NULL, source_vswitch_id TEXT NOT NULL, snat_ip TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS eips (allocation_id TEXT PRIMARY KEY, ip TEXT NOT NULL, instance_id TEXT NOT NULL,
    instance_type TEXT NOT NULL, bandwidth INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS route_tables (route_table_id TEXT PRIMARY KEY, vpc_id TEXT NOT NULL, type TEXT NOT NULL,
    name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS route_table_vswitches (vswitch_id TEXT PRIMARY KEY, route_table_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS route_entries (entry_id TEXT PRIMARY KEY, route_table_id TEXT NOT NULL,
    destination TEXT NOT NULL, next_hop_type TEXT NOT NULL, next_hop_id TEXT NOT NULL, type TEXT NOT NULL,
    name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (resource_id TEXT PRIMARY KEY, polls INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS client_tokens (token TEXT NOT NULL, action TEXT NOT NULL, fingerprint TEXT NOT NULL,
    response TEXT NOT NULL, PRIMARY KEY (token, action));
"""

CREATED_AT = "2026-11-01T00:00:00Z"


class Store:
    """The SQLite state file; thread-safe through one lock around one connection."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(":memory:")
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            from terwayctl.emulator.ipv6 import SCHEMA as IPV6_SCHEMA

            self._conn.executescript(SCHEMA + IPV6_SCHEMA)
        except sqlite3.Error as exc:
            self._conn.close()
            raise InvalidInput(f"cannot use the state file {self.path}: {exc}",
                               hint="give a writable path to a new file or to an emulator state file") from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One serialised write transaction: committed on success, rolled back on any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def is_empty(self) -> bool:
        with self.transaction() as conn:
            return conn.execute("SELECT value FROM meta WHERE key = 'region'").fetchone() is None

    def region(self) -> str:
        with self.transaction() as conn:
            return get_meta(conn, "region")


def get_meta(conn: sqlite3.Connection, key: str, default: str = "") -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else str(row["value"])


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def next_serial(conn: sqlite3.Connection) -> int:
    serial = int(get_meta(conn, "serial", "0")) + 1
    set_meta(conn, "serial", str(serial))
    return serial


def new_id(conn: sqlite3.Connection, prefix: str) -> str:
    """A fresh id like `eni-bp1` + 17 characters, unique within the state file."""
    serial = next_serial(conn)
    digest = hashlib.sha1(f"{prefix}:{serial}".encode()).hexdigest()
    return f"{prefix}-bp1{digest[:13]}{serial:04x}"


def new_mac(conn: sqlite3.Connection) -> str:
    serial = next_serial(conn)
    return "00:16:3e:" + ":".join(f"{b:02x}" for b in serial.to_bytes(3, "big"))


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# --- addresses ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VSwitchRange:
    """The usable addresses of a vSwitch: [first, last] as integers, reserved ones excluded."""

    vswitch_id: str
    network: ipaddress.IPv4Network

    @property
    def first(self) -> int:
        return int(self.network.network_address) + 1

    @property
    def last(self) -> int:
        return int(self.network.broadcast_address) - 3

    @property
    def usable(self) -> int:
        return max(0, self.network.num_addresses - defaults.VSWITCH_RESERVED_ADDRESSES)


def row_or_not_found(conn: sqlite3.Connection, query: str, kind: str, resource_id: str) -> sqlite3.Row:
    """The row `query` selects by its one `?` (the id), or `Invalid<kind>Id.NotFound` as the real API answers."""
    row = conn.execute(query, (resource_id,)).fetchone()
    if row is None:
        raise not_found(kind, resource_id)
    return row  # type: ignore[no-any-return]


def eni_row(conn: sqlite3.Connection, eni_id: str) -> sqlite3.Row:
    return row_or_not_found(conn, "SELECT * FROM enis WHERE eni_id = ?", "Eni", eni_id)


def vswitch_row(conn: sqlite3.Connection, vswitch_id: str) -> sqlite3.Row:
    return row_or_not_found(conn, "SELECT * FROM vswitches WHERE vswitch_id = ?", "VSwitch", vswitch_id)


def vswitch_range(conn: sqlite3.Connection, vswitch_id: str) -> VSwitchRange:
    return VSwitchRange(vswitch_id, ipaddress.IPv4Network(vswitch_row(conn, vswitch_id)["cidr"]))


def available_count(conn: sqlite3.Connection, vswitch_id: str) -> int:
    used = conn.execute("SELECT COUNT(*) FROM ips WHERE vswitch_id = ?", (vswitch_id,)).fetchone()[0]
    return vswitch_range(conn, vswitch_id).usable - int(used)


def allocate(conn: sqlite3.Connection, vswitch_id: str, eni_id: str, count: int, primary: bool = False) -> list[str]:
    """Hand out the `count` lowest free addresses of the vSwitch; IpNotEnough when it runs dry."""
    rng = vswitch_range(conn, vswitch_id)
    if count > available_count(conn, vswitch_id):
        raise ApiError("InvalidVSwitchId.IpNotEnough", f"The specified VSwitch \"{vswitch_id}\" has not enough "
                       "IpAddress.")
    used = {r[0] for r in conn.execute("SELECT ip FROM ips WHERE vswitch_id = ?", (vswitch_id,))}
    chosen: list[int] = []
    candidate = rng.first
    while len(chosen) < count and candidate <= rng.last:
        if candidate not in used:
            chosen.append(candidate)
        candidate += 1
    _insert_ips(conn, vswitch_id, eni_id, chosen, primary)
    return [str(ipaddress.IPv4Address(ip)) for ip in chosen]


def allocate_specific(
    conn: sqlite3.Connection, vswitch_id: str, eni_id: str, addresses: Sequence[str], primary: bool = False
) -> list[str]:
    """Take exactly these addresses; each must be a usable, free address of the vSwitch."""
    rng = vswitch_range(conn, vswitch_id)
    chosen = []
    for text in addresses:
        try:
            value = int(ipaddress.IPv4Address(text))
        except ValueError:
            raise ApiError("InvalidPrivateIpAddress.Malformed", f"The address \"{text}\" is malformed.") from None
        if not rng.first <= value <= rng.last:
            raise ApiError("InvalidPrivateIpAddress.Mismatch",
                           f"The address \"{text}\" is not a usable address of the vSwitch {vswitch_id} "
                           f"({rng.network}); the first and the last three addresses are reserved.")
        taken = conn.execute("SELECT 1 FROM ips WHERE vswitch_id = ? AND ip = ?", (vswitch_id, value)).fetchone()
        if taken is not None or value in chosen:
            raise ApiError("InvalidPrivateIpAddress.Duplicated", f"The address \"{text}\" is already in use.")
        chosen.append(value)
    _insert_ips(conn, vswitch_id, eni_id, chosen, primary)
    return [str(ipaddress.IPv4Address(ip)) for ip in chosen]


def _insert_ips(conn: sqlite3.Connection, vswitch_id: str, eni_id: str, ips: Sequence[int], primary: bool) -> None:
    conn.executemany(
        "INSERT INTO ips (vswitch_id, ip, eni_id, is_primary) VALUES (?, ?, ?, ?)",
        [(vswitch_id, ip, eni_id, int(primary and i == 0)) for i, ip in enumerate(ips)],
    )


def eni_ips(conn: sqlite3.Connection, eni_id: str) -> list[tuple[str, bool]]:
    """(address, primary) of an ENI, primary first, then in address order."""
    rows = conn.execute("SELECT ip, is_primary FROM ips WHERE eni_id = ? ORDER BY is_primary DESC, ip", (eni_id,))
    return [(str(ipaddress.IPv4Address(r["ip"])), bool(r["is_primary"])) for r in rows]


def release_ips(conn: sqlite3.Connection, eni_id: str, addresses: Sequence[str] | None = None) -> None:
    if addresses is None:
        conn.execute("DELETE FROM ips WHERE eni_id = ?", (eni_id,))
        return
    conn.executemany(
        "DELETE FROM ips WHERE eni_id = ? AND ip = ?", [(eni_id, int(ipaddress.IPv4Address(a))) for a in addresses]
    )


# --- seeding --------------------------------------------------------------------------------------


def seed_world(conn: sqlite3.Connection, world: World) -> None:
    """Write a validated World into an empty state."""
    set_meta(conn, "region", world.region)
    set_meta(conn, "attach_delay_ms", str(world.settings.attach_delay_ms))
    set_meta(conn, "detach_delay_ms", str(world.settings.detach_delay_ms))
    conn.executemany("INSERT INTO zones (zone_id) VALUES (?)", [(z,) for z in world.zones])
    conn.executemany(
        "INSERT INTO key_pairs VALUES (?, ?, ?, ?)",
        [(k.access_key_id, k.access_key_secret, k.security_token, dumps(list(k.denied_actions)))
         for k in world.key_pairs],
    )
    conn.executemany("INSERT INTO vpcs VALUES (?, ?, ?)", [(v.id, v.cidr, v.name) for v in world.vpcs])
    conn.executemany(
        "INSERT INTO vswitches VALUES (?, ?, ?, ?, ?)",
        [(v.id, v.vpc_id, v.zone, v.cidr, v.name) for v in world.vswitches],
    )
    conn.executemany("INSERT INTO vpc_ipv6 VALUES (?, ?)", [(v.id, v.ipv6_cidr) for v in world.vpcs if v.ipv6_cidr])
    conn.executemany("INSERT INTO vswitch_ipv6 VALUES (?, ?)",
                     [(v.id, v.ipv6_cidr) for v in world.vswitches if v.ipv6_cidr])
    conn.executemany(
        "INSERT INTO security_groups VALUES (?, ?, ?)", [(g.id, g.vpc_id, g.name) for g in world.security_groups]
    )
    vpc_of = {v.id: v.vpc_id for v in world.vswitches}
    for inst in world.instances:
        conn.execute(
            "INSERT INTO instances VALUES (?, ?, ?, ?, ?, ?, ?)",
            (inst.id, inst.instance_type, inst.zone, inst.vswitch_id, vpc_of[inst.vswitch_id], inst.name,
             dumps(list(inst.security_group_ids))),
        )
        conn.execute(
            "INSERT INTO enis (eni_id, type, status, instance_id, vswitch_id, vpc_id, zone_id, mac,"
            " security_group_ids, created_at) VALUES (?, 'Primary', 'InUse', ?, ?, ?, ?, ?, ?, ?)",
            (inst.primary_eni_id, inst.id, inst.vswitch_id, vpc_of[inst.vswitch_id], inst.zone, new_mac(conn),
             dumps(list(inst.security_group_ids)), CREATED_AT),
        )
        _seed_primary_ip(conn, inst.vswitch_id, inst.primary_eni_id, inst.primary_ip, inst.id)
    for nat in world.nat_gateways:
        conn.execute("INSERT INTO nat_gateways VALUES (?, ?, ?, ?, ?)",
                     (nat.id, nat.vpc_id, nat.vswitch_id, nat.snat_table_id, nat.name))
        conn.executemany(
            "INSERT INTO snat_entries VALUES (?, ?, ?, ?, ?, ?)",
            [(e.id, nat.snat_table_id, nat.id, e.source_cidr, e.source_vswitch_id, e.snat_ip) for e in nat.snat_entries],
        )
    conn.executemany(
        "INSERT INTO eips VALUES (?, ?, ?, ?, ?)",
        [(e.id, e.ip, e.instance_id, e.instance_type, e.bandwidth) for e in world.eips],
    )
    for nat in world.nat_gateways:
        if not nat.default_route:
            set_meta(conn, f"no_default_route:{nat.id}", "1")
    for vpc in world.vpcs:
        system_route_table(conn, vpc.id)
    for table in world.route_tables:
        conn.execute("INSERT INTO route_tables VALUES (?, ?, 'Custom', ?)", (table.id, table.vpc_id, table.name))
        conn.executemany("INSERT INTO route_table_vswitches VALUES (?, ?)", [(v, table.id) for v in table.vswitch_ids])
        for route in table.routes:
            add_route(conn, table.id, route.destination, route.next_hop_type, route.next_hop_id)


def system_route_table(conn: sqlite3.Connection, vpc_id: str) -> str:
    """The id of the VPC's system route table, created on first use (states from older versions have none).

    Creating it adds 0.0.0.0/0 to the VPC's first NAT gateway, as creating an enhanced NAT gateway does.
    """
    table_id = "vtb-" + vpc_id.removeprefix("vpc-")
    if conn.execute("SELECT 1 FROM route_tables WHERE route_table_id = ?", (table_id,)).fetchone() is None:
        conn.execute("INSERT INTO route_tables VALUES (?, ?, 'System', '')", (table_id, vpc_id))
        nat = conn.execute("SELECT nat_id FROM nat_gateways WHERE vpc_id = ? ORDER BY rowid", (vpc_id,)).fetchone()
        if nat is not None and get_meta(conn, f"no_default_route:{nat[0]}") != "1":
            add_route(conn, table_id, "0.0.0.0/0", "NatGateway", str(nat[0]))
    return table_id


def add_route(conn: sqlite3.Connection, table_id: str, destination: str, hop_type: str, hop_id: str,
              name: str = "") -> str:
    # Derived from the table and destination (one route per destination): no serial is consumed, so
    # the ids of everything else created later stay as they were before route tables existed.
    entry_id = "rte-bp1" + hashlib.sha1(f"{table_id}:{destination}".encode()).hexdigest()[:17]
    conn.execute("INSERT INTO route_entries VALUES (?, ?, ?, ?, ?, 'Custom', ?)",
                 (entry_id, table_id, destination, hop_type, hop_id, name))
    return entry_id


def route_table_of(conn: sqlite3.Connection, vswitch_id: str, vpc_id: str) -> tuple[str, str]:
    """(route table id, System|Custom) the vSwitch uses."""
    row = conn.execute("SELECT route_table_id FROM route_table_vswitches WHERE vswitch_id = ?", (vswitch_id,)).fetchone()
    if row is not None:
        return str(row[0]), "Custom"
    return system_route_table(conn, vpc_id), "System"


def mark_pending(conn: sqlite3.Connection, resource_id: str) -> None:
    """A new resource reads Pending for `pending_polls` (meta, default 1) reads, then Available."""
    polls = int(get_meta(conn, "pending_polls", "1"))
    if polls > 0:
        conn.execute("INSERT OR REPLACE INTO pending VALUES (?, ?)", (resource_id, polls))


def status_of(conn: sqlite3.Connection, resource_id: str) -> str:
    """Pending or Available; each read of a Pending resource counts down its remaining Pending reads."""
    row = conn.execute("SELECT polls FROM pending WHERE resource_id = ?", (resource_id,)).fetchone()
    if row is None:
        return "Available"
    if int(row[0]) <= 1:
        conn.execute("DELETE FROM pending WHERE resource_id = ?", (resource_id,))
    else:
        conn.execute("UPDATE pending SET polls = polls - 1 WHERE resource_id = ?", (resource_id,))
    return "Pending"


def _seed_primary_ip(conn: sqlite3.Connection, vswitch_id: str, eni_id: str, ip: str | None, instance_id: str) -> None:
    try:
        if ip is None:
            allocate(conn, vswitch_id, eni_id, 1, primary=True)
        else:
            allocate_specific(conn, vswitch_id, eni_id, [ip], primary=True)
    except ApiError as exc:
        raise InvalidInput(f"scenario: instance {instance_id}: {exc.message}",
                           hint="give every instance a free, usable address of its vSwitch") from None
