"""tc tbf bandwidth on the veth pair: parameters as docs/datapath.md says, and a real iperf3 measurement."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from terwayctl.core.bandwidth import PodBandwidth
from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath import apply_bandwidth, setup_pod
from tests.fixtures.netns import GATEWAY, World
from tests.test_datapath_veth import POD_A, spec_for

EGRESS = 2_500_000  # bytes/s = 20 Mbit/s
INGRESS = 2_000_000  # bytes/s = 16 Mbit/s
PORT = "5299"


def tbf(ns: str, ifname: str) -> dict[str, object] | None:
    out = subprocess.run(
        nsmod.command(ns, ["tc", "-j", "qdisc", "show", "dev", ifname]), capture_output=True, text=True, timeout=10, check=True
    )
    roots = [q for q in json.loads(out.stdout) if q.get("root") and q["kind"] == "tbf"]
    return roots[0]["options"] if roots else None  # type: ignore[no-any-return]


def test_tbf_parameters_on_both_sides(datapath_world: World) -> None:
    w = datapath_world
    pod = w.pod()
    spec = spec_for("a", POD_A, bandwidth=PodBandwidth(ingress=INGRESS, egress=EGRESS))
    att = setup_pod(w.node, pod, "eth0", spec)
    assert att.host_ifname is not None
    egress, ingress = tbf(pod, "eth0"), tbf(w.node, att.host_ifname)
    assert egress is not None and ingress is not None
    # tc prints burst and latency back from kernel ticks: allow its rounding (< 0.5 %)
    for got, rate in ((egress, EGRESS), (ingress, INGRESS)):
        assert got["rate"] == rate
        assert got["burst"] == pytest.approx(3000, rel=0.005)
        assert got["lat"] == pytest.approx(25_000, rel=0.005)

    # larger rates: burst = rate / 1000; rates beyond tbf's 32-bit field go through `tc` (rate64)
    apply_bandwidth(w.node, pod, "eth0", att.host_ifname, PodBandwidth(ingress=None, egress=125_000_000))
    egress = tbf(pod, "eth0")
    assert egress is not None and egress["rate"] == 125_000_000
    assert egress["burst"] == pytest.approx(125_000, rel=0.005)
    assert tbf(w.node, att.host_ifname) is None
    apply_bandwidth(w.node, pod, "eth0", att.host_ifname, PodBandwidth(ingress=5 * 2**30, egress=None))
    ingress = tbf(w.node, att.host_ifname)
    assert ingress is not None and ingress["rate"] == 5 * 2**30
    assert tbf(pod, "eth0") is None
    apply_bandwidth(w.node, pod, "eth0", att.host_ifname, PodBandwidth())
    assert tbf(pod, "eth0") is None and tbf(w.node, att.host_ifname) is None


def _iperf_once(world: World, pod: str, *, reverse: bool) -> float | None:
    """One bounded 3 s iperf3 run pod -> router (or router -> pod with -R); None if it hung."""
    server = subprocess.Popen(
        nsmod.command(world.router, ["iperf3", "-s", "-1", "-B", str(GATEWAY), "-p", PORT]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # `timeout` bounds the client: iperf3 3.12 now and then stalls in its end-of-test exchange
        argv = ["timeout", "7", "iperf3", "-c", str(GATEWAY), "-p", PORT, "-t", "3", "-J", *(["-R"] if reverse else [])]
        for _ in range(20):  # wait, bounded, for the server to listen
            done = subprocess.run(nsmod.command(pod, argv), capture_output=True, text=True, timeout=15)
            try:
                report = json.loads(done.stdout or "{}")
            except json.JSONDecodeError:
                report = {"error": f"no JSON from iperf3 (exit {done.returncode})"}
            received = report.get("end", {}).get("sum_received", {}).get("bits_per_second")
            if done.returncode == 0 and received is not None:
                return float(received)
            error = str(report.get("error", ""))
            if "interrupt" in error or "no JSON" in error:
                return None
            if "connect" not in error:
                raise AssertionError(f"iperf3 failed: {error or done.stderr}")
            time.sleep(0.1)
        raise AssertionError("iperf3 server did not start")
    finally:
        server.kill()
        server.wait(timeout=5)


def _iperf(world: World, pod: str, *, reverse: bool) -> float:
    for _ in range(3):
        rate = _iperf_once(world, pod, reverse=reverse)
        if rate is not None:
            return rate
    raise AssertionError("iperf3 stalled three times")


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 is not installed")
def test_measured_rates_within_15_percent(datapath_world: World) -> None:
    w = datapath_world
    pod = w.pod()
    setup_pod(w.node, pod, "eth0", spec_for("a", POD_A, bandwidth=PodBandwidth(ingress=INGRESS, egress=EGRESS)))
    w.route_pod(POD_A)
    egress = _iperf(w, pod, reverse=False)
    ingress = _iperf(w, pod, reverse=True)
    print(f"egress {egress / 1e6:.2f} Mbit/s of {EGRESS * 8 / 1e6}, ingress {ingress / 1e6:.2f} Mbit/s of {INGRESS * 8 / 1e6}")
    assert abs(egress - EGRESS * 8) <= 0.15 * EGRESS * 8
    assert abs(ingress - INGRESS * 8) <= 0.15 * INGRESS * 8
