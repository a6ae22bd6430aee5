"""The IP pool: idle pod IPs kept between min_pool_size and max_pool_size, refilled in batches.

One background worker owns every cloud call. ADDs that find no idle IP register as waiters and
wake the worker; the worker sizes ONE refill for all of them (waiters + min_pool_size - idle),
spreads it over the ENIs with free slots and new ENIs, and runs one job per ENI in parallel. A job
asks for at most 10 IPs per AssignPrivateIpAddresses call and publishes each batch as soon as it
is committed to the store, so waiters are served while the rest is still on its way. A burst of
pods therefore costs about ceil(pods / 10) assign calls (plus one create + attach per new ENI),
never one call per pod.

vSwitches: new ENIs go to the configured vSwitches of the node's zone (ordered: the first usable,
random: any usable). IpNotEnough backs a vSwitch off for `VSWITCH_BACKOFF` seconds and the job
tries the next one; an ENI whose vSwitch is out of addresses or that reached its IP quota is
marked full. Other failures back the whole worker off exponentially (1 s doubling to 30 s) and
make the current waiters fail fast with "try again later" (CNI code 11). The last cloud error of
each vSwitch (code, message, request id, time) is kept through its back-off and shown in the CNI
error and `daemon status`, with the fix.

Every mutating call goes through the intent log (intents.py): an IP is published (handed to a pod)
only once the cloud confirmed it on this node's ENI (the Assign/Create reply, or DescribeNetworkInterfaces
when the reply was lost). Every ip_pool_sync_period the worker runs `resync` (reconcile.py), which
repairs the differences `ipam check` finds, and then brings the pool back between min and max.

In exclusive-ENI mode the unit is an ENI: each ENI gives one "IP" (its primary address).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from terwayctl.cloud.models import NetworkInterface
from terwayctl.node.cloudapi import EniCloud, error_code
from terwayctl.node.config import ENI_CREATOR_TAG, DaemonConfig, PoolMode
from terwayctl.node.intents import Ledger, Unresolved
from terwayctl.node.links import prepare_eni, wait_for_link
from terwayctl.node.store import EniRecord, Store

log = logging.getLogger("terwayctl.node.pool")

MAX_IPS_PER_CALL = 10
REPAIR_KEY = "repair_requested"
"""store meta key `ipam check --repair` sets to the time of its request"""
VSWITCH_BACKOFF = 60.0
BACKOFF_MIN, BACKOFF_MAX = 1.0, 30.0
BATCH_WINDOW = 0.01
ATTACH_TIMEOUT = 60.0
LINK_TIMEOUT = 20.0
MAX_PARALLEL_JOBS = 8

IP_NOT_ENOUGH = "InvalidVSwitchId.IpNotEnough"
FIXES = {
    IP_NOT_ENOUGH: "add a pod vSwitch with free addresses in this zone: terwayctl vswitch add vsw-...",
    "QuotaExceeded.PrivateIpAddress": "the ENI reached its private IP quota; the pool uses another ENI",
    "EniPerInstanceLimitExceeded": "the instance holds its maximum of ENIs; lower max_pool_size or use a larger type",
}
ENI_FULL_CODES = frozenset({"QuotaExceeded.PrivateIpAddress", "InvalidOperation.Ipv4CountExceeded"})
ENI_LIMIT_CODES = frozenset({"EniPerInstanceLimitExceeded"})


@dataclass(frozen=True)
class VSwitchInfo:
    vswitch_id: str
    cidr: str

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def gateway(self) -> str:
        """The vSwitch gateway: the last address but two (x.x.x.253 of a /24), as in the VPC."""
        return str(self.network.broadcast_address - 2)

    @property
    def prefix(self) -> int:
        return self.network.prefixlen


@dataclass
class Eni:
    record: EniRecord
    ifname: str
    ips: set[str] = field(default_factory=set)
    full: bool = False

    @property
    def eni_id(self) -> str:
        return self.record.eni_id


class PoolEmpty(Exception):
    """No IP could be handed out in time; `detail` names the cloud error when there was one."""

    def __init__(self, message: str, detail: str = "", code: str = "") -> None:
        super().__init__(message)
        self.detail = detail
        self.code = code


@dataclass(frozen=True)
class VSwitchError:
    """The cloud's last error for a vSwitch, kept through its back-off."""

    vswitch_id: str
    code: str
    message: str
    request_id: str
    at: float
    """wall-clock time of the error"""
    until: float
    """wall-clock end of the back-off (== at when the vSwitch is not backed off)"""

    def describe(self, now: float) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at))
        left = f", backed off {self.until - now:.0f}s more" if self.until > now else ""
        fix = FIXES.get(self.code)
        return (f"{self.vswitch_id}: {self.code}: {self.message} (request {self.request_id or '-'}, {when}{left})"
                + (f"; fix: {fix}" if fix else ""))


