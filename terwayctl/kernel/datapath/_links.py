"""Small netlink helpers shared by the datapath modes (links, addresses, sysctls)."""

from __future__ import annotations

from ipaddress import IPv4Address

from terwayctl.kernel.netlink import Message, Netlink, is_absent, is_exists


def link_index(nl: Netlink, name: str) -> int | None:
    found = nl.link_lookup(ifname=name)
    return int(found[0]) if found else None


def link_get(nl: Netlink, name: str) -> Message | None:
    """The link named `name`, or None (one request: index, name, MAC, MTU, kind and peer)."""
    try:
        found = nl.link("get", ifname=name)
    except Exception as exc:
        if is_absent(exc):
            return None
        raise
    return found[0] if found else None


def link_msg(nl: Netlink, index: int) -> Message:
    return nl.link("get", index=index)[0]


def link_name(msg: Message) -> str:
    return str(msg.get_attr("IFLA_IFNAME"))


def link_mac(msg: Message) -> str:
    return str(msg.get_attr("IFLA_ADDRESS"))


def link_kind(msg: Message) -> str | None:
    info = msg.get_attr("IFLA_LINKINFO")
    if info is None:
        return None
    kind = info.get_attr("IFLA_INFO_KIND")
    return None if kind is None else str(kind)


IFF_UP = 0x1


def set_up(nl: Netlink, link: int | Message, mtu: int | None = None) -> None:
    """Bring a link up (and set its MTU); given its message, nothing is sent when it already is."""
    msg = link_msg(nl, link) if isinstance(link, int) else link
    index = int(msg["index"])
    if mtu is not None and msg.get_attr("IFLA_MTU") != mtu:
        nl.link("set", index=index, mtu=mtu)
    if isinstance(link, int) or not int(msg["flags"]) & IFF_UP:
        nl.link("set", index=index, state="up")


def ensure_address(nl: Netlink, index: int, ip: IPv4Address, prefixlen: int) -> bool:
    """Add ip/prefixlen to the link; False when it was already there (the kernel says EEXIST)."""
    try:
        nl.addr("add", index=index, address=str(ip), prefixlen=prefixlen)
    except Exception as exc:
        if is_exists(exc):
            return False
        raise
    return True


def delete_link(nl: Netlink, name: str) -> bool:
    """Delete a link by name; False when it was not there."""
    index = link_index(nl, name)
    if index is None:
        return False
    try:
        nl.link("del", index=index)
    except Exception as exc:
        if is_absent(exc):
            return False
        raise
    return True


def conf_key(ifname: str, item: str) -> str:
    """The sysctl key of ``net.ipv4.conf.<ifname>.<item>`` (safe for names with dots)."""
    return f"net/ipv4/conf/{ifname}/{item}"
