"""hostPort symmetric routing (the conflist's ``symmetric_routing``), as upstream Terway does it.

A hostPort connection arrives on the node's primary ENI (``eth0``) and is DNATed (by the chained
``portmap``) to a pod whose address belongs to a secondary ENI. Without help the pod's reply
follows the pod's ``from <podIP> lookup <ENI table>`` rule (2048) and leaves through the secondary
ENI, with the node's address as source after the reverse NAT: the VPC's source check drops it, so
the hostPort answers only on the node itself. Upstream Terway (`configureNetworkRulesWithConfig`)
marks such connections and routes their replies back through the primary ENI; the same here,
once per node namespace:

- nftables, table ``ip terway_symmetric``, chain ``prerouting`` (filter hook, priority mangle):
  ``iifname "eth0" ct mark set ct mark | 0x10`` (a connection that arrived on the primary ENI) and
  ``ct mark & 0x10 == 0x10 meta mark set meta mark | 0x10`` (every packet of it, the pod's replies
  included, carries the mark: iptables' ``CONNMARK --restore-mark --mask 0x10``);
- ``ip rule`` priority 600 ``fwmark 0x10/0x10 lookup 100`` (before the pods' 2048 rules; the
  512 ``to <podIP> lookup main`` rules still deliver the requests to the pods);
- table 100: ``default via <the primary ENI's gateway> dev eth0 onlink``, the gateway taken from
  the main table's default route through that interface;
- exclusive-ENI pods (their ENI is in the pod namespace, the node reaches them through the VPC):
  chain ``postrouting`` masquerades a marked, DNATed connection that leaves through ``eth0`` again,
  so the pod answers the node, which undoes both translations (the pod sees the node's address,
  not the client's). A veth pod's DNATed request leaves through its veth, never matches.

Defaults as upstream (mark 0x10, mask 0x10, table 100, priority 600, interface eth0); the conflist's
``symmetric_routing_config`` overrides them. `remove_symmetric_routing` undoes it all.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from terwayctl.kernel import netns
from terwayctl.kernel.datapath._links import link_index
from terwayctl.kernel.datapath.conn import NodeConn
from terwayctl.kernel.datapath.model import DatapathError
from terwayctl.kernel.datapath.policy import routes_in
from terwayctl.kernel.netlink import (
    AF_INET,
    FRA_PRIORITY,
    RT_TABLE_MAIN,
    RTA_GATEWAY,
    RTA_OIF,
    RTNH_F_ONLINK,
    Netlink,
    is_absent,
    is_exists,
)
from terwayctl.kernel.netns import Namespace

NFT_TABLE = "terway_symmetric"
_NFT_TIMEOUT = 10.0
_FRA_FWMARK, _FRA_FWMASK = 10, 16


@dataclass(frozen=True)
class SymmetricRouting:
    """Where hostPort replies go back out (upstream's SymmetricRoutingConfig and its defaults)."""

    interface: str = "eth0"
    mark: int = 0x10
    mask: int = 0x10
    table: int = 100
    priority: int = 600
    comment: str = "terway-symmetric"

    def ruleset(self) -> str:
        """The nftables table, replaced atomically (add + delete + define in one transaction)."""
        iface = self.interface.replace('"', "")
        comment = self.comment.replace('"', "")
        return (
            f"add table ip {NFT_TABLE}\n"
            f"delete table ip {NFT_TABLE}\n"
            f"table ip {NFT_TABLE} {{\n"
            f"  chain prerouting {{\n"
            f"    type filter hook prerouting priority mangle; policy accept;\n"
            f'    iifname "{iface}" ct mark set ct mark | {self.mark:#x} comment "{comment}"\n'
            f"    ct mark & {self.mask:#x} == {self.mark & self.mask:#x} meta mark set meta mark | {self.mark:#x}"
            f' comment "{comment}"\n'
            f"  }}\n"
            f"  chain postrouting {{\n"
            f"    type nat hook postrouting priority srcnat; policy accept;\n"
            f'    oifname "{iface}" ct mark & {self.mask:#x} == {self.mark & self.mask:#x} ct status dnat masquerade'
            f' comment "{comment}"\n'
            f"  }}\n"
            f"}}\n"
        )


def _nft(ns: Namespace, script: str) -> None:
    done = subprocess.run(netns.command(ns, ["nft", "-f", "-"]), input=script, capture_output=True, text=True,
                          timeout=_NFT_TIMEOUT, check=False)
    if done.returncode != 0:
        raise DatapathError(f"nft in {ns} failed: {done.stderr.strip()}",
                            hint="symmetric_routing needs nftables (the nft command) on the node")


def primary_gateway(conn: NodeConn, interface: str) -> tuple[int, str]:
    """(ifindex, gateway) of the main table's default route through `interface`."""
    index = link_index(conn.nl, interface)
    if index is None:
        raise DatapathError(f"symmetric_routing: interface {interface} not found in {conn.ns}",
                            hint="set symmetric_routing_config.interface to the node's primary ENI")
    for route in routes_in(conn.routes(), RT_TABLE_MAIN):
        if route.dst_len == 0 and route.u32(RTA_OIF) == index and route.ip(RTA_GATEWAY):
            return index, str(route.ip(RTA_GATEWAY))
    raise DatapathError(f"symmetric_routing: no default route via {interface} in {conn.ns}")


def _rule_kwargs(cfg: SymmetricRouting) -> dict[str, object]:
    return {"family": AF_INET, "priority": cfg.priority, "table": cfg.table, "fwmark": cfg.mark,
            "fwmask": cfg.mask, "action": "FR_ACT_TO_TBL"}


def _has_rule(conn: NodeConn, cfg: SymmetricRouting) -> bool:
    for entry in conn.rules():
        if (entry.u32(FRA_PRIORITY) == cfg.priority and entry.table == cfg.table
                and entry.u32(_FRA_FWMARK) == cfg.mark and entry.u32(_FRA_FWMASK) == cfg.mask):
            return True
    return False


def ensure_symmetric_routing(conn: NodeConn, cfg: SymmetricRouting) -> None:
    """Idempotent: the nftables marks, the fwmark rule and the reply table (module docstring)."""
    index, gateway = primary_gateway(conn, cfg.interface)
    conn.sysctls([("net.ipv4.ip_forward", "1")])  # a DNATed hostPort is forwarded (veth mode sets it too)
    _nft(conn.ns, cfg.ruleset())
    if not _has_rule(conn, cfg):
        try:
            conn.nl.rule("add", **_rule_kwargs(cfg))
        except Exception as exc:
            if not is_exists(exc):
                raise
    conn.nl.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index, table=cfg.table, flags=RTNH_F_ONLINK)


def _absent_ok(nl: Netlink, kind: str, **kwargs: object) -> None:
    try:
        getattr(nl, kind)("del", **kwargs)
    except Exception as exc:
        if not is_absent(exc):
            raise


def remove_symmetric_routing(conn: NodeConn, cfg: SymmetricRouting) -> None:
    """Undo `ensure_symmetric_routing`; anything already gone is fine."""
    _nft(conn.ns, f"add table ip {NFT_TABLE}\ndelete table ip {NFT_TABLE}\n")
    while _has_rule(conn, cfg):
        _absent_ok(conn.nl, "rule", **_rule_kwargs(cfg))
    _absent_ok(conn.nl, "route", dst="0.0.0.0/0", table=cfg.table)


def symmetric_routing_on(node_netns: Namespace, cfg: SymmetricRouting) -> None:
    """`ensure_symmetric_routing` with the node namespace's sockets opened for the call."""
    with NodeConn(node_netns) as conn:
        ensure_symmetric_routing(conn, cfg)


def symmetric_routing_off(node_netns: Namespace, cfg: SymmetricRouting) -> None:
    with NodeConn(node_netns) as conn:
        remove_symmetric_routing(conn, cfg)
