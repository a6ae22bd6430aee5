"""`Daemon`: start-up (limits, vSwitches, reconciliation), the CNI verbs, status, shutdown.

ADD: one request per container at a time; a repeated ADD of the same container gets the same IP
(the datapath is set up again, idempotently). The IP is taken from the pool, its allocation
committed to the store, then the datapath is set up; any failure undoes the steps done so far
(ExitStack) and answers an error. DEL: tears the datapath down and gives the IP back, only for its
owner; an unknown container is success. GC: releases every allocation not in valid-attachments.

With an API server (`Cluster`): ADD reads the pod for its bandwidth annotations (a pod that cannot
be read is no failure: the ADD goes on without them), and a background loop releases, with the
same teardown as DEL, the allocations of pods gone from the API server (older than the grace period).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from terwayctl.cni.protocol import Reply, Request
from terwayctl.cni.spec import (
    INVALID_CONFIG,
    PLUGIN_NOT_AVAILABLE,
    TRY_AGAIN_LATER,
    UNKNOWN_CONTAINER,
)
from terwayctl.core import bandwidth as bw
from terwayctl.core.capacity import usable_enis
from terwayctl.core.errors import InvalidInput, TerwayctlError
from terwayctl.kernel import netns
from terwayctl.kernel.datapath import (
    POD_GATEWAY,
    Datapath,
    DatapathError,
    DatapathMode,
    PodAttachment,
    PodNetwork,
    Reported,
    SymmetricRouting,
    host_veth_name,
)
from terwayctl.kernel.datapath.svcveth import remove_leftovers as remove_service_veths
from terwayctl.kube.errors import KubeError, KubeNotFound
from terwayctl.node.cloudapi import EniCloud
from terwayctl.node.cluster import (
    Cluster,
    NodeUnknown,
    PodMeta,
    bandwidth_annotations,
    stale_allocations,
)
from terwayctl.node.config import DaemonConfig, DatapathChoice, PoolMode, choose_datapath
from terwayctl.node.hostroutes import META_KEY as HOST_ROUTES_KEY
from terwayctl.node.hostroutes import exclusive_host_routes
from terwayctl.node.ipv6 import DualStack, StackDecision
from terwayctl.node.leases import StickyIps, sticky_reason
from terwayctl.node.metrics import Metrics
from terwayctl.node.pool import Eni, Limits, Pool, PoolEmpty, VSwitchInfo
from terwayctl.node.reconcile import Repairs, reconcile, resync, spec_for_teardown, teardown_record
from terwayctl.node.store import Conflict, EniRecord, IpRecord, Lease, Owner, Store

log = logging.getLogger("terwayctl.node")

DATAPATH_FAILED = 100
"""CNI error code (plugin-specific range) for a datapath the kernel refused."""
MAX_GC_RELEASES = 64
"""at most this many allocations released per API-server GC pass (the rest waits for the next one)"""


@dataclass(frozen=True)
class PodRequest:
    owner: Owner
    bandwidth: bw.PodBandwidth


def add_result(
    attachment: PodAttachment, request: Request, address: str, gateway: str, mtu: int
) -> dict[str, object]:
    """ADD's result (the 1.1.0 shape) as the spec wants it: the host-side veth first (name and
    MAC, no `sandbox`: it lives in the runtime's namespace), then the pod's interface with its
    `sandbox`; the IP points at the pod interface. Chained plugins (bandwidth, portmap, ...) find
    the host veth there. Without a host side (exclusive ENI, ipvlan) only the pod interface."""
    interfaces: list[dict[str, object]] = []
    if attachment.host_ifname is not None and attachment.host_mac is not None:
        interfaces.append({"name": attachment.host_ifname, "mac": attachment.host_mac, "mtu": mtu})
    interfaces.append({"name": attachment.pod_ifname, "mac": attachment.pod_mac, "mtu": mtu,
                       "sandbox": request.netns})
    result: dict[str, object] = {
        "interfaces": interfaces,
        "ips": [{"interface": len(interfaces) - 1, "address": address, "gateway": gateway}],
        "routes": [{"dst": "0.0.0.0/0", "gw": gateway}],
    }
    dns = request.netconf.get("dns")
    if isinstance(dns, dict) and dns:
        result["dns"] = dns
    return result


def check_prev_result(prev: Mapping[str, object] | None, record: IpRecord, ifname: str) -> Reported | str:
    """What prevResult reports about the pod, or why it does not describe this allocation."""
    if prev is None:
        return "no prevResult"
    interfaces = [i for i in prev.get("interfaces", []) or [] if isinstance(i, dict)]  # type: ignore[attr-defined]
    pod_index = next((n for n, i in enumerate(interfaces) if i.get("name") == ifname and i.get("sandbox")), None)
    if pod_index is None:
        return f"prevResult has no interface {ifname} with a sandbox"
    ips = [ip for ip in prev.get("ips", []) or [] if isinstance(ip, dict)]  # type: ignore[attr-defined]
    addresses = [str(ip.get("address", "")).split("/")[0] for ip in ips if ip.get("interface", pod_index) == pod_index]
    if record.ip not in addresses:
        return f"prevResult gives {ifname} {', '.join(addresses) or 'no address'}, the daemon holds {record.ip}"
    host = next((i for i in interfaces if not i.get("sandbox") and i.get("name") == record.host_ifname), None)
    routes = tuple(
        (str(r["dst"]), str(r["gw"]) if r.get("gw") else None)
        for r in prev.get("routes", []) or []  # type: ignore[attr-defined]
        if isinstance(r, dict) and r.get("dst")
    )
    return Reported(
        pod_mac=str(interfaces[pod_index]["mac"]) if interfaces[pod_index].get("mac") else None,
        host_mac=str(host["mac"]) if host is not None and host.get("mac") else None,
        routes=routes,
    )


def symmetric_routing_config(value: object) -> SymmetricRouting:
    """The conflist's `symmetric_routing_config` (validated by the plugin) over upstream's defaults."""
    options = value if isinstance(value, dict) else {}
    default = SymmetricRouting()
    return SymmetricRouting(
        interface=str(options.get("interface") or default.interface),
        mark=int(options.get("mark") or default.mark),
        mask=int(options.get("mask") or default.mask),
        table=int(options.get("table_id") or default.table),
        priority=int(options.get("rule_priority") or default.priority),
        comment=str(options.get("comment") or default.comment),
    )


class _KeyLocks:
    """One lock per container id: one in-flight request per pod."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def try_hold(self, key: str) -> Iterator[bool]:
        """Hold the key's lock if nobody holds or waits for it (yields True), else yield False."""
        with self._lock:
            busy = key in self._locks
            if not busy:
                lock = threading.Lock()
                lock.acquire()
                self._locks[key] = (lock, 1)
        if busy:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()
            with self._lock:
                current, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (current, users - 1)

    @contextlib.contextmanager
    def hold(self, key: str) -> Any:
        with self._lock:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)


