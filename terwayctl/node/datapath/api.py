"""The datapath's entry points: set up and tear down one pod, whatever the mode.

`setup_pod` is idempotent (a repeated ADD converges to the same state) and undoable: each mode
registers an undo step per resource it creates on an ExitStack, and a failure part-way runs them
(newest first) before the error propagates. `teardown_pod` treats a missing namespace, link, rule
or route as success.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from terwayctl.node import netns
from terwayctl.node.datapath import exclusive, ipvlan, veth
from terwayctl.node.datapath.model import DatapathError, DatapathMode, PodAttachment, PodNetwork
from terwayctl.node.netns import Namespace

log = logging.getLogger("terwayctl.node.datapath")


def effective_mode(spec: PodNetwork) -> DatapathMode:
    """The mode that will run: ipvlan falls back to veth (logged) where the kernel lacks it."""
    if spec.mode is DatapathMode.IPVLAN and not ipvlan.ipvlan_supported():
        log.warning(
            "ipvlan is not supported by this kernel (%s); falling back to veth for %s",
            ".".join(map(str, ipvlan.kernel_version())),
            spec.host_ifname,
        )
        return DatapathMode.VETH
    return spec.mode


def setup_pod(node_netns: Namespace, pod_netns: Namespace, ifname: str, spec: PodNetwork) -> PodAttachment:
    """Attach the pod in `pod_netns` (a path such as /proc/<pid>/ns/net, or a name) as `ifname`.

    Raises DatapathError (nothing left behind) when a step fails, e.g. when the pod IP is
    already routed to another pod's veth.
    """
    for ns, what in ((node_netns, "node"), (pod_netns, "pod")):
        if not netns.exists(ns):
            raise DatapathError(f"{what} network namespace {ns} does not exist")
    mode = effective_mode(spec)
    with contextlib.ExitStack() as undo:
        try:
            if mode is DatapathMode.EXCLUSIVE_ENI:
                attachment = exclusive.setup(undo, node_netns, pod_netns, ifname, spec)
            elif mode is DatapathMode.IPVLAN:
                attachment = ipvlan.setup(undo, node_netns, pod_netns, ifname, spec)
            else:
                attachment = veth.setup(undo, node_netns, pod_netns, ifname, spec)
        except DatapathError:
            raise
        except OSError as exc:
            raise DatapathError(f"setting up {ifname} for {spec.pod_ip} failed: {exc}") from exc
        undo.pop_all()
    return attachment


def teardown_pod(node_netns: Namespace, pod_netns: Namespace | None, ifname: str, spec: PodNetwork) -> None:
    """Detach the pod; `pod_netns` may be None or already gone. Never fails on absence."""
    pod = pod_netns if pod_netns is not None and netns.exists(pod_netns) else None
    if spec.mode is DatapathMode.EXCLUSIVE_ENI:
        exclusive.teardown(node_netns, pod, ifname, spec)
        return
    if spec.mode is DatapathMode.IPVLAN:
        ipvlan.teardown(node_netns, pod, ifname, spec)
    # veth state may exist for an ipvlan spec too (the fallback), and cleaning it is harmless
    veth.teardown(node_netns, pod, ifname, dataclasses.replace(spec, mode=DatapathMode.VETH))