@dataclass(frozen=True)
class Limits:
    max_enis: int
    """secondary ENIs this node may hold"""
    ip_limit: int
    """pod IPs per ENI (EniPrivateIpAddressQuantity; 1 in exclusive mode)"""


class Pool:
    def __init__(
        self,
        *,
        cloud: EniCloud,
        store: Store,
        config: DaemonConfig,
        limits: Limits,
        vswitches: dict[str, VSwitchInfo],
        security_groups: Sequence[str],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cloud = cloud
        self.store = store
        self.config = config
        self.limits = limits
        self.vswitches = vswitches
        self.security_groups = tuple(security_groups)
        self.clock = clock
        self.sleep = sleep
        self.cond = threading.Condition()
        self.enis: dict[str, Eni] = {}
        self.idle: deque[str] = deque()
        self.allocated: set[str] = set()
        self.leased: set[str] = set()
        """IPs kept for a StatefulSet pod after its DEL (leases.py): neither idle nor allocated"""
        self.ip_eni: dict[str, str] = {}
        self.max_enis = limits.max_enis
        self.last_error = ""
        self._waiters = 0
        self._failed_rounds = 0
        self._creating = 0
        self._vsw_backoff: dict[str, float] = {}
        self._backoff = 0.0
        self._backoff_until = 0.0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()
        self.ledger = Ledger(cloud, store, config.identity.instance_id, sleep=sleep)
        self.vswitch_errors: dict[str, VSwitchError] = {}
        self.resync: Callable[[], None] | None = None
        """the periodic reconciliation (reconcile.resync), run by the worker every sync period"""
        self.after_assign: Callable[[str, str], None] | None = None
        """dual stack (node/ipv6.py): called with (ENI id, vSwitch id) after IPv4 addresses joined an ENI
        and before they are handed out; None on an IPv4 node"""
        self.last_resync = 0.0
        self.next_resync = 0.0
        self._resync_now = threading.Event()
        self._repair_seen = time.time()

    # --- state -------------------------------------------------------------------------------------

    def load(self, enis: Sequence[Eni], allocated: Sequence[str], leased: Sequence[str] = ()) -> None:
        """The reconciled state: every ENI with its IPs; `allocated` are held by pods, `leased` kept
        for pods (leases.py)."""
        with self.cond:
            taken = set(allocated)
            kept = set(leased) - taken
            for eni in enis:
                self.enis[eni.eni_id] = eni
                for ip in sorted(eni.ips, key=ipaddress.IPv4Address):
                    self.ip_eni[ip] = eni.eni_id
                    if ip in taken:
                        self.allocated.add(ip)
                    elif ip in kept:
                        self.leased.add(ip)
                    else:
                        self.idle.append(ip)

    def eni_of(self, ip: str) -> Eni | None:
        with self.cond:
            eni_id = self.ip_eni.get(ip)
            return None if eni_id is None else self.enis.get(eni_id)

    def counts(self) -> dict[str, float]:
        with self.cond:
            total = len(self.ip_eni)
            return {
                "terway_pool_enis": len(self.enis),
                "terway_pool_max_enis": self.max_enis,
                "terway_pool_ips": total,
                "terway_pool_idle_ips": len(self.idle),
                "terway_pool_allocated_ips": len(self.allocated),
                "terway_pool_leased_ips": len(self.leased),
            }

    def snapshot(self) -> list[dict[str, object]]:
        with self.cond:
            return [
                {
                    "eni_id": eni.eni_id,
                    "ifname": eni.ifname,
                    "mac": eni.record.mac,
                    "vswitch_id": eni.record.vswitch_id,
                    "ips": len(eni.ips),
                    "ip_limit": eni.record.ip_limit,
                    "allocated": len(eni.ips & self.allocated),
                    "leased": len(eni.ips & self.leased),
                    "full": eni.full,
                }
                for eni in self.enis.values()
            ]

    # --- ADD / DEL side ----------------------------------------------------------------------------

    def acquire(self, timeout: float) -> tuple[str, Eni]:
        """Take an idle IP, waiting up to `timeout` s for the worker's refill. PoolEmpty otherwise."""
        deadline = self.clock() + timeout
        with self.cond:
            self._waiters += 1
            failed_before = self._failed_rounds
            try:
                while not self.idle:
                    if self._failed_rounds > failed_before:
                        raise PoolEmpty(f"no IP in the pool and the refill failed: {self.last_error}"
                                        if self.last_error else "no IP in the pool and the refill failed",
                                        self.last_error)
                    remaining = deadline - self.clock()
                    if remaining <= 0:
                        raise PoolEmpty(f"no IP in the pool within {timeout:g}s", self.last_error)
                    self._wake.set()
                    self.cond.wait(min(remaining, 0.5))
                ip = self.idle.popleft()
                self.allocated.add(ip)
                eni = self.enis[self.ip_eni[ip]]
            finally:
                self._waiters -= 1
        if len(self.idle) < self.config.pool.min_pool_size:
            self._wake.set()
        return ip, eni

    def give_back(self, ip: str) -> None:
        """An allocated IP is idle again (DEL, a failed ADD)."""
        with self.cond:
            if ip in self.allocated:
                self.allocated.discard(ip)
                if ip in self.ip_eni:
                    self.idle.append(ip)
                self.cond.notify_all()
        if len(self.idle) > self.config.pool.max_pool_size:
            self._wake.set()

    def lease(self, ip: str) -> None:
        """An allocated IP is kept for its pod after DEL (leases.py): never handed out meanwhile."""
        with self.cond:
            self.allocated.discard(ip)
            if ip in self.ip_eni:
                self.leased.add(ip)

    def take_leased(self, ip: str) -> None:
        """A leased IP goes back to its pod (ADD of the same namespace/name)."""
        with self.cond:
            self.leased.discard(ip)
            if ip in self.idle:
                self.idle.remove(ip)
            self.allocated.add(ip)

    def unlease(self, ip: str) -> None:
        """A lease ended (expired, replaced): the IP is idle; the worker shrinks the pool if needed."""
        with self.cond:
            if ip not in self.leased:
                return
            self.leased.discard(ip)
            if ip in self.ip_eni:
                self.idle.append(ip)
            self.cond.notify_all()
        if len(self.idle) > self.config.pool.max_pool_size:
            self._wake.set()

    # --- the worker ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="terway-pool", daemon=True)
        self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def request_resync(self) -> None:
        """Reconcile with the cloud at the worker's next turn (`ipam check --repair`)."""
        self._resync_now.set()
        self._wake.set()

    def _maybe_resync(self, due: bool) -> None:
        if self.resync is None or not (due or self._resync_now.is_set()):
            return
        self._resync_now.clear()
        try:
            self.resync()
        except Exception:
            log.exception("reconciliation failed; retried next period")
        self.last_resync = time.time()
        self.next_resync = self.last_resync + self.config.pool.sync_period

    def _run(self) -> None:
        period = self.config.pool.sync_period
        next_sync = self.clock() + period
        self.next_resync = time.time() + period
        with contextlib.suppress(Exception):
            self.store.set_meta("resync_next", f"{self.next_resync:.3f}")
        while not self._stop.is_set():
            now = self.clock()
            wait_until = max(next_sync, self._backoff_until) if self._backoff_until > now else next_sync
            self._wait(wait_until)
            if self._stop.is_set():
                return
            if self.clock() < self._backoff_until:
                self._wake.clear()
                self._fail_waiters()
                self._stop.wait(min(self._backoff_until - self.clock(), 0.5))
                continue
            self._wake.clear()
            due = self.clock() >= next_sync
            if due:
                next_sync = self.clock() + period
            self._maybe_resync(due)
            self._stop.wait(BATCH_WINDOW)  # let a burst of ADDs register before sizing the refill
            try:
                error = self._round()
            except Exception as exc:
                log.exception("pool round failed")
                error = f"{type(exc).__name__}: {exc}"
            with self.cond:
                if error:
                    self.last_error = error
                    self._failed_rounds += 1
                    self._backoff = min(max(self._backoff * 2, BACKOFF_MIN), BACKOFF_MAX)
                    self._backoff_until = self.clock() + self._backoff
                    log.warning("pool refill failed; backing off %.1fs: %s", self._backoff, error)
                else:
                    self._backoff = 0.0
                    if self._waiters > len(self.idle) or len(self.idle) < self.config.pool.min_pool_size:
                        self._wake.set()
                self.cond.notify_all()

    def _wait(self, until: float) -> None:
        """Sleep until `until` or a wake-up; every second, look for a repair request in the store
        (`ipam check --repair`, another process, writes meta repair_requested)."""
        while not self._wake.is_set() and not self._stop.is_set():
            if self._repair_requested():
                self.request_resync()
                return
            left = until - self.clock()
            if left <= 0:
                return
            self._wake.wait(min(left, 1.0))

    def _repair_requested(self) -> bool:
        try:
            value = float(self.store.meta(REPAIR_KEY) or 0)
        except Exception:  # noqa: BLE001 - a closed store at shutdown, a bad value
            return False
        if value > self._repair_seen:
            self._repair_seen = value
            log.info("repair requested (ipam check --repair): reconciling now")
            return True
        return False

    def _fail_waiters(self) -> None:
        with self.cond:
            if self._waiters and not self.idle:
                self._failed_rounds += 1
                self.cond.notify_all()

    def _round(self) -> str:
        """One refill or shrink; the error text ('' when everything went fine)."""
        settings = self.config.pool
        with self.cond:
            need = max(0, self._waiters + settings.min_pool_size - len(self.idle))
            excess = len(self.idle) - settings.max_pool_size if not self._waiters else 0
        if need:
            return self._grow(need)
        if excess > 0 and self.config.mode is PoolMode.ENIIP:
            return self._shrink(excess)
        return ""

    def _grow(self, need: int) -> str:
        jobs: list[Callable[[], None]] = []
        remaining = need
        now = self.clock()
        with self.cond:
            for eni in self.enis.values():
                if remaining <= 0:
                    break
                free = eni.record.ip_limit - len(eni.ips)
                if eni.full or free <= 0 or self._vsw_backoff.get(eni.record.vswitch_id, 0) > now:
                    continue
                take = min(free, remaining)
                jobs.append(lambda eni=eni, take=take: self._assign(eni, take))  # type: ignore[misc]
                remaining -= take
            slots = self.max_enis - len(self.enis) - self._creating
            while remaining > 0 and slots > 0:
                take = min(remaining, self.limits.ip_limit)
                jobs.append(lambda take=take: self._create(take))  # type: ignore[misc]
                self._creating += 1
                remaining -= take
                slots -= 1
        if not jobs:
            return f"the node has no room for more pod IPs ({len(self.enis)} of {self.max_enis} ENIs, all full)"
        log.info("pool refill: %d IPs wanted, %d job(s)", need, len(jobs))
        errors: list[str] = []
        with ThreadPoolExecutor(max_workers=min(len(jobs), MAX_PARALLEL_JOBS), thread_name_prefix="pool-job") as ex:
            for future in [ex.submit(job) for job in jobs]:
                try:
                    future.result()
                except Exception as exc:
                    log.warning("pool job failed: %s", exc, exc_info=not error_code(exc))
                    code = error_code(exc)
                    if code == IP_NOT_ENOUGH and not isinstance(exc, PoolEmpty):
                        errors.append(f"{code}: {self._all_backed_off()}")  # the vSwitch, time, request, fix
                    else:
                        errors.append(f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}")
        return "; ".join(errors)

    def _publish(self, eni: Eni, ips: Sequence[str]) -> None:
        with self.cond:
            for ip in ips:
                if ip not in self.ip_eni:
                    self.ip_eni[ip] = eni.eni_id
                    eni.ips.add(ip)
                    self.idle.append(ip)
            self.cond.notify_all()

    def _assign(self, eni: Eni, count: int) -> None:
        while count > 0:
            batch = min(count, MAX_IPS_PER_CALL)
            with self.cond:
                known = set(eni.ips)
            try:
                ips = self.ledger.assign_private_ip_addresses(eni.eni_id, batch, known)
            except Exception as exc:
                self._classify(exc, eni.record.vswitch_id, eni)
                raise
            if self.after_assign is not None:
                self.after_assign(eni.eni_id, eni.record.vswitch_id)
            self._publish(eni, ips)  # committed to the store with the intent's resolution
            count -= batch

    def _classify(self, exc: BaseException, vswitch_id: str, eni: Eni | None = None) -> None:
        code = error_code(exc)
        if code:
            now = time.time()
            backoff = VSWITCH_BACKOFF if code == IP_NOT_ENOUGH else 0.0
            message = str(getattr(exc, "message", "") or exc)
            self.vswitch_errors[vswitch_id] = VSwitchError(
                vswitch_id, code, message, str(getattr(exc, "request_id", "") or ""), now, now + backoff
            )
        if code == IP_NOT_ENOUGH:
            self._vsw_backoff[vswitch_id] = self.clock() + VSWITCH_BACKOFF
            log.warning("vSwitch %s has no free IPs; backing it off for %.0fs", vswitch_id, VSWITCH_BACKOFF)
        elif code in ENI_FULL_CODES and eni is not None:
            eni.full = True
        elif code in ENI_LIMIT_CODES:
            with self.cond:
                self.max_enis = len(self.enis)

    def _candidate_vswitches(self) -> list[str]:
        now = self.clock()
        usable = [
            v
            for v in self.config.pool.vswitches_for(self.config.identity.zone_id, self.config.identity.vswitch_id)
            if self._vsw_backoff.get(v, 0) <= now and v in self.vswitches
        ]
        if self.config.pool.vswitch_selection_policy == "random":
            self._rng.shuffle(usable)
        return usable

    def _create(self, count: int) -> None:
        try:
            self._create_eni(count)
        finally:
            with self.cond:
                self._creating -= 1

    def _create_eni(self, count: int) -> None:
        identity = self.config.identity
        exclusive = self.config.mode is PoolMode.ENI
        secondary = 0 if exclusive else max(0, min(count, self.limits.ip_limit) - 1)
        tags = {**self.config.pool.eni_tags, ENI_CREATOR_TAG: identity.instance_id}
        candidates = self._candidate_vswitches()
        if not candidates:
            raise self._all_backed_off()
        created: NetworkInterface | None = None
        last: Exception | None = None
        for vswitch_id in candidates:
            try:
                created = self.ledger.create_network_interface(
                    vswitch_id=vswitch_id,
                    security_group_ids=self.security_groups,
                    secondary_ip_count=secondary,
                    description=f"terway pod ENI of {identity.instance_id}",
                    tags=tags,
                )
                break
            except Exception as exc:
                self._classify(exc, vswitch_id)
                if error_code(exc) != IP_NOT_ENOUGH:
                    raise
                last = exc
        if created is None:
            if last is not None and error_code(last) == IP_NOT_ENOUGH:
                raise self._all_backed_off()
            raise last or PoolEmpty("no vSwitch could create an ENI")
        eni_id = created.network_interface_id
        try:
            self.ledger.attach_network_interface(eni_id)
        except Unresolved:
            raise  # reconciliation adopts it (attached) or deletes it (Available)
        except Exception as exc:
            self._classify(exc, created.vswitch_id)
            with contextlib.suppress(Exception):
                self.ledger.delete_network_interface(eni_id)  # refused: still Available
            raise
        try:
            attached = self._wait_status(eni_id, "InUse")
            ifname = wait_for_link(self.config.node_ns, attached.mac_address, LINK_TIMEOUT)
            vsw = self.vswitches[attached.vswitch_id]
            if not exclusive:
                prepare_eni(self.config.node_ns, ifname, vsw.gateway, self.config.mtu)
        except Exception:
            self._discard(eni_id)
            raise
        ips = [attached.primary_ip] if exclusive else list(attached.private_ips)
        record = EniRecord(
            eni_id=eni_id,
            mac=attached.mac_address.lower(),
            vswitch_id=attached.vswitch_id,
            cidr=vsw.cidr,
            gateway=vsw.gateway,
            primary_ip=attached.primary_ip,
            ip_limit=1 if exclusive else self.limits.ip_limit,
        )
        self.store.add_eni(record, ips)
        eni = Eni(record, ifname)
        with self.cond:
            self.enis[eni_id] = eni
        if self.after_assign is not None and not exclusive:
            self.after_assign(eni_id, attached.vswitch_id)
        self._publish(eni, ips)
        log.info("ENI %s attached as %s with %d IP(s) on %s", eni_id, ifname, len(ips), attached.vswitch_id)

    def _all_backed_off(self) -> PoolEmpty:
        """Every vSwitch of the zone is out of addresses: the cloud's errors, per vSwitch, and the fix."""
        now = time.time()
        known = [e.describe(now) for e in self.vswitch_errors.values() if e.until > now] or [
            e.describe(now) for e in self.vswitch_errors.values()
        ]
        detail = "; ".join(known) or f"fix: {FIXES[IP_NOT_ENOUGH]}"
        return PoolEmpty(f"every vSwitch of the zone is out of addresses or backed off: {detail}", detail, IP_NOT_ENOUGH)

    def vswitch_status(self) -> list[dict[str, object]]:
        """The last cloud error per vSwitch, for `daemon status`."""
        now = time.time()
        return [
            {"vswitch_id": e.vswitch_id, "code": e.code, "message": e.message, "request_id": e.request_id,
             "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.at)),
             "backed_off_for": max(0.0, round(e.until - now, 1)), "fix": FIXES.get(e.code, "")}
            for e in self.vswitch_errors.values()
        ]

    def _wait_status(self, eni_id: str, status: str) -> NetworkInterface:
        deadline = self.clock() + ATTACH_TIMEOUT
        delay = 0.05
        while True:
            found = self.cloud.describe_network_interfaces(network_interface_ids=[eni_id])
            if found and found[0].status == status:
                return found[0]
            if self.clock() >= deadline:
                raise PoolEmpty(f"ENI {eni_id} did not become {status} within {ATTACH_TIMEOUT:g}s")
            self.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _discard(self, eni_id: str) -> None:
        """Best effort: detach and delete an ENI that could not be brought into service."""
        try:
            self.ledger.detach_network_interface(eni_id)
            self._wait_status(eni_id, "Available")
            self.ledger.delete_network_interface(eni_id)
        except Exception:  # noqa: BLE001 - reconciliation deletes what is left behind
            log.warning("could not discard ENI %s; reconciliation will retry", eni_id)

    def _shrink(self, excess: int) -> str:
        with self.cond:
            primaries = {e.record.primary_ip for e in self.enis.values()}
            chosen = [ip for ip in reversed(self.idle) if ip not in primaries][:excess]
            for ip in chosen:
                self.idle.remove(ip)
            by_eni: dict[str, list[str]] = {}
            for ip in chosen:
                by_eni.setdefault(self.ip_eni[ip], []).append(ip)
        errors: list[str] = []
        for eni_id, all_ips in by_eni.items():
            for start in range(0, len(all_ips), MAX_IPS_PER_CALL):
                ips = all_ips[start : start + MAX_IPS_PER_CALL]
                try:
                    gone, kept = self.ledger.unassign_private_ip_addresses(eni_id, ips)
                except Unresolved as exc:  # unknown: forget them; reconciliation re-adopts what the cloud holds
                    errors.append(str(exc))
                    self.forget(eni_id, ips)
                    continue
                except Exception as exc:  # noqa: BLE001 - refused: the cloud still holds them, idle again
                    errors.append(f"{error_code(exc)}: {exc}")
                    with self.cond:
                        self.idle.extend(ips)
                    continue
                self.forget(eni_id, gone)
                if kept:
                    with self.cond:
                        self.idle.extend(kept)
                log.info("pool shrink: released %d idle IP(s) of %s", len(gone), eni_id)
        return "; ".join(errors)

    def drop_eni(self, eni_id: str) -> None:
        """The ENI left the instance: forget it and its IPs (allocated ones are never idle again)."""
        with self.cond:
            eni = self.enis.pop(eni_id, None)
            for ip in list(eni.ips) if eni else []:
                self.ip_eni.pop(ip, None)
                self.leased.discard(ip)
                if ip in self.idle:
                    self.idle.remove(ip)

    def adopt_eni(self, eni: Eni, ips: Sequence[str] | set[str]) -> None:
        with self.cond:
            self.enis[eni.eni_id] = eni
        self._publish(eni, sorted(ips, key=ipaddress.IPv4Address))

    def adopt_ips(self, eni: Eni, ips: Sequence[str]) -> None:
        """IPs the cloud confirms on `eni` (and the store holds), idle unless a pod holds them."""
        with self.cond:
            for ip in ips:
                if ip in self.ip_eni:
                    continue
                self.ip_eni[ip] = eni.eni_id
                eni.ips.add(ip)
                if ip not in self.allocated and ip not in self.leased:
                    self.idle.append(ip)
            self.cond.notify_all()

    def forget(self, eni_id: str, ips: Sequence[str]) -> None:
        """The pool no longer knows these IPs (the cloud does not hold them, or may not)."""
        with self.cond:
            eni = self.enis.get(eni_id)
            for ip in ips:
                self.ip_eni.pop(ip, None)
                self.leased.discard(ip)
                if ip in self.idle:
                    self.idle.remove(ip)
                if eni is not None:
                    eni.ips.discard(ip)
