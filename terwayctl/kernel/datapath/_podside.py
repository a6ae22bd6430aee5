"""The pod side of the modes that hand the pod its own link (exclusive ENI, ipvlan).

Both end the same way: the link up with the pod's address, a default route via the vSwitch gateway,
egress shaped on the pod side (there is no host veth to shape ingress on).
"""

from __future__ import annotations

from terwayctl.kernel.datapath import policy, tc
from terwayctl.kernel.datapath._links import ensure_address, link_mac, link_msg, set_up
from terwayctl.kernel.datapath.model import DatapathMode, PodAttachment, PodNetwork
from terwayctl.kernel.netlink import RTNH_F_ONLINK, Netlink
from terwayctl.kernel.netns import Namespace


def configure_pod_link(
    pn: Netlink, pod: Namespace, ifname: str, pod_link: int, spec: PodNetwork, prefixlen: int, mode: DatapathMode
) -> PodAttachment:
    set_up(pn, pod_link, spec.mtu)
    ensure_address(pn, pod_link, spec.pod_ip, prefixlen)
    pn.route("replace", dst=policy.DEFAULT_DST, gateway=str(spec.gateway), oif=pod_link, flags=RTNH_F_ONLINK)
    tc.shape(pn, pod, ifname, pod_link, spec.bandwidth.egress, spec.mtu)
    return PodAttachment(
        mode=mode,
        pod_ifname=ifname,
        pod_ip=spec.pod_ip,
        pod_mac=link_mac(link_msg(pn, pod_link)),
        host_ifname=None,
        host_mac=None,
        eni_ifname=spec.eni_ifname,
        eni_table=None,
    )
