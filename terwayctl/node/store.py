"""The daemon's state in SQLite (WAL): the node's ENIs, their pod IPs, and who owns each IP.

Every change is one committed transaction (synchronous=FULL) before the caller goes on: an
allocation is on disk before the plugin hears of it, so a crash (kill -9) loses nothing that was
answered. One connection, shared by the daemon's threads under a lock; readers in other
processes (`terwayctl ipam check`) open their own connection (WAL lets them read while it writes).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 2
"""2: leases (stable IPs of StatefulSet pods, docs/node.md) and ips.sticky"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS enis (
    eni_id      TEXT PRIMARY KEY,
    mac         TEXT NOT NULL,
    vswitch_id  TEXT NOT NULL,
    cidr        TEXT NOT NULL,
    gateway     TEXT NOT NULL,
    primary_ip  TEXT NOT NULL,
    ip_limit    INTEGER NOT NULL,
    created     REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ips (
    ip            TEXT PRIMARY KEY,
    eni_id        TEXT NOT NULL REFERENCES enis(eni_id) ON DELETE CASCADE,
    container_id  TEXT,
    ifname        TEXT,
    netns         TEXT,
    pod_namespace TEXT,
    pod_name      TEXT,
    pod_uid       TEXT,
    host_ifname   TEXT,
    mode          TEXT,
    allocated     REAL,
    sticky        TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS ips_owner ON ips(container_id, ifname) WHERE container_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS intents (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    action        TEXT NOT NULL,
    eni_id        TEXT NOT NULL DEFAULT '',
    params        TEXT NOT NULL,
    client_token  TEXT NOT NULL DEFAULT '',
    pid           INTEGER NOT NULL DEFAULT 0,
    created       REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    ip            TEXT PRIMARY KEY REFERENCES ips(ip) ON DELETE CASCADE,
    pod_namespace TEXT NOT NULL,
    pod_name      TEXT NOT NULL,
    pod_uid       TEXT NOT NULL DEFAULT '',
    reason        TEXT NOT NULL DEFAULT '',
    released      REAL NOT NULL,
    expires       REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS leases_pod ON leases(pod_namespace, pod_name);
"""
_MIGRATIONS = (
    (2, "ALTER TABLE ips ADD COLUMN sticky TEXT"),
)
"""(schema version, statement) applied in order to a store older than that version (the tables new in
a version are created by the CREATE ... IF NOT EXISTS of _SCHEMA)"""


@dataclass(frozen=True)
class EniRecord:
    eni_id: str
    mac: str
    vswitch_id: str
    cidr: str
    gateway: str
    primary_ip: str
    ip_limit: int


@dataclass(frozen=True)
class Owner:
    """Who holds an IP: the pod and its sandbox."""

    container_id: str
    ifname: str
    netns: str = ""
    pod_namespace: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    sticky: str = ""
    """why the IP stays reserved for the pod's namespace/name after its DEL (the owner kind, e.g.
    StatefulSet, or the pod-ip-reservation annotation); '' : it goes back to the pool (leases.py)"""


@dataclass(frozen=True)
class Lease:
    """An IP kept for a pod's namespace/name after its DEL, until `expires` (wall clock)."""

    ip: str
    pod_namespace: str
    pod_name: str
    pod_uid: str
    reason: str
    released: float
    expires: float


@dataclass(frozen=True)
class IpRecord:
    ip: str
    eni_id: str
    owner: Owner | None
    host_ifname: str = ""
    mode: str = ""
    allocated: float | None = None


@dataclass(frozen=True)
class Intent:
    """A mutating cloud call written down before it is sent (docs/node.md, the intent log).

    `params` are the call's parameters (JSON values); `client_token` is '' for calls without one.
    `pid` is the daemon process that wrote it: an intent of another pid was left by a crash.
    """

    id: int
    action: str
    eni_id: str
    params: dict[str, object]
    client_token: str
    pid: int
    created: float


class Conflict(Exception):
    """The IP is no longer idle, or the owner already holds another IP."""


class Store:
    """The SQLite store under the daemon's state directory."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.Lock()
        if readonly:
            self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=10)
        else:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._conn = sqlite3.connect(path, check_same_thread=False, timeout=10, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        self._conn.row_factory = sqlite3.Row

    def _migrate(self) -> None:
        """Create what is missing and bring an older store (an earlier daemon's) to SCHEMA_VERSION."""
        conn = self._conn
        existed = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'ips'").fetchone() is not None
        columns = {r[1] for r in conn.execute("PRAGMA table_info(ips)")} if existed else set()
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        version = int(row[0]) if row is not None else (1 if existed else SCHEMA_VERSION)
        for target, statement in _MIGRATIONS:
            if version < target and not (target == 2 and "sticky" in columns):
                conn.execute(statement)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(max(version, SCHEMA_VERSION)),))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # --- reads -----------------------------------------------------------------------------------

    def enis(self) -> list[EniRecord]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM enis ORDER BY created, eni_id").fetchall()
        return [
            EniRecord(r["eni_id"], r["mac"], r["vswitch_id"], r["cidr"], r["gateway"], r["primary_ip"], r["ip_limit"])
            for r in rows
        ]

    def ips(self) -> list[IpRecord]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM ips ORDER BY eni_id, ip").fetchall()
        return [_ip_record(r) for r in rows]

    def allocations(self) -> list[IpRecord]:
        return [r for r in self.ips() if r.owner is not None]

    def allocation_of(self, container_id: str, ifname: str = "") -> IpRecord | None:
        query = "SELECT * FROM ips WHERE container_id = ?" + (" AND ifname = ?" if ifname else "")
        with self._lock:
            row = self._conn.execute(query, (container_id, ifname) if ifname else (container_id,)).fetchone()
        return None if row is None else _ip_record(row)

    def intents(self) -> list[Intent]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM intents ORDER BY id").fetchall()
        return [
            Intent(r["id"], r["action"], r["eni_id"], json.loads(r["params"]), r["client_token"], r["pid"],
                   r["created"])
            for r in rows
        ]

    def leases(self) -> list[Lease]:
        """The IPs kept for pods after their DEL (leases.py), soonest to expire first."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM leases ORDER BY expires, ip").fetchall()
        return [_lease(r) for r in rows]

    def lease_of(self, namespace: str, name: str) -> Lease | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM leases WHERE pod_namespace = ? AND pod_name = ?",
                                     (namespace, name)).fetchone()
        return None if row is None else _lease(row)

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    # --- writes (each one transaction) -------------------------------------------------------------

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def begin_intent(self, action: str, params: dict[str, object], *, eni_id: str = "", client_token: str = "") -> int:
        """Write an intent before its call is sent; its id, for `set_intent_eni` / `end_intent`."""
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO intents (action, eni_id, params, client_token, pid, created) VALUES (?, ?, ?, ?, ?, ?)",
                (action, eni_id, json.dumps(params, sort_keys=True), client_token, os.getpid(), time.time()),
            )
            return int(cursor.lastrowid or 0)

    def set_intent_eni(self, intent_id: int, eni_id: str) -> None:
        """The ENI an intent is about, once known (CreateNetworkInterface's reply)."""
        with self._tx() as conn:
            conn.execute("UPDATE intents SET eni_id = ? WHERE id = ?", (eni_id, intent_id))

    def end_intent(self, intent_id: int, *, add: tuple[str, Iterable[str]] | None = None,
                   remove: Iterable[str] = ()) -> None:
        """Resolve an intent, with the store change it leads to, in one transaction: `add` (ENI id,
        IPs) idle IPs the cloud confirmed, `remove` IPs the cloud no longer holds (idle ones only:
        an allocation is kept for its DEL and dropped by reconciliation afterwards)."""
        with self._tx() as conn:
            if add is not None:
                eni_id, ips = add
                conn.executemany("INSERT OR IGNORE INTO ips (ip, eni_id) VALUES (?, ?)", [(ip, eni_id) for ip in ips])
            conn.executemany("DELETE FROM ips WHERE ip = ? AND container_id IS NULL", [(ip,) for ip in remove])
            conn.execute("DELETE FROM intents WHERE id = ?", (intent_id,))

    def add_eni(self, eni: EniRecord, ips: Iterable[str] = ()) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO enis VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (eni.eni_id, eni.mac, eni.vswitch_id, eni.cidr, eni.gateway, eni.primary_ip, eni.ip_limit,
                 time.time()),
            )
            conn.executemany("INSERT OR IGNORE INTO ips (ip, eni_id) VALUES (?, ?)", [(ip, eni.eni_id) for ip in ips])

    def remove_eni(self, eni_id: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM ips WHERE eni_id = ?", (eni_id,))
            conn.execute("DELETE FROM enis WHERE eni_id = ?", (eni_id,))

    def add_idle(self, eni_id: str, ips: Iterable[str]) -> None:
        with self._tx() as conn:
            conn.executemany("INSERT OR IGNORE INTO ips (ip, eni_id) VALUES (?, ?)", [(ip, eni_id) for ip in ips])

    def remove_ips(self, ips: Iterable[str]) -> None:
        with self._tx() as conn:
            conn.executemany("DELETE FROM ips WHERE ip = ?", [(ip,) for ip in ips])

    def remove_idle(self, ips: Iterable[str]) -> None:
        """Delete the IPs that no pod holds (an allocation stays for its DEL)."""
        with self._tx() as conn:
            conn.executemany("DELETE FROM ips WHERE ip = ? AND container_id IS NULL", [(ip,) for ip in ips])

    def allocate(self, ip: str, owner: Owner, *, host_ifname: str, mode: str) -> None:
        """Give an idle IP to `owner`; Conflict when the IP is taken or the owner holds one."""
        with self._tx() as conn:
            try:
                cursor = conn.execute(
                    "UPDATE ips SET container_id=?, ifname=?, netns=?, pod_namespace=?, pod_name=?, pod_uid=?,"
                    " host_ifname=?, mode=?, allocated=?, sticky=? WHERE ip=? AND container_id IS NULL"
                    " AND ip NOT IN (SELECT ip FROM leases)",
                    (owner.container_id, owner.ifname, owner.netns, owner.pod_namespace, owner.pod_name,
                     owner.pod_uid, host_ifname, mode, time.time(), owner.sticky or None, ip),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"{owner.container_id}/{owner.ifname} already holds an IP") from None
            if cursor.rowcount != 1:
                raise Conflict(f"{ip} is not idle")

    def release(self, ip: str, container_id: str) -> bool:
        """Back to idle, only by its owner; False when `container_id` does not hold `ip`."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE ips SET container_id=NULL, ifname=NULL, netns=NULL, pod_namespace=NULL, pod_name=NULL,"
                " pod_uid=NULL, host_ifname=NULL, mode=NULL, allocated=NULL, sticky=NULL WHERE ip=? AND container_id=?",
                (ip, container_id),
            )
            return cursor.rowcount == 1

    # --- leases (leases.py) ------------------------------------------------------------------------

    def release_to_lease(self, ip: str, container_id: str, lease: Lease) -> list[str] | None:
        """DEL of a sticky pod: release `ip` from its owner and keep it for the pod's namespace/name,
        in one transaction (a crash leaves either the allocation or the lease, never an idle IP).
        None when `container_id` does not hold `ip`; else the IPs of older leases of the same pod,
        which this one replaces (they are idle now)."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE ips SET container_id=NULL, ifname=NULL, netns=NULL, pod_namespace=NULL, pod_name=NULL,"
                " pod_uid=NULL, host_ifname=NULL, mode=NULL, allocated=NULL, sticky=NULL WHERE ip=? AND container_id=?",
                (ip, container_id),
            )
            if cursor.rowcount != 1:
                return None
            older = [str(r[0]) for r in conn.execute(
                "SELECT ip FROM leases WHERE pod_namespace = ? AND pod_name = ? AND ip != ?",
                (lease.pod_namespace, lease.pod_name, ip))]
            conn.executemany("DELETE FROM leases WHERE ip = ?", [(i,) for i in older])
            conn.execute(
                "INSERT OR REPLACE INTO leases (ip, pod_namespace, pod_name, pod_uid, reason, released, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (ip, lease.pod_namespace, lease.pod_name, lease.pod_uid, lease.reason, lease.released, lease.expires),
            )
            return older

    def take_lease(self, ip: str, owner: Owner, *, host_ifname: str, mode: str) -> None:
        """ADD of the pod a lease is kept for: end the lease and give its IP to `owner`, in one
        transaction; Conflict when the lease is gone (expired meanwhile) or the owner holds an IP."""
        with self._tx() as conn:
            cursor = conn.execute("DELETE FROM leases WHERE ip = ? AND pod_namespace = ? AND pod_name = ?",
                                  (ip, owner.pod_namespace, owner.pod_name))
            if cursor.rowcount != 1:
                raise Conflict(f"the lease of {ip} for {owner.pod_namespace}/{owner.pod_name} is gone")
            try:
                cursor = conn.execute(
                    "UPDATE ips SET container_id=?, ifname=?, netns=?, pod_namespace=?, pod_name=?, pod_uid=?,"
                    " host_ifname=?, mode=?, allocated=?, sticky=? WHERE ip=? AND container_id IS NULL",
                    (owner.container_id, owner.ifname, owner.netns, owner.pod_namespace, owner.pod_name,
                     owner.pod_uid, host_ifname, mode, time.time(), owner.sticky or None, ip),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"{owner.container_id}/{owner.ifname} already holds an IP") from None
            if cursor.rowcount != 1:
                raise Conflict(f"{ip} is not idle")

    def end_lease(self, ip: str, *, expired_at: float | None = None) -> bool:
        """Drop the lease of `ip` (its IP is idle again); with `expired_at`, only when it expired by
        then. False when there was no such lease (taken by its pod, or ended, meanwhile)."""
        with self._tx() as conn:
            if expired_at is None:
                cursor = conn.execute("DELETE FROM leases WHERE ip = ?", (ip,))
            else:
                cursor = conn.execute("DELETE FROM leases WHERE ip = ? AND expires <= ?", (ip, expired_at))
            return cursor.rowcount == 1


def _lease(row: sqlite3.Row) -> Lease:
    return Lease(row["ip"], row["pod_namespace"], row["pod_name"], row["pod_uid"], row["reason"], row["released"],
                 row["expires"])


def _ip_record(row: sqlite3.Row) -> IpRecord:
    owner = None
    if row["container_id"] is not None:
        sticky = row["sticky"] if "sticky" in row.keys() else ""  # noqa: SIM118 - a Row's `in` looks at values; an older store read-only
        owner = Owner(row["container_id"], row["ifname"] or "", row["netns"] or "", row["pod_namespace"] or "",
                      row["pod_name"] or "", row["pod_uid"] or "", sticky or "")
    return IpRecord(row["ip"], row["eni_id"], owner, row["host_ifname"] or "", row["mode"] or "", row["allocated"])
