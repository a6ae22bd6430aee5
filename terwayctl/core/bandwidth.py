"""Pod bandwidth units: pure conversions from what users write to what tc needs (bytes per second).

Three sources, three unit systems:

- CNI ``runtimeConfig.bandwidth`` (the ``bandwidth`` capability): ``ingressRate`` / ``egressRate``
  in **bits** per second, ``ingressBurst`` / ``egressBurst`` in bits.
- ``kubernetes.io/ingress-bandwidth`` / ``egress-bandwidth`` pod annotations: Kubernetes quantities
  in **bits** per second: ``10M`` = 10e6 bit/s, ``1Gi`` = 2^30 bit/s, ``500k``, ``1.5M``, ``2e6``.
  Kubelet refuses values below 1 kbit/s or above 1 Pbit/s; so does this module.
- the deprecated ``k8s.aliyun.com/ingress-bandwidth`` / ``egress-bandwidth`` annotations (upstream
  Terway's ``parseBandwidth``): binary **bytes** per second, case-insensitive suffixes
  ``K|KB|KIB``, ``M|MB|MIB``, ``G|GB|GIB``, ``T|TB|TIB``, ``B`` or none: ``10M`` = 10 x 2^20 B/s.

Everything returns whole bytes per second (rounded up, never 0). Invalid strings raise
`InvalidInput`. `tbf_parameters` turns a rate into the token bucket Terway uses (docs/datapath.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from terwayctl.core.errors import InvalidInput

K8S_INGRESS = "kubernetes.io/ingress-bandwidth"
K8S_EGRESS = "kubernetes.io/egress-bandwidth"
ALIYUN_INGRESS = "k8s.aliyun.com/ingress-bandwidth"
ALIYUN_EGRESS = "k8s.aliyun.com/egress-bandwidth"

#: tbf latency Terway uses (25 ms), in microseconds.
TBF_LATENCY_US = 25_000

_K8S_MIN_BITS = 1_000  # kubelet: "resource is unreasonably small (< 1kbit)"
_K8S_MAX_BITS = 10**15  # kubelet: "resource is unreasonably large (> 1Pbit)"

_K8S_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_K8S_QUANTITY = re.compile(
    r"^\+?(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:(?P<exp>[eE][+-]?[0-9]+)|(?P<suffix>[a-zA-Z]*))$"
)

_ALIYUN_SUFFIX: dict[str, int] = {
    "": 1,
    "B": 1,
    "K": 2**10,
    "KB": 2**10,
    "KIB": 2**10,
    "M": 2**20,
    "MB": 2**20,
    "MIB": 2**20,
    "G": 2**30,
    "GB": 2**30,
    "GIB": 2**30,
    "T": 2**40,
    "TB": 2**40,
    "TIB": 2**40,
}
_ALIYUN_VALUE = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[A-Z]*)$")


@dataclass(frozen=True)
class PodBandwidth:
    """Limits for one pod in bytes per second; None means unlimited in that direction."""

    ingress: int | None = None
    egress: int | None = None

    @property
    def limited(self) -> bool:
        return self.ingress is not None or self.egress is not None


@dataclass(frozen=True)
class TbfParameters:
    """A tbf qdisc: rate in bytes/s, burst (bucket) in bytes, latency in microseconds."""

    rate: int
    burst: int
    latency_us: int = TBF_LATENCY_US


def _bits_to_bytes(bits: Decimal) -> int:
    return max(1, math.ceil(bits / 8))


def parse_k8s_quantity_bits(value: str) -> int:
    """A Kubernetes quantity in bits per second, e.g. ``10M`` -> 10_000_000 (rounded up)."""
    text = value.strip()
    match = _K8S_QUANTITY.match(text)
    if match is None:
        raise InvalidInput(
            f"invalid bandwidth quantity {value!r}",
            hint="use a Kubernetes quantity in bits per second, e.g. 10M, 1Gi or 500k",
        )
    number = Decimal(match["num"])
    if match["exp"] is not None:
        try:
            number = number.scaleb(int(match["exp"][1:]))
        except (InvalidOperation, ValueError, OverflowError) as exc:
            raise InvalidInput(f"invalid bandwidth quantity {value!r}") from exc
    else:
        suffix = match["suffix"] or ""
        if suffix not in _K8S_SUFFIX:
            raise InvalidInput(
                f"invalid bandwidth quantity {value!r}: unknown suffix {suffix!r}",
                hint="suffixes: k M G T P E (powers of 1000) or Ki Mi Gi Ti Pi Ei (powers of 1024)",
            )
        number *= _K8S_SUFFIX[suffix]
    bits = math.ceil(number)
    if bits < _K8S_MIN_BITS:
        raise InvalidInput(f"bandwidth {value!r} is unreasonably small (< 1kbit)")
    if bits > _K8S_MAX_BITS:
        raise InvalidInput(f"bandwidth {value!r} is unreasonably large (> 1Pbit)")
    return bits


def parse_k8s_bandwidth(value: str) -> int:
    """A ``kubernetes.io/*-bandwidth`` annotation (bits per second) in bytes per second."""
    return _bits_to_bytes(Decimal(parse_k8s_quantity_bits(value)))


def parse_aliyun_bandwidth(value: str) -> int:
    """A deprecated ``k8s.aliyun.com/*-bandwidth`` annotation (binary bytes) in bytes per second."""
    text = value.strip().upper()
    match = _ALIYUN_VALUE.match(text)
    if match is None or match["suffix"] not in _ALIYUN_SUFFIX:
        raise InvalidInput(
            f"invalid bandwidth {value!r}",
            hint="use binary bytes per second, e.g. 10M (= 10 x 2^20 B/s), 512K or 1G",
        )
    number = Decimal(match["num"])
    if number <= 0:
        raise InvalidInput(f"invalid bandwidth {value!r}: must be greater than 0")
    return max(1, math.ceil(number * _ALIYUN_SUFFIX[match["suffix"]]))


def from_annotations(annotations: Mapping[str, str]) -> PodBandwidth:
    """Pod limits from its annotations; ``kubernetes.io/*`` wins over the deprecated aliyun keys."""

    def one(k8s_key: str, aliyun_key: str) -> int | None:
        if k8s_key in annotations:
            return parse_k8s_bandwidth(annotations[k8s_key])
        if aliyun_key in annotations:
            return parse_aliyun_bandwidth(annotations[aliyun_key])
        return None

    return PodBandwidth(ingress=one(K8S_INGRESS, ALIYUN_INGRESS), egress=one(K8S_EGRESS, ALIYUN_EGRESS))


def from_runtime_config(runtime_config: Mapping[str, object]) -> PodBandwidth:
    """Pod limits from CNI ``runtimeConfig`` (its ``bandwidth`` key: rates in bits per second)."""
    section = runtime_config.get("bandwidth")
    if section is None:
        return PodBandwidth()
    if not isinstance(section, Mapping):
        raise InvalidInput("runtimeConfig.bandwidth must be an object")

    def rate(key: str) -> int | None:
        raw = section.get(key)
        if raw is None or raw == 0:
            return None
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
            raise InvalidInput(f"runtimeConfig.bandwidth.{key} must be a positive number of bits per second")
        return _bits_to_bytes(Decimal(str(raw)))

    return PodBandwidth(ingress=rate("ingressRate"), egress=rate("egressRate"))


def tbf_parameters(rate: int, mtu: int) -> TbfParameters:
    """The tbf for `rate` bytes/s: burst = max(rate / 1000, MTU + 1500), latency 25 ms."""
    if rate <= 0:
        raise InvalidInput(f"bandwidth rate must be positive, got {rate}")
    if mtu <= 0:
        raise InvalidInput(f"MTU must be positive, got {mtu}")
    return TbfParameters(rate=rate, burst=max(rate // 1000, mtu + 1500))
