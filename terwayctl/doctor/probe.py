"""Active probes (--probe): reach an external target and a hostPort from a pod-like namespace.

Each probe is one bounded attempt (--probe-timeout, a few seconds) from the node namespace and
one from the pod side (--probe-from NETNS, or a temporary `twdoctor-<hex>` namespace with a veth
to the node namespace, always removed). Comparing the two says where the path breaks.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from terwayctl.doctor import node as node_checks
from terwayctl.doctor.context import Context
from terwayctl.doctor.model import Check, CheckSkipped, Need, Scope, Status, Verdict, fail, ok
from terwayctl.doctor.readers import Attempt, Target
from terwayctl.doctor.topology import nat_facts, snat_command, topology

NEEDS = frozenset({Need.NODE, Need.PROBE})


def _line(attempt: Attempt, target: Target) -> str:
    route = f"; route: {attempt.route}" if attempt.route else ""
    return f"{attempt.how} {target} from {attempt.where}: {attempt.detail}{route}"


def diagnose(target: Target, node: Attempt, pod: Attempt, what: str,
             where: Callable[[], tuple[list[str], list[str]]] | None = None, *, vpc: bool = True) -> Verdict:
    """Where the path from the pod side to `target` breaks, from the node's and the pod's attempts.

    `where()`, asked only when the node reaches the target and the pod side does not, returns
    lines naming the break it found (``where: ...``) and the fixes for them.
    """
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
    beyond = (" or the VPC does not translate / return the pod's source address (no SNAT entry for the pod "
              "vSwitch)") if vpc else ""
    evidence.append(f"the node reaches {what} {target} but the pod side does not: the node does not forward "
                    f"the pod's packets (forwarding, rp_filter, FORWARD policy){beyond}")
    found, fixes = where() if where is not None else ([], [])
    see = "see node.forwarding, node.rp-filter, node.forward-policy" + (" and cloud.snat-coverage" if vpc else "")
    return fail([*evidence, *found], "\n".join(fixes) or see)


_SOURCE = re.compile(r"\bsrc (\S+)")
_NODE_SUSPECTS = (("node.forwarding", node_checks.forwarding), ("node.rp-filter", node_checks.rp_filter),
                  ("node.forward-policy", node_checks.forward_policy))


def _on_the_node(ctx: Context) -> tuple[list[str], list[str]]:
    """The node checks that explain dropped pod packets, as `where` lines and fixes."""
    found: list[str] = []
    fixes: list[str] = []
    clean: list[str] = []
    for check_id, check in _NODE_SUSPECTS:
        try:
            verdict = check(ctx)
        except Exception:  # noqa: BLE001 - a refinement of the probe; the check itself reports its error
            continue
        if verdict.status is Status.FAIL:
            found.append(f"where: on the node: {check_id} fails ({verdict.evidence[0]})")
            if verdict.fix:
                fixes.append(verdict.fix)
        elif verdict.status is Status.OK:
            clean.append(check_id)
    if not found and len(clean) == len(_NODE_SUSPECTS):
        found.append(f"not on the node: {', '.join(clean)} are ok in netns {ctx.node.netns}")
    return found, fixes


def _in_the_vpc(ctx: Context, pod: Attempt) -> tuple[list[str], list[str]]:
    """The pod's source address against the VPC: which vSwitch holds it, and whether SNAT covers it."""
    match = _SOURCE.search(pod.route or "")
    if match is None:
        return [], []
    try:
        source = ipaddress.IPv4Address(match.group(1))
    except ValueError:
        return [], []
    try:
        topo, facts = topology(ctx), nat_facts(ctx)
    except Exception:  # noqa: BLE001 - no cloud or no topology: the verdict stays without the VPC part
        return [], []
    holder = next((v for v in topo.vswitches.values() if v.cidr_block
                   and source in ipaddress.ip_network(v.cidr_block, strict=False)), None)
    if holder is None:
        return [f"where: the VPC: the source {source} belongs to no vSwitch of the VPC, so nothing routes the answer "
                "back (probe from a pod with --probe-from for the real path)"], []
    entries = facts.covers_address(holder, str(source))
    if entries:
        return [f"the pod's source {source} is in {holder.vswitch_id}, covered by SNAT entry "
                f"{entries[0].snat_entry_id} ({entries[0].snat_ip}): check the NAT gateway and the security group"], []
    return [f"where: the VPC's NAT gateway: the pod's source {source} is in {holder.vswitch_id} ({holder.cidr_block}), "
            "which has no SNAT entry, so its packets are not translated and get no answer (cloud.snat-coverage)"], \
        [snat_command(ctx, facts, holder)]


def node_attempt(ctx: Context, target: Target) -> Attempt:
    """The node's attempt at `target`, made once per run (shared by the checks that compare with it)."""
    result: Attempt = ctx.cached(f"probe-node:{target}",
                                 lambda: ctx.prober.from_node(target, ctx.options.probe_timeout))
    return result


