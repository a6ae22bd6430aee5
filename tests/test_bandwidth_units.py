"""Bandwidth unit conversions (terwayctl.core.bandwidth): tables and properties."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terwayctl.core.bandwidth import (
    PodBandwidth,
    from_annotations,
    from_runtime_config,
    parse_aliyun_bandwidth,
    parse_k8s_bandwidth,
    parse_k8s_quantity_bits,
    tbf_parameters,
)
from terwayctl.core.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("10M", 10_000_000),
        ("1Gi", 2**30),
        ("500k", 500_000),
        ("1.5M", 1_500_000),
        ("2e6", 2_000_000),
        ("1E3", 1_000),
        ("100Mi", 100 * 2**20),
        ("1000", 1_000),
        (" 20M ", 20_000_000),
        ("1P", 10**15),
        ("1500000m", 1_500),
    ],
    ids=lambda v: str(v),
)
def test_k8s_quantity_bits(text: str, bits: int) -> None:
    assert parse_k8s_quantity_bits(text) == bits


@pytest.mark.parametrize(
    ("text", "bytes_per_s"),
    [("10M", 1_250_000), ("20M", 2_500_000), ("1Gi", 2**27), ("1001", 126)],
)
def test_k8s_annotation_in_bytes(text: str, bytes_per_s: int) -> None:
    assert parse_k8s_bandwidth(text) == bytes_per_s


@pytest.mark.parametrize(
    ("text", "bytes_per_s"),
    [
        ("10M", 10 * 2**20),
        ("10m", 10 * 2**20),
        ("1MB", 2**20),
        ("1mib", 2**20),
        ("512K", 512 * 2**10),
        ("1G", 2**30),
        ("2T", 2 * 2**40),
        ("1.5M", 3 * 2**19),
        ("100B", 100),
        ("100", 100),
    ],
)
def test_aliyun_annotation_binary_bytes(text: str, bytes_per_s: int) -> None:
    assert parse_aliyun_bandwidth(text) == bytes_per_s


@pytest.mark.parametrize("text", ["", "M", "10X", "-1M", "10 M", "1e", "abc", "10Mbit", "1.2.3M", "10MiB"])
def test_k8s_invalid(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_k8s_quantity_bits(text)


@pytest.mark.parametrize("text", ["1", "999", "2P", "1Ei"])
def test_k8s_out_of_kubelet_range(text: str) -> None:
    with pytest.raises(InvalidInput, match="unreasonably"):
        parse_k8s_quantity_bits(text)


@pytest.mark.parametrize("text", ["", "0", "0M", "-1M", "10X", "M", "1P", "10 Mbit", "1..2M"])
def test_aliyun_invalid(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_aliyun_bandwidth(text)


def test_annotations_k8s_wins_over_deprecated() -> None:
    annotations = {
        "kubernetes.io/ingress-bandwidth": "10M",
        "k8s.aliyun.com/ingress-bandwidth": "10M",
        "k8s.aliyun.com/egress-bandwidth": "1M",
    }
    assert from_annotations(annotations) == PodBandwidth(ingress=1_250_000, egress=2**20)
    assert from_annotations({}) == PodBandwidth()
    assert not PodBandwidth().limited


def test_runtime_config() -> None:
    cfg = {"bandwidth": {"ingressRate": 20_000_000, "ingressBurst": 1_000, "egressRate": 8}}
    assert from_runtime_config(cfg) == PodBandwidth(ingress=2_500_000, egress=1)
    assert from_runtime_config({}) == PodBandwidth()
    assert from_runtime_config({"bandwidth": {"ingressRate": 0}}) == PodBandwidth()
    with pytest.raises(InvalidInput):
        from_runtime_config({"bandwidth": {"egressRate": "10M"}})
    with pytest.raises(InvalidInput):
        from_runtime_config({"bandwidth": []})


@pytest.mark.parametrize(
    ("rate", "mtu", "burst"),
    [(2_500_000, 1500, 3_000), (10_000_000, 1500, 10_000), (125_000_000, 9000, 125_000), (1, 1500, 3_000)],
)
def test_tbf_parameters(rate: int, mtu: int, burst: int) -> None:
    params = tbf_parameters(rate, mtu)
    assert (params.rate, params.burst, params.latency_us) == (rate, burst, 25_000)


def test_tbf_rejects_nonsense() -> None:
    with pytest.raises(InvalidInput):
        tbf_parameters(0, 1500)
    with pytest.raises(InvalidInput):
        tbf_parameters(1000, 0)


_SI = {"k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
_BIN = {"K": 2**10, "M": 2**20, "G": 2**30, "KB": 2**10, "MIB": 2**20}


@given(st.integers(min_value=1, max_value=999), st.sampled_from(sorted(_SI)))
def test_k8s_integer_quantities_scale_exactly(n: int, suffix: str) -> None:
    assert parse_k8s_quantity_bits(f"{n}{suffix}") == n * _SI[suffix]
    assert parse_k8s_bandwidth(f"{n}{suffix}") * 8 >= n * _SI[suffix]


@given(st.integers(min_value=1, max_value=10**6), st.sampled_from(sorted(_BIN)))
def test_aliyun_is_binary_bytes_case_insensitive(n: int, suffix: str) -> None:
    value = parse_aliyun_bandwidth(f"{n}{suffix}")
    assert value == n * _BIN[suffix]
    assert parse_aliyun_bandwidth(f"{n}{suffix.lower()}") == value


@given(st.integers(min_value=1_000, max_value=10**15))
def test_bits_to_bytes_rounds_up(bits: int) -> None:
    got = parse_k8s_bandwidth(str(bits))
    assert got * 8 >= bits > (got - 1) * 8


@given(st.integers(min_value=1, max_value=2**40), st.integers(min_value=68, max_value=65535))
def test_tbf_burst_covers_a_packet_and_a_millisecond(rate: int, mtu: int) -> None:
    params = tbf_parameters(rate, mtu)
    assert params.burst >= mtu + 1500
    assert params.burst >= rate // 1000
    assert params.burst in (rate // 1000, mtu + 1500)


@given(st.text(max_size=12))
def test_parsers_raise_only_invalid_input(text: str) -> None:
    for parse in (parse_k8s_quantity_bits, parse_aliyun_bandwidth):
        with contextlib.suppress(InvalidInput):
            assert parse(text) > 0
