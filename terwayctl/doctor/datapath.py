"""The datapath the node daemon actually uses (its STATUS), beside what is configured.

`node.datapath-kernel` judges the configuration against the kernel; this check reports what the
daemon chose at start (`daemon status`: `datapath.mode` and its reason): veth, ipvlan, or
exclusive-eni, and an ipvlan request that fell back to veth. In exclusive-ENI mode it also says
what the pods reach through their veth to the node (eni_conf `service_cidr` and the node's IP,
docs/datapath.md "Services from exclusive-ENI pods").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from terwayctl.doctor.context import Context
from terwayctl.doctor.model import Check, CheckSkipped, Need, Scope, Verdict, ok, warn
from terwayctl.doctor.node import require_terway_node
from terwayctl.doctor.readers import DaemonNotAnswering, DaemonStatus

NEEDS = frozenset({Need.NODE})


def _status(ctx: Context) -> DaemonStatus:
    socket = str(ctx.options.socket)
    return ctx.cached(f"daemon:{socket}", lambda: ctx.node.daemon_status(socket, 5.0))


def datapath_mode(ctx: Context) -> Verdict:
    require_terway_node(ctx)
    try:
        status = _status(ctx)
    except DaemonNotAnswering as exc:
        raise CheckSkipped(f"the daemon does not answer ({exc.reason}): its datapath is unknown") from None
    raw = status.detail.get("datapath") if isinstance(status.detail, Mapping) else None
    datapath: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    mode = str(datapath.get("mode") or "")
    if not mode:
        raise CheckSkipped("the daemon does not report its datapath (STATUS detail datapath.mode)")
    reason = str(datapath.get("reason") or "")
    evidence = [f"datapath {mode}" + (f": {reason}" if reason else "") + f" (the daemon's STATUS, kernel "
                f"{ctx.node.kernel_release()})"]
    if datapath.get("fallback"):
        return warn([*evidence, "pods are attached with veth + policy routing, not the ipvlan eni_conf asks for"],
                    "load the ipvlan module (modprobe ipvlan) or use a kernel >= 4.19 with it, then restart the "
                    "terway pod; or drop eniip_virtual_type to ask for veth")
    if mode == "exclusive-eni":
        routes = [str(r) for r in datapath.get("exclusive_host_routes") or () if r]
        if not routes:
            return warn([*evidence, "exclusive-ENI pods get no veth to the node: eni_conf has no service_cidr, so "
                         "their ClusterIP traffic leaves through their ENI and never meets kube-proxy"],
                        "set service_cidr in eni_conf (terwayctl render writes it) and restart the terway pod")
        evidence.append(f"exclusive-ENI pods reach {', '.join(routes)} through a veth to the node")
    return ok(*evidence)


CHECKS: list[Check] = [
    Check("node.datapath-mode", "The daemon's datapath mode", Scope.NODE, NEEDS, datapath_mode,
          "the daemon's STATUS detail datapath (mode, reason, ipvlan fallback, the exclusive-ENI pods' routes "
          "to the node)"),
]