def pod_attempt(ctx: Context, target: Target) -> Attempt:
    """The pod side's attempt at `target`, made once per run."""
    result: Attempt = ctx.cached(f"probe-pod:{target}", lambda: ctx.prober.from_pod(target, ctx.options.probe_timeout))
    return result


def _static_disagreements(ctx: Context, vpc: bool) -> list[str]:
    """Static checks that say the pod's path is broken although the probe got through."""
    lines = []
    for check_id, check in _NODE_SUSPECTS:
        try:
            verdict = check(ctx)
        except Exception:  # noqa: BLE001 - the check reports its own trouble
            continue
        if verdict.status is Status.FAIL:
            lines.append(f"{check_id} fails ({verdict.evidence[0]}), but the probe got through: trusting the probe")
    return lines


def _probe(ctx: Context, target: Target | None, what: str, flag: str, *, vpc: bool) -> Verdict:
    if target is None:
        raise CheckSkipped(f"no target given ({flag} IP[:PORT]); doctor never picks one itself")
    ctx.prober  # noqa: B018 - resolving the input is the point
    node = node_attempt(ctx, target)
    pod = pod_attempt(ctx, target)

    def where() -> tuple[list[str], list[str]]:
        on_node, node_fixes = _on_the_node(ctx)
        in_vpc, vpc_fixes = _in_the_vpc(ctx, pod) if vpc else ([], [])
        return [*on_node, *in_vpc], [*node_fixes, *vpc_fixes]

    verdict = diagnose(target, node, pod, what, where, vpc=vpc)
    if verdict.status is Status.OK:
        disagreements = _static_disagreements(ctx, vpc)
        if disagreements:
            return ok(*verdict.evidence, *disagreements)
    elif verdict.status is Status.FAIL:
        return Verdict(verdict.status, (*verdict.evidence, _hop(verdict.evidence, node, pod)), verdict.fix)
    return verdict


def _hop(evidence: tuple[str, ...], node: Attempt, pod: Attempt) -> str:
    """The hop that failed, in one word first: pod, node, VPC router, NAT, target."""
    text = "\n".join(evidence)
    if pod.route is None:
        return "failed hop: pod (its namespace has no route)"
    if not node.reached:
        if "refused" in node.detail:
            return "failed hop: target (it answers, but nothing listens on the port)"
        return "failed hop: beyond the node (VPC router, NAT gateway or target: the node itself fails too)"
    if "where: on the node" in text:
        return "failed hop: node (it does not forward the pod's packets)"
    if "where: the VPC's NAT gateway" in text:
        return "failed hop: NAT (the pod's vSwitch has no SNAT entry)"
    if "where: the VPC" in text:
        return "failed hop: VPC router (nothing routes the pod's source address back)"
    return "failed hop: between the node and the target (node checks are ok; the VPC part is unknown without cloud inputs)"


def external(ctx: Context) -> Verdict:
    return _probe(ctx, ctx.options.external_target, "the external target", "--external-target", vpc=True)


def hostport(ctx: Context) -> Verdict:
    return _probe(ctx, ctx.options.hostport_target, "the hostPort", "--hostport-target", vpc=False)


METADATA = Target("100.100.100.200", 80)


def metadata(ctx: Context) -> Verdict:
    """The instance metadata service, which the daemon asks for its instance id, region and RAM credentials."""
    from terwayctl.doctor.node import ns_prefix, require_terway_node

    require_terway_node(ctx)
    ctx.prober  # noqa: B018 - resolving the input is the point
    attempt = node_attempt(ctx, METADATA)
    line = _line(attempt, METADATA)
    if attempt.reached:
        return ok(line)
    prefix = ns_prefix(ctx)
    if attempt.route is None:
        return fail([line, "failed hop: node (no route to the metadata service)"],
                    f"{prefix}ip route add 100.100.100.200/32 via $({prefix}ip -4 route show default dev eth0 | "
                    f"awk '{{print $3}}') dev eth0")
    return fail([line, "failed hop: node or VPC router: the node routes to it but gets no answer (a firewall OUTPUT "
                 "rule on the node, or a route through the wrong interface)"],
                f"{prefix}nft list ruleset | grep -n 100.100.100.200   # a rule dropping it; the route above must "
                "leave through eth0")


CHECKS: list[Check] = [
    Check("probe.external", "A pod reaches the external target", Scope.NODE, NEEDS, external,
          "one TCP connect (or ICMP echo) to --external-target from the node and from the pod side"),
    Check("probe.hostport", "A pod reaches a hostPort on its node", Scope.NODE, NEEDS, hostport,
          "one TCP connect to --hostport-target (node IP:port) from the node and from the pod side"),
    Check("probe.metadata", "The node reaches the instance metadata service", Scope.NODE, NEEDS, metadata,
          "one TCP connect to 100.100.100.200:80 from the node namespace (the daemon's instance id, region and "
          "RAM credentials come from there)"),
]
