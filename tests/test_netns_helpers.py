"""terwayctl.kernel.netns: create/delete, entering and always restoring, running inside, sysctls."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from terwayctl.kernel import netns as nsmod
from tests.fixtures.netns import PREFIX, NetnsFactory


def _thread_ns_inode() -> int:
    return os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino


def test_path_of_and_command() -> None:
    assert nsmod.path_of("twtest-00000000") == Path("/run/netns/twtest-00000000")
    assert nsmod.path_of("/proc/1/ns/net") == Path("/proc/1/ns/net")
    assert nsmod.command("x", ["ip", "link"]) == ["ip", "netns", "exec", "x", "ip", "link"]
    assert nsmod.command("/proc/9/ns/net", ["true"])[1:] == ["--net=/proc/9/ns/net", "--", "true"]
    with pytest.raises(ValueError):
        nsmod.path_of("..")


def test_create_is_idempotent_and_delete_tolerates_absence(netns: NetnsFactory) -> None:
    name = netns()
    assert nsmod.exists(name)
    assert name in nsmod.list_named(PREFIX)
    assert nsmod.create(name) == nsmod.path_of(name)
    assert nsmod.delete(name)
    assert not nsmod.exists(name)
    assert not nsmod.delete(name)
    assert not nsmod.exists("twtest-ffffffff")


def test_entered_restores_the_thread_namespace(netns: NetnsFactory) -> None:
    name = netns()
    before = _thread_ns_inode()
    with nsmod.entered(name):
        assert _thread_ns_inode() == os.stat(nsmod.path_of(name)).st_ino
    assert _thread_ns_inode() == before
    with pytest.raises(RuntimeError), nsmod.entered(name):
        raise RuntimeError("boom")
    assert _thread_ns_inode() == before


def test_run_in_returns_and_raises(netns: NetnsFactory) -> None:
    name = netns()
    assert nsmod.run_in(name, _thread_ns_inode) == os.stat(nsmod.path_of(name)).st_ino

    def fail() -> None:
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        nsmod.run_in(name, fail)
    with pytest.raises(FileNotFoundError):
        nsmod.run_in("twtest-ffffffff", _thread_ns_inode)


def test_sysctls_are_per_namespace(netns: NetnsFactory) -> None:
    a, b = netns(), netns()
    nsmod.write_sysctl(a, "net.ipv4.ip_forward", "1")
    assert nsmod.read_sysctl(a, "net.ipv4.ip_forward") == "1"
    assert nsmod.read_sysctl(b, "net.ipv4.ip_forward") == "0"
    assert nsmod.read_sysctl(a, "net/ipv4/conf/lo/rp_filter") in {"0", "1", "2"}
    with pytest.raises(ValueError):
        nsmod.read_sysctl(a, "net/../../etc/passwd")


def test_iproute_never_creates_a_namespace() -> None:
    with pytest.raises(FileNotFoundError), nsmod.iproute("twtest-ffffffff"):
        pass
    assert not nsmod.exists("twtest-ffffffff")


def test_iproute_works_inside(netns: NetnsFactory) -> None:
    name = netns()
    with nsmod.iproute(name) as nl:
        nl.link("add", ifname="tw0", kind="veth", peer="tw1")
        names = {m.get_attr("IFLA_IFNAME") for m in nl.link("dump")}
    assert {"lo", "tw0", "tw1"} <= names
