"""Stable IPs for StatefulSet pods (eniip mode): an IP kept for a pod's namespace/name after its DEL.

As upstream Terway (AliyunContainerService/terway, pkg/k8s/k8s.go `convertPod`: `IPStickTime`), a pod
whose IP "sticks" is one owned by a StatefulSet (or a kind of eni_conf
`custom_stateful_workload_kinds`), or one annotated `k8s.aliyun.com/pod-ip-reservation: "true"`. ADD
reads the pod from the API server and records why in the allocation (`Owner.sticky`); without an API
server, or for a pod it cannot read, nothing sticks. DEL of such a pod releases the IP into a lease
of `stateful_ip_lease` (eni_conf, default 5m, upstream's fixed `defaultStickTimeForSts`) in the same
store transaction: the IP is neither idle nor handed to another pod meanwhile (the pool keeps it
apart, the store refuses to allocate it). An ADD of the same namespace/name on this node within the
lease gets that IP back; when the lease expires the IP goes back to the pool as idle, and the
pool's normal shrink to max_pool_size applies. Leases are rows of the SQLite store: a daemon killed
with SIGKILL finds them at its next start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from terwayctl.node.cluster import PodMeta
from terwayctl.node.pool import Eni, Pool
from terwayctl.node.store import Conflict, IpRecord, Lease, Owner, Store

log = logging.getLogger("terwayctl.node.leases")

RESERVATION_ANNOTATION = "k8s.aliyun.com/pod-ip-reservation"
"""upstream's pod annotation: "true" keeps the pod's IP after its DEL, whatever its owner"""
RESERVATION_REASON = "pod-ip-reservation"
MAX_WAIT = 1.0
"""the expiry thread looks at least this often (seconds): a clock changed meanwhile, a lease added"""

_TRUE = frozenset({"1", "t", "true"})
"""Go strconv.ParseBool's true values (compared lower-case), as upstream parses the annotation"""


def sticky_reason(meta: PodMeta | None, kinds: frozenset[str]) -> str:
    """Why the pod's IP is kept after its DEL: the reservation annotation, else the first owner of a
    kind in `kinds` (lower case; e.g. StatefulSet), else '' (a Deployment's pod, an unread pod)."""
    if meta is None:
        return ""
    if str(meta.annotations.get(RESERVATION_ANNOTATION, "")).strip().lower() in _TRUE:
        return RESERVATION_REASON
    return next((kind for kind in meta.owner_kinds if kind.lower() in kinds), "")


class StickyIps:
    """The leases of one daemon: kept at DEL, taken back at ADD, expired by a background thread."""

    def __init__(self, store: Store, pool: Pool, duration: float, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.pool = pool
        self.duration = duration
        self.clock = clock
        self._lock = threading.Lock()
        """held over each store change and its pool change, so expiry never runs between the two"""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- DEL / ADD --------------------------------------------------------------------------------

    def keep(self, record: IpRecord) -> bool:
        """DEL: release the allocation into a lease when its pod's IP sticks; False otherwise (the
        caller releases it as usual)."""
        owner = record.owner
        if owner is None or not owner.sticky or not owner.pod_name or self.duration <= 0:
            return False
        now = self.clock()
        lease = Lease(record.ip, owner.pod_namespace, owner.pod_name, owner.pod_uid, owner.sticky, now,
                      now + self.duration)
        with self._lock:
            older = self.store.release_to_lease(record.ip, owner.container_id, lease)
            if older is None:
                return False
            self.pool.lease(record.ip)
            for ip in older:
                self.pool.unlease(ip)
        self._wake.set()
        log.info("%s kept for %s/%s (%s) until %s", record.ip, owner.pod_namespace, owner.pod_name, owner.sticky,
                 _when(lease.expires))
        return True

    def take(self, owner: Owner, host_ifname: Callable[[str, Eni], str], mode: str) -> tuple[str, Eni, Lease] | None:
        """ADD: the IP leased to the owner's namespace/name, now allocated to it (committed); None
        when there is no lease (or it expired meanwhile)."""
        if not owner.pod_name:
            return None
        lease = self.store.lease_of(owner.pod_namespace, owner.pod_name)
        if lease is None:
            return None
        eni = self.pool.eni_of(lease.ip)
        if eni is None:
            return None
        host = host_ifname(lease.ip, eni)
        with self._lock:
            try:
                self.store.take_lease(lease.ip, owner, host_ifname=host, mode=mode)
            except Conflict as exc:
                log.info("lease of %s for %s/%s not taken: %s", lease.ip, owner.pod_namespace, owner.pod_name, exc)
                return None
            self.pool.take_leased(lease.ip)
        log.info("%s back to %s/%s (leased since %s)", lease.ip, owner.pod_namespace, owner.pod_name,
                 _when(lease.released))
        return lease.ip, eni, lease

    def restore(self, lease: Lease, container_id: str) -> None:
        """Undo `take` (the ADD failed after it): the lease as it was."""
        with self._lock:
            if self.store.release_to_lease(lease.ip, container_id, lease) is not None:
                self.pool.lease(lease.ip)

    # --- expiry -----------------------------------------------------------------------------------

    def expire(self, now: float | None = None) -> list[str]:
        """End the leases expired by `now` (the clock's time): their IPs are idle again."""
        now = self.clock() if now is None else now
        ended = []
        for lease in self.store.leases():
            if lease.expires > now:
                break  # ordered by expiry
            with self._lock:
                if not self.store.end_lease(lease.ip, expired_at=now):
                    continue  # taken back by its pod meanwhile
                self.pool.unlease(lease.ip)
            ended.append(lease.ip)
            log.info("lease of %s for %s/%s expired: back to the pool", lease.ip, lease.pod_namespace,
                     lease.pod_name)
        return ended

    def start(self) -> StickyIps:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ip-leases", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.expire()
                leases = self.store.leases()
            except Exception:  # a closed store at shutdown; the next turn retries
                log.debug("lease expiry pass failed", exc_info=True)
                leases = []
            wait = MAX_WAIT if not leases else min(MAX_WAIT, max(0.05, leases[0].expires - self.clock()))
            self._wake.wait(wait)

    def status(self) -> list[dict[str, object]]:
        """The leases for `daemon status`."""
        now = self.clock()
        return [lease_status(lease, now) for lease in self.store.leases()]


def lease_status(lease: Lease, now: float) -> dict[str, object]:
    return {
        "ip": lease.ip,
        "pod": f"{lease.pod_namespace}/{lease.pod_name}",
        "reason": lease.reason,
        "released": _when(lease.released),
        "expires": _when(lease.expires),
        "expires_in": round(max(0.0, lease.expires - now), 1),
    }


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
