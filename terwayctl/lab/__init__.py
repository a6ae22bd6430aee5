"""`terwayctl lab`: the whole Terway network on one machine (docs/lab.md).

A VPC router namespace with the plan's vSwitches, a NAT gateway enforced in nftables, an
"internet" namespace, N node namespaces each with the real daemon and CNI plugin, the emulator as
the cloud; pods added through the real CNI ADD; faults for `doctor` to find.

    from terwayctl.lab import LabSpec, up, down, PodSpec, add_pod, inject_fault, clear_faults

    up(LabSpec(name="t1", nodes=2))             # returns LabStatus; raises on failure (and cleans up)
    pod = add_pod("t1", PodSpec("a", node="node1"))
    inject_fault("t1", "no-snat")               # kinds: see terwayctl.lab.faults.KINDS
    clear_faults("t1")
    down("t1")                                  # idempotent, also after a crash
"""

from __future__ import annotations

from terwayctl.lab.faults import KINDS as FAULT_KINDS
from terwayctl.lab.faults import FaultRow
from terwayctl.lab.faults import clear as clear_faults
from terwayctl.lab.faults import inject as inject_fault
from terwayctl.lab.faults import listing as list_faults
from terwayctl.lab.lifecycle import (
    DownReport,
    LabError,
    LabStatus,
    NodeStatus,
    VSwitchStatus,
    down,
    list_labs,
    status,
    up,
)
from terwayctl.lab.model import LabSpec, Topology, build_topology
from terwayctl.lab.naming import DEFAULT_NAME, LAB_DIR_ENV
from terwayctl.lab.pods import PodSpec, exec_command, lab_env, parse_annotations
from terwayctl.lab.pods import add as add_pod
from terwayctl.lab.pods import delete as delete_pod
from terwayctl.lab.pods import pods as list_pods
from terwayctl.lab.state import FaultRecord, LabDir, PodRecord

__all__ = [
    "DEFAULT_NAME",
    "FAULT_KINDS",
    "LAB_DIR_ENV",
    "DownReport",
    "FaultRecord",
    "FaultRow",
    "LabDir",
    "LabError",
    "LabSpec",
    "LabStatus",
    "NodeStatus",
    "PodRecord",
    "PodSpec",
    "Topology",
    "VSwitchStatus",
    "add_pod",
    "build_topology",
    "clear_faults",
    "delete_pod",
    "down",
    "exec_command",
    "inject_fault",
    "lab_env",
    "list_faults",
    "list_labs",
    "list_pods",
    "parse_annotations",
    "status",
    "up",
]