class Daemon:
    """The node daemon, without its transport (see server.py)."""

    def __init__(
        self,
        config: DaemonConfig,
        cloud: EniCloud,
        metrics: Metrics | None = None,
        *,
        cluster: Cluster | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.cloud = cloud
        self.cluster = cluster
        self.clock = clock
        self._gc_stop = threading.Event()
        self._gc_thread: threading.Thread | None = None
        cloud.observe(self.metrics.api_call)
        self.store: Store | None = None
        self.pool: Pool | None = None
        self.sticky: StickyIps | None = None
        """eniip mode: the IPs kept for StatefulSet pods after their DEL (leases.py)"""
        self.datapath: Datapath | None = None
        self.ready = False
        self.repairs = Repairs()
        self.last_resync = Repairs()
        self.started_at = 0.0
        self._locks = _KeyLocks()
        self._symmetric_lock = threading.Lock()
        self._symmetric_done: set[SymmetricRouting] = set()
        self._vswitches: dict[str, VSwitchInfo] = {}
        self.datapath_choice: DatapathChoice | None = None
        """the datapath mode of this daemon's pods and why (chosen once, at start)"""
        self.host_routes: tuple[ipaddress.IPv4Network, ...] = ()
        """eni mode: what pods reach through their veth to the node (node/hostroutes.py)"""
        self.node_ip: ipaddress.IPv4Address | None = None
        self.dual: DualStack | None = None
        """dual stack (eni_conf ip_stack dual on an eligible node, node/ipv6.py); None: IPv4 only"""
        self.stack: StackDecision | None = None
        self.metrics.gauges = self._gauges

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Resolve limits and vSwitches, reconcile, start the pool worker. Raises on failure."""
        config = self.config
        if config.node_netns and not netns.exists(config.node_netns):
            raise InvalidInput(f"node network namespace {config.node_netns} does not exist")
        self.datapath_choice = self._choose_datapath()
        self.store = Store(config.store_path)
        self.datapath = Datapath(config.node_ns)
        try:
            limits = self._limits()
            groups = self._security_groups()
            self._vswitch_infos(config.pool.vswitches_for(config.identity.zone_id, config.identity.vswitch_id))
            if config.mode is PoolMode.ENI:
                self.host_routes, self.node_ip = exclusive_host_routes(
                    self.cloud, config.identity.instance_id, config.pool.service_cidrs)
            self.store.set_meta(HOST_ROUTES_KEY, ",".join(map(str, self.host_routes)))
            enis, allocated, self.repairs = reconcile(
                config, self.cloud, self.store, self._vswitch_infos, limits.ip_limit
            )
            if config.mode is PoolMode.ENI:  # service veths of pods gone meanwhile (docs/datapath.md)
                self.repairs.kernel_leftovers += remove_service_veths(config.node_ns, allocated)
            pool_vswitches = self._vswitches
            if config.ip_stack == "dual":
                from terwayctl.node.ipv6 import start_dual

                self.stack, self.dual, pool_vswitches = start_dual(self, limits.ip_limit)
            self.pool = Pool(
                cloud=self.cloud, store=self.store, config=config, limits=limits,
                vswitches=pool_vswitches, security_groups=groups,
            )
            if self.dual is not None:
                self.dual.ledger = self.pool.ledger
                self.pool.after_assign = self.dual.after_assign
                self.dual.sync([(e.eni_id, e.record.vswitch_id) for e in enis], self.pool.ledger.describe)
            self.pool.load(enis, allocated, [lease.ip for lease in self.store.leases()])
            self.pool.resync = self._resync
            if config.mode is PoolMode.ENIIP:
                self.sticky = StickyIps(self.store, self.pool, config.pool.stateful_ip_lease, self.clock)
            self.pool.start()
        except BaseException:
            self.store.close()
            self.store = None
            self.datapath.close()
            self.datapath = None
            raise
        self.started_at = time.time()
        self.ready = True
        log.info(
            "daemon ready instance=%s mode=%s max_enis=%d ip_per_eni=%d enis=%d allocations=%d",
            config.identity.instance_id, config.mode, limits.max_enis, limits.ip_limit, len(enis), len(allocated),
        )
        self._start_gc()
        if self.sticky is not None:  # its first pass ends the leases that expired while the daemon was down
            self.sticky.start()

    def _start_gc(self) -> None:
        if self.cluster is None:
            return
        if not self.cluster.node_name:
            log.warning("no --node-name (NODE_NAME): IPs of pods deleted from the API server are not collected")
            return
        self._gc_stop.clear()
        self._gc_thread = threading.Thread(target=self._gc_loop, name="pod-gc", daemon=True)
        self._gc_thread.start()
        log.info("pod GC from the API server: node=%s every %gs, grace %gs", self.cluster.node_name,
                 self.config.gc_period, self.config.gc_grace)

    def _gc_loop(self) -> None:
        """A pass at once (after reconciliation), then one every gc_period until stop()."""
        while not self._gc_stop.is_set():
            try:
                self.gc_cluster()
            except Exception:
                log.exception("pod GC pass failed")
            self._gc_stop.wait(self.config.gc_period)

    def stop(self) -> None:
        self.ready = False
        self._gc_stop.set()
        if self._gc_thread is not None:
            self._gc_thread.join(timeout=30)
            self._gc_thread = None
        if self.sticky is not None:
            self.sticky.stop()
            self.sticky = None
        if self.pool is not None:
            self.pool.stop()
            self.pool = None
        if self.store is not None:
            self.store.close()
            self.store = None
        if self.datapath is not None:
            self.datapath.close()
            self.datapath = None

    def _resync(self) -> None:
        """The periodic reconciliation (reconcile.resync), on the pool worker."""
        assert self.pool is not None and self.store is not None
        self.last_resync = resync(self.pool, self.config, self.cloud, self.store, self._vswitch_infos,
                                  self._lost_allocation)
        if self.dual is not None:
            with self.pool.cond:
                enis = [(e.eni_id, e.record.vswitch_id) for e in self.pool.enis.values()]
            self.dual.sync(enis, self.pool.ledger.describe)

    def _lost_allocation(self, record: IpRecord, eni: EniRecord) -> None:
        """An allocation whose ENI left the instance: its datapath is torn down, under its pod's lock."""
        owner = record.owner
        if owner is None:
            return
        with self._locks.hold(owner.container_id):
            teardown_record(self.config, record, eni)

    def _limits(self) -> Limits:
        identity = self.config.identity
        type_name = identity.instance_type
        if not type_name:
            found = self.cloud.describe_instances(instance_ids=[identity.instance_id])
            if not found:
                raise InvalidInput(f"instance {identity.instance_id} not found", hint="check --instance-id and --region")
            type_name = found[0].instance_type
        enis: int | None = None
        ips: int | None = None
        with contextlib.suppress(TerwayctlError):
            for item in self.cloud.describe_instance_types([type_name]):
                if item.instance_type_id == type_name:
                    enis, ips = item.eni_quantity, item.eni_private_ip_quantity
        if enis is None or ips is None:
            from terwayctl.data import embedded_catalog

            row = embedded_catalog().by_name().get(type_name)
            if row is not None:
                enis, ips = enis or row.eni_quantity, ips or row.eni_private_ip_quantity
        if not enis or not ips:
            raise InvalidInput(f"no ENI quota known for instance type {type_name}")
        max_enis = usable_enis(enis, self.config.pool.caps)
        return Limits(max_enis=max_enis, ip_limit=1 if self.config.mode is PoolMode.ENI else ips)

    def _security_groups(self) -> tuple[str, ...]:
        if self.config.pool.security_groups:
            return self.config.pool.security_groups
        for ni in self.cloud.describe_network_interfaces(instance_id=self.config.identity.instance_id):
            if ni.type == "Primary":
                return tuple(ni.security_group_ids)
        raise InvalidInput("no security group: set security_group(s) in eni_conf")

    def _vswitch_infos(self, ids: Iterable[str]) -> dict[str, VSwitchInfo]:
        wanted = [v for v in dict.fromkeys(ids) if v and v not in self._vswitches]
        for wanted_id in wanted:  # DescribeVSwitches filters by one VSwitchId per call
            for vsw in self.cloud.describe_vswitches(vswitch_ids=[wanted_id]):
                self._vswitches[vsw.vswitch_id] = VSwitchInfo(vsw.vswitch_id, vsw.cidr_block)
        missing = [v for v in wanted if v not in self._vswitches]
        if missing:
            raise InvalidInput(f"vSwitch(es) {', '.join(missing)} not found", hint="check eni_conf vswitches")
        return self._vswitches

    # --- requests --------------------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        started = time.monotonic()
        try:
            reply = self._dispatch(request)
        except Exception as exc:
            log.exception("%s %s failed", request.verb, request.container_id)
            reply = Reply.failure(999, f"terway daemon: internal error: {type(exc).__name__}: {exc}")
        if request.verb in ("ADD", "DEL", "CHECK", "GC"):
            self.metrics.cni_request(request.verb, time.monotonic() - started, reply.ok)
            log.info(
                "cni verb=%s container=%s pod=%s/%s ok=%s ms=%.1f%s",
                request.verb, request.container_id[:12] or "-", request.pod_namespace or "-",
                request.pod_name or "-", reply.ok, (time.monotonic() - started) * 1000,
                f" code={reply.error.code} msg={reply.error.msg!r}" if reply.error else "",
            )
        return reply

    def _dispatch(self, request: Request) -> Reply:
        if request.verb == "STATUS":
            if self.ready:
                return Reply.success()
            return Reply.failure(PLUGIN_NOT_AVAILABLE, "terway daemon is not ready")
        if not self.ready or self.pool is None or self.store is None or self.datapath is None:
            return Reply.failure(TRY_AGAIN_LATER, "terway daemon is starting", "the runtime retries")
        if request.verb == "GC":
            return self._gc(request)
        if request.verb == "ADD":
            failed = self._symmetric_routing(request.netconf, self.datapath)
            if failed is not None:
                return failed
        with self._locks.hold(request.container_id):
            if request.verb == "ADD":
                return self._add(request, self.pool, self.store, self.datapath)
            if request.verb == "DEL":
                return self._del(request, self.pool, self.store)
            return self._check(request, self.store, self.pool, self.datapath)

    def _symmetric_routing(self, netconf: Mapping[str, object], datapath: Datapath) -> Reply | None:
        """The conflist's `symmetric_routing`: hostPort replies leave through the primary ENI
        (docs/datapath.md). Set up once per configuration, before the first ADD that asks."""
        if netconf.get("symmetric_routing") is not True:
            return None
        cfg = symmetric_routing_config(netconf.get("symmetric_routing_config"))
        with self._symmetric_lock:
            if cfg in self._symmetric_done:
                return None
            try:
                datapath.ensure_symmetric_routing(cfg)
            except (DatapathError, OSError) as exc:
                message = exc.message if isinstance(exc, TerwayctlError) else str(exc)
                return Reply.failure(DATAPATH_FAILED, f"terway daemon: {message}",
                                     getattr(exc, "hint", "") or "")
            self._symmetric_done.add(cfg)
            log.info("symmetric routing on: replies of connections from %s go back through it "
                     "(mark %#x/%#x, table %d, rule %d)", cfg.interface, cfg.mark, cfg.mask, cfg.table, cfg.priority)
        return None

    def _pod(self, request: Request) -> PodRequest:
        meta = None
        if self.cluster is not None and request.pod_name:
            meta = self._read_pod(self.cluster, request.pod_namespace or "default", request.pod_name)
        sticky = sticky_reason(meta, self.config.pool.stateful_kinds) if self.config.mode is PoolMode.ENIIP else ""
        owner = Owner(
            container_id=request.container_id, ifname=request.ifname or "eth0", netns=request.netns,
            pod_namespace=request.pod_namespace, pod_name=request.pod_name, pod_uid=request.pod_uid,
            sticky=sticky,
        )
        from_runtime = bw.from_runtime_config(request.runtime_config)
        annotations = self._annotations(request, meta)
        from_annotations = bw.from_annotations(annotations)
        return PodRequest(
            owner,
            bw.PodBandwidth(
                ingress=from_runtime.ingress or from_annotations.ingress,
                egress=from_runtime.egress or from_annotations.egress,
            ),
        )

    def _annotations(self, request: Request, meta: PodMeta | None) -> dict[str, str]:
        """Bandwidth annotations: CNI_ARGS keys named like the annotation, else the pod in the API
        server (`meta`, read by _pod), else the annotations file (the lab has no API server)."""
        keys = (bw.K8S_INGRESS, bw.K8S_EGRESS, bw.ALIYUN_INGRESS, bw.ALIYUN_EGRESS)
        found = {k: v for k, v in request.cni_args.items() if k in keys}
        if not found and meta is not None:
            found = bandwidth_annotations(meta.annotations)
        path = self.config.pod_annotations
        if not found and path is not None:
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text(encoding="utf-8"))
                entry = data.get(f"{request.pod_namespace}/{request.pod_name}") if isinstance(data, dict) else None
                if isinstance(entry, dict):
                    found = {k: str(v) for k, v in entry.items() if k in keys}
        return found

    def _read_pod(self, cluster: Cluster, namespace: str, name: str) -> PodMeta | None:
        """The pod's annotations and owners (bandwidth, stable IPs); None (logged) when it cannot be read."""
        try:
            meta = cluster.pod(namespace, name)
        except KubeNotFound:
            self.metrics.kube_request("pod", "notfound")
            log.warning("pod %s/%s is not in the API server: no bandwidth annotations", namespace, name)
            return None
        except KubeError as exc:
            self.metrics.kube_request("pod", "error")
            log.warning("cannot read pod %s/%s: %s: no bandwidth annotations", namespace, name, exc.message)
            return None
        except Exception as exc:  # noqa: BLE001 - an unreadable pod must never fail its ADD
            self.metrics.kube_request("pod", "error")
            log.warning("cannot read pod %s/%s: %s: %s: no bandwidth annotations", namespace, name,
                        type(exc).__name__, exc)
            return None
        self.metrics.kube_request("pod", "ok")
        return meta

    def _spec(self, ip: str, eni: Eni, pod: PodRequest, mode: DatapathMode) -> PodNetwork:
        network = ipaddress.IPv4Network(eni.record.cidr)
        name = pod.owner.pod_name or pod.owner.container_id
        spec = PodNetwork.for_pod(
            pod.owner.pod_namespace, name, pod_ip=ip, prefix=network.prefixlen, gateway=eni.record.gateway,
            eni_ifname=eni.ifname, ifname=pod.owner.ifname, mtu=self.config.mtu, mode=mode,
            bandwidth=pod.bandwidth,
        )
        if self.dual is not None:
            spec = self.dual.with_ipv6(spec, ip, eni.eni_id)
        return self._with_service_veth(spec, pod.owner)

    def _with_service_veth(self, spec: PodNetwork, owner: Owner) -> PodNetwork:
        """An exclusive-ENI spec with the veth to the node for services (docs/datapath.md)."""
        if spec.mode is not DatapathMode.EXCLUSIVE_ENI or not self.host_routes:
            return spec
        veth = host_veth_name(owner.pod_namespace, owner.pod_name or owner.container_id, owner.ifname or "eth0")
        return dataclasses.replace(spec, host_routes=self.host_routes, service_veth=veth, host_src=self.node_ip)

    def _choose_datapath(self) -> DatapathChoice:
        """eni mode: exclusive-eni; eniip: eni_conf eniip_virtual_type, ipvlan only where the kernel
        has it (probed once), else veth with one warning giving the reason."""
        import platform

        from terwayctl.kernel.datapath import ipvlan_supported

        choice = choose_datapath(self.config.mode, self.config.virtual_type, ipvlan_supported, platform.release())
        if choice.fallback:
            log.warning("datapath %s: %s", choice.mode, choice.reason)
        else:
            log.info("datapath %s: %s", choice.mode, choice.reason)
        return choice

    def _mode(self) -> DatapathMode:
        if self.datapath_choice is None:  # not started (start() chooses)
            return DatapathMode.EXCLUSIVE_ENI if self.config.mode is PoolMode.ENI else DatapathMode.VETH
        return DatapathMode(self.datapath_choice.mode)

    def _add(self, request: Request, pool: Pool, store: Store, datapath: Datapath) -> Reply:
        try:
            pod = self._pod(request)
        except InvalidInput as exc:
            return Reply.failure(INVALID_CONFIG, exc.message, exc.hint or "")
        existing = store.allocation_of(request.container_id, pod.owner.ifname)
        mode = self._mode()
        with contextlib.ExitStack() as undo:
            if existing is not None:
                ip = existing.ip
                eni = pool.eni_of(ip)
                if eni is None:
                    return Reply.failure(TRY_AGAIN_LATER, f"the ENI of {ip} is gone; retry", "")
            elif (taken := self._take_lease(pod, mode)) is not None:  # a StatefulSet pod back (leases.py)
                ip, eni, lease = taken
                assert self.sticky is not None
                undo.callback(self.sticky.restore, lease, request.container_id)
            else:
                try:
                    ip, eni = pool.acquire(self.config.add_timeout)
                except PoolEmpty as exc:
                    return Reply.failure(TRY_AGAIN_LATER, f"terway daemon: {exc}", exc.detail)
                undo.callback(pool.give_back, ip)
                spec = self._spec(ip, eni, pod, mode)
                host = spec.eni_ifname if mode is DatapathMode.EXCLUSIVE_ENI else spec.host_ifname
                try:
                    store.allocate(ip, pod.owner, host_ifname=host, mode=mode.value)
                except Conflict as exc:
                    return Reply.failure(TRY_AGAIN_LATER, f"terway daemon: {exc}", "")
                undo.callback(store.release, ip, request.container_id)
            if self.dual is not None and mode is DatapathMode.VETH:
                try:
                    self.dual.take(eni.eni_id, eni.record.vswitch_id, ip)
                except Exception as exc:  # noqa: BLE001 - the cloud's answer goes to the runtime
                    return Reply.failure(TRY_AGAIN_LATER, f"terway daemon: no IPv6 address for the pod: {exc}", "")
            spec = self._spec(ip, eni, pod, mode)
            try:
                attachment = datapath.setup_pod(request.netns_handle or request.netns, pod.owner.ifname, spec)
            except (DatapathError, InvalidInput, OSError) as exc:
                message = exc.message if isinstance(exc, TerwayctlError) else str(exc)
                return Reply.failure(DATAPATH_FAILED, f"terway daemon: datapath setup failed: {message}", "")
            undo.pop_all()
        gateway = str(POD_GATEWAY) if mode is DatapathMode.VETH else eni.record.gateway
        prefix = 32 if mode is DatapathMode.VETH else ipaddress.IPv4Network(eni.record.cidr).prefixlen
        result = add_result(attachment, request, f"{ip}/{prefix}", gateway, self.config.mtu)
        if spec.pod_ip6 is not None:
            from terwayctl.node.ipv6 import add_to_result

            result = add_to_result(result, str(spec.pod_ip6))
        return Reply.success(result)

    def _take_lease(self, pod: PodRequest, mode: DatapathMode) -> tuple[str, Eni, Lease] | None:
        """The IP leased to this pod's namespace/name, allocated to it now; None without a lease."""
        if self.sticky is None:
            return None

        def host(ip: str, eni: Eni) -> str:
            spec = self._spec(ip, eni, pod, mode)
            return spec.eni_ifname if mode is DatapathMode.EXCLUSIVE_ENI else spec.host_ifname

        return self.sticky.take(pod.owner, host, mode.value)

    def _teardown(self, record: IpRecord) -> None:
        eni = self.pool.eni_of(record.ip) if self.pool else None
        spec = spec_for_teardown(record, eni.record if eni else None)
        if eni is not None and spec.mode is DatapathMode.EXCLUSIVE_ENI:
            spec = PodNetwork(pod_ip=spec.pod_ip, prefix=spec.prefix, gateway=spec.gateway,
                              eni_ifname=eni.ifname, host_ifname=eni.ifname, mode=spec.mode)
        owner = record.owner
        assert owner is not None
        if self.dual is not None:  # both families of a dual-stack pod
            spec = self.dual.with_ipv6(spec, record.ip, record.eni_id)
        if spec.mode is DatapathMode.EXCLUSIVE_ENI:  # its name, whether or not routes are configured now
            veth = host_veth_name(owner.pod_namespace, owner.pod_name or owner.container_id, owner.ifname or "eth0")
            spec = dataclasses.replace(spec, service_veth=veth)
        pod_ns = owner.netns if owner.netns and netns.exists(owner.netns) else None
        assert self.datapath is not None
        self.datapath.teardown_pod(pod_ns, owner.ifname or "eth0", spec)

    def _release(self, record: IpRecord) -> bool:
        """DEL's teardown and release of one allocation, for GC (the caller holds its container's lock)."""
        assert self.store is not None and self.pool is not None and record.owner is not None
        try:
            self._teardown(record)
        except (DatapathError, OSError) as exc:
            log.warning("GC of %s (%s) failed: %s", record.owner.container_id[:12], record.ip, exc)
            return False
        if self.store.release(record.ip, record.owner.container_id):
            self.pool.give_back(record.ip)
            return True
        return False

    def _del(self, request: Request, pool: Pool, store: Store) -> Reply:
        record = store.allocation_of(request.container_id, request.ifname)
        if record is None or record.owner is None:
            return Reply.success()
        # Tear down through the namespace the runtime names now (the shim's descriptor when passed).
        current = request.netns_handle or request.netns
        if current and record.owner.netns != current:
            record = IpRecord(record.ip, record.eni_id,
                              Owner(**{**vars(record.owner), "netns": current}),
                              record.host_ifname, record.mode, record.allocated)
        try:
            self._teardown(record)
        except (DatapathError, OSError) as exc:
            return Reply.failure(DATAPATH_FAILED, f"terway daemon: datapath teardown failed: {exc}", "")
        if self.sticky is not None and self.sticky.keep(record):
            return Reply.success()  # kept for the pod's namespace/name until the lease expires
        if store.release(record.ip, request.container_id):
            pool.give_back(record.ip)
        return Reply.success()

    def _check(self, request: Request, store: Store, pool: Pool, datapath: Datapath) -> Reply:
        """CHECK: prevResult against the store (7 on a difference), then against the kernel (the
        link, addresses, routes, rules and qdiscs ADD built: DATAPATH_FAILED on a difference)."""
        record = store.allocation_of(request.container_id, request.ifname)
        if record is None or record.owner is None:
            return Reply.failure(UNKNOWN_CONTAINER, f"terway daemon holds no IP for container {request.container_id}")
        compared = check_prev_result(request.prev_result, record, request.ifname)
        if isinstance(compared, str):
            return Reply.failure(INVALID_CONFIG, f"CHECK: {compared}", "prevResult does not match this daemon's allocation")
        eni = pool.eni_of(record.ip)
        if eni is None:
            return Reply.failure(DATAPATH_FAILED, f"CHECK: the ENI of {record.ip} is no longer on this node")
        try:
            pod = self._pod(request)
        except InvalidInput as exc:
            return Reply.failure(INVALID_CONFIG, exc.message, exc.hint or "")
        mode = DatapathMode(record.mode) if record.mode in DatapathMode._value2member_map_ else self._mode()
        spec = self._spec(record.ip, eni, pod, mode)
        if mode is not DatapathMode.EXCLUSIVE_ENI and record.host_ifname:
            spec = dataclasses.replace(spec, host_ifname=record.host_ifname)
        if spec.pod_ip6 is not None:
            listed = (request.prev_result or {}).get("ips")
            reported6 = [str(i.get("address", "")).split("/")[0] for i in (listed if isinstance(listed, list) else [])
                         if isinstance(i, dict)]
            if str(spec.pod_ip6) not in reported6:
                return Reply.failure(INVALID_CONFIG, f"CHECK: prevResult lacks {spec.pod_ip6}, the daemon holds it for "
                                     f"{request.ifname}", "prevResult does not match this daemon's allocation")
        problems = datapath.check_pod(request.netns_handle or request.netns, request.ifname, spec, compared)
        if problems:
            return Reply.failure(DATAPATH_FAILED, f"CHECK: {problems[0]}", "; ".join(problems[1:]))
        return Reply.success()

    def _gc(self, request: Request) -> Reply:
        """GC: release what is neither in cni.dev/valid-attachments nor in flight (an ADD or DEL of
        that container holds its lock now: skipped, the next GC sees it settled)."""
        assert self.store is not None and self.pool is not None
        if request.valid_attachments is None:
            return Reply.failure(INVALID_CONFIG, "GC needs cni.dev/valid-attachments",
                                 "without the list every pod would be released")
        valid = {(a["container_id"], a["ifname"]) for a in request.valid_attachments}
        released = busy = 0
        for record in self.store.allocations():
            owner = record.owner
            if owner is None or (owner.container_id, owner.ifname) in valid:
                continue
            with self._locks.try_hold(owner.container_id) as held:
                if not held:
                    busy += 1
                    continue
                current = self.store.allocation_of(owner.container_id, owner.ifname)
                if current is None or current.ip != record.ip:
                    continue  # DEL'd or re-added meanwhile
                released += self._release(current)
        log.info("gc released=%d valid=%d in_flight=%d", released, len(valid), busy)
        self.metrics.gc_run("cni", "ok", released)
        return Reply.success()

    def gc_cluster(self) -> int:
        """One pass of the API-server GC: release the allocations of pods gone from the API server
        that are older than gc_grace (at most MAX_GC_RELEASES); the number released. A failed list
        releases nothing."""
        cluster, store = self.cluster, self.store
        if cluster is None or store is None or self.pool is None or not self.ready:
            return 0
        cutoff = self.clock() - self.config.gc_grace  # taken before the list: a pod added meanwhile is younger
        try:
            pods = cluster.pods_on_node()
        except NodeUnknown as exc:
            self.metrics.gc_run("apiserver", "skipped", 0)
            log.warning("pod GC skipped: %s (check --node-name)", exc)
            return 0
        except KubeError as exc:
            self.metrics.kube_request("pods", "error")
            self.metrics.gc_run("apiserver", "error", 0)
            log.warning("pod GC skipped: cannot list the pods of node %s: %s", cluster.node_name, exc.message)
            return 0
        self.metrics.kube_request("pods", "ok")
        stale = stale_allocations(store.allocations(), pods, cutoff)
        released = 0
        for record in stale[:MAX_GC_RELEASES]:
            if self._gc_stop.is_set():
                break
            owner = record.owner
            assert owner is not None
            with self._locks.hold(owner.container_id):
                current = store.allocation_of(owner.container_id, owner.ifname)
                if current is None or current.ip != record.ip:
                    continue  # DEL'd meanwhile
                if self._release(record):
                    released += 1
                    log.info("pod GC released %s of %s/%s (container %s): the pod is gone from the API server",
                             record.ip, owner.pod_namespace, owner.pod_name, owner.container_id[:12])
        if len(stale) > MAX_GC_RELEASES:
            log.info("pod GC: %d more stale allocation(s) left for the next pass", len(stale) - MAX_GC_RELEASES)
        log.info("pod GC node=%s pods=%d allocations=%d released=%d", cluster.node_name, len(pods),
                 len(store.allocations()), released)
        self.metrics.gc_run("apiserver", "ok", released)
        return released

    # --- status ----------------------------------------------------------------------------------

    def _gauges(self) -> Mapping[str, float]:
        values: dict[str, float] = {"terway_ready": 1.0 if self.ready else 0.0}
        if self.pool is not None:
            values.update(self.pool.counts())
        return values

    def status(self) -> dict[str, object]:
        """The document `terwayctl daemon status` prints."""
        pool, store = self.pool, self.store
        counts = pool.counts() if pool else {}
        allocations = store.allocations() if store else []
        return {
            "ready": self.ready,
            "pid": os.getpid(),
            "mode": self.config.mode.value,
            "datapath": {
                "mode": self.datapath_choice.mode if self.datapath_choice else "",
                "reason": self.datapath_choice.reason if self.datapath_choice else "not started",
                "fallback": self.datapath_choice.fallback if self.datapath_choice else False,
                "exclusive_host_routes": [str(r) for r in self.host_routes],
            },
            "instance_id": self.config.identity.instance_id,
            "zone_id": self.config.identity.zone_id,
            "ip_stack": (self.dual.status() if self.dual is not None else
                         self.stack.as_dict() if self.stack is not None else
                         {"wanted": self.config.ip_stack, "running": "ipv4", "reason": "eni_conf ip_stack is ipv4"}),
            "pool": {
                "enis": int(counts.get("terway_pool_enis", 0)),
                "max_enis": int(counts.get("terway_pool_max_enis", 0)),
                "ips": int(counts.get("terway_pool_ips", 0)),
                "idle": int(counts.get("terway_pool_idle_ips", 0)),
                "allocated": int(counts.get("terway_pool_allocated_ips", 0)),
                "leased": int(counts.get("terway_pool_leased_ips", 0)),
                "stateful_ip_lease": self.config.pool.stateful_ip_lease,
                "min_pool_size": self.config.pool.min_pool_size,
                "max_pool_size": self.config.pool.max_pool_size,
                "last_error": pool.last_error if pool else "",
                "vswitch_errors": pool.vswitch_status() if pool else [],
                "next_resync": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(pool.next_resync)) if pool else "",
            },
            "enis": pool.snapshot() if pool else [],
            "allocations": [
                {
                    "ip": r.ip,
                    "eni_id": r.eni_id,
                    "container_id": r.owner.container_id if r.owner else "",
                    "ifname": r.owner.ifname if r.owner else "",
                    "pod": f"{r.owner.pod_namespace}/{r.owner.pod_name}" if r.owner else "",
                }
                for r in allocations
            ],
            "leases": self.sticky.status() if self.sticky else [],
            "reconciled": vars(self.repairs),
            "resynced": vars(self.last_resync),
        }
