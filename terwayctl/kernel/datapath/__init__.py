"""The node datapath: pods attached to ENIs through veth pairs and policy routing (default),
ipvlan L2 (where the kernel has it) or an exclusive ENI, plus tc tbf bandwidth.

All netlink work goes through sockets created inside a namespace (`terwayctl.kernel.netns`):
pyroute2 objects for changes, raw dumps for reads; only `terwayctl.kernel.netns` enters a namespace
(briefly, in the calling thread, to create a socket or write sysctls).
"""

from __future__ import annotations

from terwayctl.kernel.datapath.api import Datapath, effective_mode, setup_pod, teardown_pod
from terwayctl.kernel.datapath.check import Reported, check_pod
from terwayctl.kernel.datapath.hostport import SymmetricRouting, symmetric_routing_off, symmetric_routing_on
from terwayctl.kernel.datapath.inspect import inspect_node
from terwayctl.kernel.datapath.ipvlan import ipvlan_supported
from terwayctl.kernel.datapath.model import (
    ENI_TABLE_BASE,
    FROM_POD_PRIORITY,
    POD_GATEWAY,
    TO_POD_PRIORITY,
    DatapathError,
    DatapathMode,
    EniTable,
    NodeInspection,
    PodAttachment,
    PodNetwork,
    PodVeth,
    PolicyRule,
    eni_table_id,
    host_veth_name,
)
from terwayctl.kernel.datapath.policy import ensure_eni_table
from terwayctl.kernel.datapath.tc import apply_bandwidth

__all__ = [
    "ENI_TABLE_BASE",
    "FROM_POD_PRIORITY",
    "POD_GATEWAY",
    "TO_POD_PRIORITY",
    "Datapath",
    "DatapathError",
    "DatapathMode",
    "EniTable",
    "NodeInspection",
    "PodAttachment",
    "PodNetwork",
    "PodVeth",
    "PolicyRule",
    "Reported",
    "SymmetricRouting",
    "apply_bandwidth",
    "check_pod",
    "effective_mode",
    "eni_table_id",
    "ensure_eni_table",
    "host_veth_name",
    "inspect_node",
    "ipvlan_supported",
    "setup_pod",
    "symmetric_routing_off",
    "symmetric_routing_on",
    "teardown_pod",
]
