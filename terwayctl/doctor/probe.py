"""Active probes (--probe): reach an external target and a hostPort from a pod-like namespace.

Each probe is one bounded attempt (--probe-timeout, a few seconds) from the node namespace and
one from the pod side (--probe-from NETNS, or a temporary `twdoctor-<hex>` namespace with a veth
to the node namespace, always removed). Comparing the two says where the path breaks.
"""

from __future__ import annotations

from terwayctl.doctor.context import Context
from terwayctl.doctor.model import Check, CheckSkipped, Need, Scope, Verdict, fail, ok
from terwayctl.doctor.readers import Attempt, Target

NEEDS = frozenset({Need.NODE, Need.PROBE})


def _line(attempt: Attempt, target: Target) -> str:
    route = f"; route: {attempt.route}" if attempt.route else ""
    return f"{attempt.how} {target} from {attempt.where}: {attempt.detail}{route}"


def diagnose(target: Target, node: Attempt, pod: Attempt, what: str) -> Verdict:
    """Where the path from the pod side to `target` breaks, from the node's and the pod's attempts."""
    evidence = [_line(node, target), _line(pod, target)]
    if pod.reached:
        return ok(*evidence)
    if pod.route is None:
        return fail([*evidence, f"hop 1 ({pod.where}): no route to {target.host}"],
                    "the pod namespace needs 'default via 169.254.1.1 dev eth0 onlink' (recreate the pod)")
    if not node.reached:
        return fail([*evidence, f"the node itself cannot reach {what} {target}: the break is beyond the pod: the "
                     "node's route, its security group, or the NAT gateway / SNAT entry of the vSwitch"],
                    "check the node's default route and security group; doctor --scope cloud checks SNAT")
    return fail([*evidence, f"the node reaches {what} {target} but the pod side does not: the node does not forward "
                 "the pod's packets (forwarding, rp_filter, FORWARD policy) or the VPC does not translate / return "
                 "the pod's source address (no SNAT entry for the pod vSwitch)"],
                "see node.forwarding, node.rp-filter, node.forward-policy and cloud.snat-coverage")


def _probe(ctx: Context, target: Target | None, what: str, flag: str) -> Verdict:
    if target is None:
        raise CheckSkipped(f"no {what} given ({flag} IP[:PORT]); doctor never picks one itself")
    timeout = ctx.options.probe_timeout
    prober = ctx.prober
    return diagnose(target, prober.from_node(target, timeout), prober.from_pod(target, timeout), what)


def external(ctx: Context) -> Verdict:
    return _probe(ctx, ctx.options.external_target, "the external target", "--external-target")


def hostport(ctx: Context) -> Verdict:
    return _probe(ctx, ctx.options.hostport_target, "the hostPort", "--hostport-target")


CHECKS: list[Check] = [
    Check("probe.external", "A pod reaches the external target", Scope.NODE, NEEDS, external,
          "one TCP connect (or ICMP echo) to --external-target from the node and from the pod side"),
    Check("probe.hostport", "A pod reaches a hostPort on its node", Scope.NODE, NEEDS, hostport,
          "one TCP connect to --hostport-target (node IP:port) from the node and from the pod side"),
]
