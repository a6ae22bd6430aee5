"""What a check runs with: the options, and the inputs (readers) resolved lazily, once each.

`Inputs` holds one factory per input. A factory returns the reader or raises `CheckSkipped` with
the reason it is unavailable (no credentials, no kubeconfig, ...); that reason becomes the `skip`
finding of every check needing it. Readers that hold resources are closed by `Context.close()`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from terwayctl.core.eniconf import LOW_FREE_IPS
from terwayctl.doctor.model import CheckSkipped, Need
from terwayctl.doctor.readers import CloudReader, KubeReader, NodeReader, Prober, Target

DEFAULT_CNI_CONF_DIR = Path("/etc/cni/net.d")
DEFAULT_CNI_BIN_DIR = Path("/opt/cni/bin")
DEFAULT_SOCKET = Path("/var/run/eni/eni.socket")
DEFAULT_EVENT_WINDOW = 3600.0
DEFAULT_PROBE_TIMEOUT = 3.0
DEFAULT_LEAK_GRACE = 600.0
DEFAULT_STATE_DIR = Path("/var/lib/cni/terway")

T = TypeVar("T")


@dataclass(frozen=True)
class DoctorOptions:
    """Everything `terwayctl doctor` was asked; the CLI parses its flags into this."""

    scopes: frozenset[str] = frozenset({"cloud", "node", "cluster"})
    check_ids: tuple[str, ...] = ()
    netns: str | None = None
    """The node namespace (a name in /run/netns or a path); None is the current one."""
    eni_conf_file: Path | None = None
    eni_conf_origin: str = "--eni-conf"
    """How eni_conf_file was given, for the evidence: the flag, or the variable TERWAYCTL_ENI_CONF."""
    instance_ids: tuple[str, ...] = ()
    instance_ids_origin: str = "--instance-id"
    """The flag, or the variable TERWAYCTL_INSTANCE_ID."""
    cni_conf_dir: Path = DEFAULT_CNI_CONF_DIR
    cni_bin_dir: Path = DEFAULT_CNI_BIN_DIR
    socket: Path = DEFAULT_SOCKET
    low_free_ips: int = LOW_FREE_IPS
    event_window: float = DEFAULT_EVENT_WINDOW
    """Seconds: events older than this are not "recent"."""
    probe: bool = False
    probe_from: str | None = None
    probe_source: str | None = None
    external_target: Target | None = None
    hostport_target: Target | None = None
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT
    leak_grace: float = DEFAULT_LEAK_GRACE
    """Seconds: a leaked-looking ENI (or an IP on an ENI) younger than this is not reported (it may be attaching)."""
    state_dir: Path = DEFAULT_STATE_DIR
    """The node daemon's state directory: its store says which IPs the daemon holds (cloud.leaked-enis)."""


Factory = Callable[[], Any]


def unavailable(reason: str) -> Factory:
    """A factory for an input that cannot be had, e.g. ``unavailable("no kubeconfig")``."""

    def factory() -> Any:
        raise CheckSkipped(reason)

    return factory


@dataclass
class Inputs:
    """One factory per input; each is called at most once, when a selected check first needs it."""

    cloud: Factory = field(default_factory=lambda: unavailable("no cloud access configured"))
    cluster: Factory = field(default_factory=lambda: unavailable("no Kubernetes cluster configured"))
    node: Factory = field(default_factory=lambda: unavailable("not looking at a node"))
    probe: Factory = field(default_factory=lambda: unavailable("active probes are off (pass --probe)"))


@dataclass(frozen=True)
class _Raised:
    error: Exception


class Context:
    """Handed to every check: the options, the readers and shared, cached facts."""

    def __init__(self, options: DoctorOptions, inputs: Inputs, *, now: Callable[[], float] = time.time) -> None:
        self.options = options
        self.inputs = inputs
        self.now = now
        self._resolved: dict[str, Any] = {}
        self._failed: dict[str, str] = {}
        self._closers: list[Callable[[], None]] = []
        self.cache: dict[str, Any] = {}

    def _get(self, name: str, factory: Factory) -> Any:
        if name in self._failed:
            raise CheckSkipped(self._failed[name])
        if name not in self._resolved:
            try:
                value = factory()
            except CheckSkipped as exc:
                self._failed[name] = exc.reason
                raise
            self._resolved[name] = value
            close = getattr(value, "close", None)
            if callable(close):
                self._closers.append(close)
        return self._resolved[name]

    @property
    def cloud(self) -> CloudReader:
        reader: CloudReader = self._get(Need.CLOUD, self.inputs.cloud)
        return reader

    @property
    def kube(self) -> KubeReader:
        reader: KubeReader = self._get(Need.CLUSTER, self.inputs.cluster)
        return reader

    @property
    def node(self) -> NodeReader:
        reader: NodeReader = self._get(Need.NODE, self.inputs.node)
        return reader

    @property
    def prober(self) -> Prober:
        reader: Prober = self._get(Need.PROBE, self.inputs.probe)
        return reader

    def has(self, need: Need) -> bool:
        """True when the input can be had (resolving it now if needed)."""
        getters: dict[Need, Callable[[], object]] = {
            Need.CLOUD: lambda: self.cloud, Need.CLUSTER: lambda: self.kube, Need.NODE: lambda: self.node,
            Need.PROBE: lambda: self.prober}
        try:
            getters[need]()
        except CheckSkipped:
            return False
        return True

    def cached(self, key: str, compute: Callable[[], T]) -> T:
        """A fact shared by several checks, computed once (a failure is kept and raised again)."""
        if key not in self.cache:
            try:
                self.cache[key] = compute()
            except Exception as exc:  # noqa: BLE001 - re-raised to every check that asks
                self.cache[key] = _Raised(exc)
        value = self.cache[key]
        if isinstance(value, _Raised):
            raise value.error
        result: T = value
        return result

    def close(self) -> None:
        while self._closers:
            close = self._closers.pop()
            with contextlib.suppress(Exception):  # closing must not hide the report
                close()
