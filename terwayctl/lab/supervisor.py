"""The lab supervisor (`terwayctl lab serve --name N`, started detached by `lab up`).

One process that owns the lab's cloud and its VPC fabric:

- the emulator (state in the lab dir) with the `VpcRouter` hook: attached ENIs become veths
  between the router and the node namespaces, their addresses /32 routes in the router;
- the nodes' primary ENIs, wired once at start and configured as ``eth0``;
- an endpoint proxy per node: 127.0.0.1:<emulator port> inside the node namespace forwards to
  the emulator, so daemons and `terwayctl` commands run inside a node reach their cloud;
- the NAT gateway: the SNAT table is enforced in the router's nftables and followed within
  0.2 s whoever changes it (CreateSnatEntry / DeleteSnatEntry, or the control socket);
- a web server on 203.0.113.10:80 in the internet namespace, answering who is asking;
- the control socket (summary, SNAT and vSwitch faults).

It publishes ``supervisor.json`` (pid, emulator url and port) when everything serves, and stops on
SIGTERM/SIGINT.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from terwayctl.core.errors import InvalidInput, TerwayctlError
from terwayctl.emulator import ECS_VERSION, VPC_VERSION, Emulator, EniInfo, parse_scenario
from terwayctl.emulator.signing import signed_params
from terwayctl.emulator.store import route_table_of
from terwayctl.kernel import netns
from terwayctl.lab import network
from terwayctl.lab.cluster import LabCluster
from terwayctl.lab.control import ControlServer
from terwayctl.lab.model import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    METADATA_HOST,
    METADATA_PORT,
    WEB_HOST,
    WEB_PORT,
    Topology,
    gateway_of,
)
from terwayctl.lab.state import LabDir
from terwayctl.lab.vpcsim import Unrouted, VpcRouter, apply_route_tables

log = logging.getLogger("terwayctl.lab.supervisor")
SNAT_POLL_S = 0.2
EXHAUST_ENI = "eni-twlabexhausted"  # owner of the addresses a vSwitch-exhaustion fault takes


class CloudApi:
    """Signed calls to the in-process emulator (the wire protocol's parameters, without HTTP)."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def call(self, action: str, version: str = VPC_VERSION, **params: str) -> dict[str, Any]:
        common = {
            "Action": action, "Version": version, "Format": "JSON", "RegionId": self.emulator.region,
            "AccessKeyId": ACCESS_KEY_ID, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
            "SignatureNonce": uuid.uuid4().hex, "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        response = self.emulator.handle("GET", signed_params("GET", {**common, **params}, ACCESS_KEY_SECRET))
        if response.status != 200:
            raise TerwayctlError(f"{action}: {response.body.get('Code')}: {response.body.get('Message')}")
        return response.body


class EndpointProxy:
    """127.0.0.1:<port> inside a node namespace, forwarded to 127.0.0.1:<port> here (bounded by its
    connections: each pump ends at EOF)."""

    def __init__(self, ns: str, port: int) -> None:
        self.ns, self.port = ns, port
        self._sock = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"proxy-{ns}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            conn.settimeout(None)
            pair = _Pair(conn, upstream)
            for src, dst in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pump, args=(src, dst, pair), name="proxy-pump", daemon=True).start()


class _Pair:
    """The two sockets of one proxied connection, closed when both directions have ended."""

    def __init__(self, *sockets: socket.socket) -> None:
        self.sockets, self.open_directions, self.lock = sockets, 2, threading.Lock()

    def direction_done(self) -> None:
        with self.lock:
            self.open_directions -= 1
            last = self.open_directions == 0
        if last:
            for sock in self.sockets:
                sock.close()


def _pump(src: socket.socket, dst: socket.socket, pair: _Pair) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            src.shutdown(socket.SHUT_RD)
        pair.direction_done()


class _WebHandler(BaseHTTPRequestHandler):
    server_version = "twlab-internet"

    def do_GET(self) -> None:
        body = f"hello from the internet ({WEB_HOST}); you came from {self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("web %s " + format, self.client_address[0], *args)


class WebServer:
    """A tiny HTTP server on 203.0.113.10:80 in the internet namespace."""

    def __init__(self, ns: str) -> None:
        self.httpd = ThreadingHTTPServer((WEB_HOST, WEB_PORT), _WebHandler, bind_and_activate=False)
        self.httpd.daemon_threads = True
        self.httpd.socket.close()
        self.httpd.socket = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
        self.httpd.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.httpd.server_bind()
        self.httpd.server_activate()
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="lab-web", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _MetadataHandler(BaseHTTPRequestHandler):
    """The ECS instance metadata service of one node: IMDSv2 token (PUT /latest/api/token) and
    GET /latest/meta-data/<key> for the keys of `MetadataServer.answers`; 404 for the rest."""

    server_version = "twlab-metadata"

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token":
            self._reply(404, "not found\n")
            return
        self._reply(200, "twlab-metadata-token")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        answers = self.server.answers if isinstance(self.server, _MetadataHTTPServer) else {}
        if not path.startswith("/latest/meta-data"):
            self._reply(404, "not found\n")
            return
        key = path.removeprefix("/latest/meta-data").strip("/")
        if key == "":
            self._reply(200, "".join(f"{k}\n" for k in sorted(answers)))
        elif key in answers:
            self._reply(200, answers[key])
        else:
            self._reply(404, "not found\n")

    def _reply(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metadata %s " + format, self.client_address[0], *args)


class _MetadataHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    answers: Mapping[str, str] = {}


class MetadataServer:
    """http://100.100.100.200/latest/meta-data/... inside a node namespace, answering for that node's
    instance (from the emulator: the instance's type, zone, vSwitch, VPC, primary IP and MAC), so a
    daemon started with no identity flags (the packaged DaemonSet's) learns it as on ECS."""

    def __init__(self, ns: str, answers: Mapping[str, str]) -> None:
        network.add_metadata_address(ns)
        self.httpd = _MetadataHTTPServer((METADATA_HOST, METADATA_PORT), _MetadataHandler, bind_and_activate=False)
        self.httpd.answers = dict(answers)
        self.httpd.socket.close()
        self.httpd.socket = netns.socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
        self.httpd.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.httpd.server_bind()
        self.httpd.server_activate()
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=f"lab-metadata-{ns}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Supervisor:
    def __init__(self, lab: LabDir) -> None:
        self.lab = lab
        self.topology: Topology = lab.topology()
        topo = self.topology
        self.vpc = VpcRouter(topo.router_ns, {n.instance_id: n.ns for n in topo.nodes})
        self.emulator = Emulator(lab.emulator_state, world=parse_scenario(topo.scenario()), hook=self.vpc)
        self.api = CloudApi(self.emulator)
        self._snat_lock = threading.Lock()
        self._applied: list[network.SnatRule] | None = None
        self._unrouted: list[Unrouted] | None = None
        self._stop = threading.Event()
        self._closers: list[Any] = []
        self.cluster: LabCluster | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.emulator.start()
        self._closers.append(self.emulator.stop)
        for node in self.topology.nodes:
            self._wire_primary(node.instance_id, node.ns)
        self.sync_snat()
        for node in self.topology.nodes:
            self._closers.append(EndpointProxy(node.ns, self.emulator.port).stop)
            self._closers.append(MetadataServer(node.ns, self.metadata(node.instance_id)).stop)
        self._closers.append(WebServer(self.topology.internet_ns).stop)
        if self.topology.kube:
            self._start_cluster()
        self._closers.append(ControlServer(self.lab.control_socket, {
            "ping": lambda _: {"pid": _pid()},
            "summary": lambda _: self.summary(),
            "snat_delete": lambda r: self.snat_delete(str(r["vswitch"])),
            "snat_create": lambda r: self.snat_create(str(r["vswitch"]), str(r.get("snat_ip") or "")),
            "exhaust": lambda r: self.exhaust(str(r["vswitch"])),
            "unexhaust": lambda r: self.unexhaust(str(r["vswitch"])),
            "sync_router": lambda _: {"changed": self.sync_snat()},
            "kube_pod_put": lambda r: self._kube().pod_put(r),
            "kube_pod_delete": lambda r: self._kube().pod_delete(r),
        }).start().stop)
        threading.Thread(target=self._snat_loop, name="lab-snat", daemon=True).start()
        ready: dict[str, Any] = {"pid": _pid(), "url": self.emulator.url, "port": self.emulator.port}
        if self.cluster is not None:
            ready["kube_url"] = self.cluster.url
            ready["kubeconfig"] = str(self.lab.kubeconfig)
        tmp = self.lab.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(ready))
        tmp.replace(self.lab.ready_file)
        log.info("lab %s serving: emulator %s", self.lab.name, self.emulator.url)

    # --- the Kubernetes API server (lab up --kube) ---------------------------------------------------

    def _start_cluster(self) -> None:
        """The lab's API server (terwayctl.lab.cluster), reachable on the same 127.0.0.1:<port> in every node."""
        cluster = LabCluster(self.topology, self.lab.kubeconfig, daemon_ready=self._daemon_ready,
                             restart=self._restart_daemon, stop=self._stop_daemon).start()
        self.cluster = cluster
        self._closers.append(cluster.stop)
        for node in self.topology.nodes:
            self._closers.append(EndpointProxy(node.ns, cluster.server.port).stop)
        log.info("lab %s: Kubernetes API server %s (kubeconfig %s)", self.lab.name, cluster.url, self.lab.kubeconfig)

    def _kube(self) -> LabCluster:
        if self.cluster is None:
            raise InvalidInput(f"lab {self.lab.name} has no API server", hint="bring it up with 'lab up --kube'")
        return self.cluster

    def _daemon_ready(self, node: str) -> bool:
        from terwayctl.node.client import DaemonUnavailable, ask_status

        try:
            return bool(ask_status(self.lab.node_socket(node), timeout=2).get("ready"))
        except DaemonUnavailable:
            return False

    def _restart_daemon(self, node_name: str) -> None:
        """What kubelet does when a terway pod is replaced: stop the node's daemon, start a new one."""
        from terwayctl.lab import lifecycle, procs

        node = self.topology.node(node_name)
        old = self.lab.read_state().daemon_pids.get(node_name, 0)
        procs.stop(old, lifecycle.daemon_marker(self.lab))
        pid = lifecycle.spawn_daemon(self.lab, self.topology, node, self.emulator.url)
        with self.lab.locked() as state:
            state.daemon_pids[node_name] = pid
        log.info("restarted the daemon of %s: pid %d (was %d)", node_name, pid, old)

    def _stop_daemon(self, node_name: str) -> None:
        """A terway pod replaced by one the lab cannot run (an image it does not have): the node runs no daemon."""
        from terwayctl.lab import lifecycle, procs

        old = self.lab.read_state().daemon_pids.get(node_name, 0)
        procs.stop(old, lifecycle.daemon_marker(self.lab))
        log.info("stopped the daemon of %s (pid %d): its new terway pod cannot start", node_name, old)

    def wait(self) -> None:
        while not self._stop.wait(0.5):
            pass

    def stop(self) -> None:
        self._stop.set()
        closers, self._closers = list(reversed(self._closers)), []
        emulator_stop = self.emulator.stop
        threads = [threading.Thread(target=_quietly, args=(c,), daemon=True) for c in closers if c != emulator_stop]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5)
        _quietly(emulator_stop)  # last: the proxies forward to it
        with contextlib.suppress(FileNotFoundError):
            self.lab.ready_file.unlink()

    # --- primary ENIs ------------------------------------------------------------------------------

    def _wire_primary(self, instance_id: str, ns: str) -> None:
        body = self.api.call("DescribeNetworkInterfaces", ECS_VERSION, InstanceId=instance_id, Type="Primary")
        eni = body["NetworkInterfaceSets"]["NetworkInterfaceSet"][0]
        vsw = self.topology.vswitch(eni["VSwitchId"])
        ips = tuple(p["PrivateIpAddress"] for p in eni["PrivateIpSets"]["PrivateIpSet"])
        info = EniInfo(eni["NetworkInterfaceId"], eni["MacAddress"], eni["PrivateIpAddress"], ips, vsw.id, vsw.cidr,
                       vsw.gateway, self.topology.vpc_id, vsw.zone)
        self.vpc.on_attach(instance_id, info)
        network.configure_primary(ns, info.eni_id, info.primary_ip, vsw.cidr, vsw.gateway)

    def metadata(self, instance_id: str) -> dict[str, str]:
        """What the metadata service answers for an instance, read from the emulator."""
        body = self.api.call("DescribeInstances", ECS_VERSION, InstanceIds=json.dumps([instance_id]))
        inst = body["Instances"]["Instance"][0]
        vpc = inst.get("VpcAttributes") or {}
        primary = self.api.call("DescribeNetworkInterfaces", ECS_VERSION, InstanceId=instance_id, Type="Primary")
        eni = primary["NetworkInterfaceSets"]["NetworkInterfaceSet"][0]
        return {
            "instance-id": instance_id, "region-id": self.topology.region, "zone-id": str(inst["ZoneId"]),
            "instance/instance-type": str(inst["InstanceType"]), "vpc-id": str(vpc.get("VpcId", "")),
            "vswitch-id": str(vpc.get("VSwitchId") or eni["VSwitchId"]), "private-ipv4": str(eni["PrivateIpAddress"]),
            "mac": str(eni["MacAddress"]), "network-type": "vpc",
        }

    # --- SNAT ---------------------------------------------------------------------------------------

    def snat_rules(self) -> list[network.SnatRule]:
        with self.emulator.store.transaction() as conn:
            rows = conn.execute("SELECT source_cidr, snat_ip FROM snat_entries WHERE snat_table_id = ? ORDER BY rowid",
                                (self.topology.snat_table,)).fetchall()
        return [network.SnatRule(str(r[0]), str(r[1]).split(",")[0].strip()) for r in rows]

    def unrouted(self) -> list[Unrouted]:
        """The vSwitches whose route table (custom, else the VPC's system table) has no 0.0.0.0/0 route to a
        NAT gateway: the VPC sends their pods' internet traffic nowhere."""
        with self.emulator.store.transaction() as conn:
            vswitches = conn.execute("SELECT vswitch_id, cidr FROM vswitches WHERE vpc_id = ? ORDER BY rowid",
                                     (self.topology.vpc_id,)).fetchall()
            found = []
            for vsw in vswitches:
                table, _ = route_table_of(conn, str(vsw[0]), self.topology.vpc_id)
                if conn.execute("SELECT 1 FROM route_entries WHERE route_table_id = ? AND destination = '0.0.0.0/0' "
                                "AND next_hop_type = 'NatGateway'", (table,)).fetchone() is None:
                    found.append(Unrouted(str(vsw[0]), str(vsw[1]), table))
        return found

    def sync_snat(self) -> bool:
        """Make the router's NAT follow the SNAT table and the route tables; True when the rules changed."""
        with self._snat_lock:
            rules = self.snat_rules()
            unrouted = self.unrouted()
            if rules == self._applied and unrouted == self._unrouted:
                return False
            if rules != self._applied:
                network.apply_router_nat(self.topology, rules)
                self._applied = rules
                log.info("router NAT: %s", ", ".join(f"{r.source_cidr}->{r.snat_ip}" for r in rules) or "no SNAT entries")
            if unrouted != self._unrouted:
                apply_route_tables(self.topology.router_ns, self.topology.name, unrouted)
                self._unrouted = unrouted
                log.info("router route tables: %s", ", ".join(f"{u.vswitch_id} ({u.route_table_id}) has no default "
                                                              "route" for u in unrouted) or "every vSwitch routed")
            return True

    def _snat_loop(self) -> None:
        while not self._stop.wait(SNAT_POLL_S):
            try:
                self.sync_snat()
            except Exception:
                log.exception("SNAT sync failed")

    def _entries(self) -> list[dict[str, Any]]:
        body = self.api.call("DescribeSnatTableEntries", SnatTableId=self.topology.snat_table, PageSize="100")
        entries: list[dict[str, Any]] = body["SnatTableEntries"]["SnatTableEntry"]
        return entries

    def snat_delete(self, vswitch_id: str) -> list[dict[str, str]]:
        vsw = self.topology.vswitch(vswitch_id)
        removed = []
        for entry in self._entries():
            if entry["SourceVSwitchId"] == vsw.id or (not entry["SourceVSwitchId"] and entry["SourceCIDR"] == vsw.cidr):
                self.api.call("DeleteSnatEntry", SnatTableId=self.topology.snat_table, SnatEntryId=entry["SnatEntryId"])
                removed.append({"entry_id": entry["SnatEntryId"], "snat_ip": entry["SnatIp"]})
        self.sync_snat()
        return removed

    def snat_create(self, vswitch_id: str, snat_ip: str) -> str:
        vsw = self.topology.vswitch(vswitch_id)
        for entry in self._entries():
            if entry["SourceVSwitchId"] == vsw.id:
                self.sync_snat()
                return str(entry["SnatEntryId"])
        body = self.api.call("CreateSnatEntry", SnatTableId=self.topology.snat_table, SourceVSwitchId=vsw.id,
                             SnatIp=snat_ip or self.topology.nat_eip)
        self.sync_snat()
        return str(body["SnatEntryId"])

    # --- vSwitch exhaustion -------------------------------------------------------------------------

    def exhaust(self, vswitch_id: str) -> int:
        """Take every free address of the vSwitch (as if other tenants' ENIs held them)."""
        net = ipaddress.IPv4Network(self.topology.vswitch(vswitch_id).cidr)
        first, last = int(net.network_address) + 1, int(net.broadcast_address) - 3
        with self.emulator.store.transaction() as conn:
            used = {r[0] for r in conn.execute("SELECT ip FROM ips WHERE vswitch_id = ?", (vswitch_id,))}
            free = [(vswitch_id, ip, EXHAUST_ENI, 0) for ip in range(first, last + 1) if ip not in used]
            conn.executemany("INSERT INTO ips (vswitch_id, ip, eni_id, is_primary) VALUES (?, ?, ?, ?)", free)
        return len(free)

    def unexhaust(self, vswitch_id: str) -> int:
        self.topology.vswitch(vswitch_id)
        with self.emulator.store.transaction() as conn:
            gone = conn.execute("DELETE FROM ips WHERE vswitch_id = ? AND eni_id = ?", (vswitch_id, EXHAUST_ENI))
            return int(gone.rowcount)

    # --- summary ------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        topo = self.topology
        vsws = self.api.call("DescribeVSwitches", VpcId=topo.vpc_id, PageSize="50")["VSwitches"]["VSwitch"]
        snat = {e["SourceVSwitchId"] or e["SourceCIDR"] for e in self._entries()}
        planned = {v.id: v for v in topo.vswitches}
        # a vSwitch created after `up` (CreateVSwitch: `vswitch add --create`) serves pods
        vswitches = [{
            "vswitch_id": v["VSwitchId"], "zone": v["ZoneId"], "cidr": v["CidrBlock"],
            "role": planned[v["VSwitchId"]].role if v["VSwitchId"] in planned else "pod",
            "gateway": gateway_of(v["CidrBlock"]),
            "free_ips": v["AvailableIpAddressCount"], "snat": v["VSwitchId"] in snat or v["CidrBlock"] in snat,
        } for v in vsws]
        enis: dict[str, list[dict[str, Any]]] = {}
        for node in topo.nodes:
            body = self.api.call("DescribeNetworkInterfaces", ECS_VERSION, InstanceId=node.instance_id,
                                 PageSize="100")
            enis[node.name] = [{
                "eni_id": e["NetworkInterfaceId"], "type": e["Type"], "vswitch_id": e["VSwitchId"],
                "mac": e["MacAddress"], "primary_ip": e["PrivateIpAddress"],
                "ips": len(e["PrivateIpSets"]["PrivateIpSet"]),
            } for e in body["NetworkInterfaceSets"]["NetworkInterfaceSet"]]
        return {"vswitches": vswitches, "enis": enis, "emulator": self.emulator.url}


def _quietly(close: Any) -> None:
    with contextlib.suppress(Exception):
        close()


def _pid() -> int:
    import os

    return os.getpid()


def serve(name: str) -> None:
    """Run the supervisor of lab `name` until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.INFO, format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s")
    lab = LabDir(name)
    if not lab.exists():
        raise InvalidInput(f"lab {name} has no lab.json in {lab.path}", hint="'terwayctl lab up' starts the supervisor")
    supervisor = Supervisor(lab)
    stop = threading.Event()
    previous: Mapping[int, Any] = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        supervisor.start()
        while not stop.wait(0.5):
            pass
    finally:
        supervisor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
