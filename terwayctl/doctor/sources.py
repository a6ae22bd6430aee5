"""The real inputs: the cloud client, the Kubernetes API, the node system and the prober.

`real_inputs(...)` builds an `Inputs` whose factories connect on first use and turn "cannot be
had" (no credentials, no region, no kubeconfig, API server unreachable) into a skip reason.
`KubeSource` is the `KubeReader` over `terwayctl.kube`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from terwayctl.core import defaults
from terwayctl.doctor.context import DoctorOptions, Inputs
from terwayctl.doctor.model import CheckSkipped
from terwayctl.doctor.readers import ClusterNode, DaemonSetState, KubeReader, NodeReader, PodLog, Prober
from terwayctl.kube.api import ObjectReader
from terwayctl.kube.errors import KubeError, KubeNotFound
from terwayctl.kube.reads import (
    EventInfo,
    PodInfo,
    PodLogReader,
    find_terway_daemonset,
    list_events,
    list_pods,
    node_from_object,
    read_pod_log,
)

DAEMON_CONTAINER = "terway"
"""The daemon's container in the rendered DaemonSet (templates/): its log is the daemon's."""


@runtime_checkable
class _LogCapable(ObjectReader, PodLogReader, Protocol):
    """The real `KubeClient`: objects and pod logs."""


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class KubeSource:
    """`KubeReader` over an `ObjectReader` (the real `KubeClient`); closes the client it was given."""

    def __init__(self, reader: ObjectReader, namespace: str = defaults.DEFAULT_NAMESPACE) -> None:
        self.reader = reader
        self._namespace = namespace
        self._events: list[dict[str, Any]] | None = None

    @property
    def namespace(self) -> str:
        return self._namespace

    def close(self) -> None:
        close = getattr(self.reader, "close", None)
        if callable(close):
            close()

    def nodes(self) -> list[ClusterNode]:
        found = []
        for obj in self.reader.list("v1", "nodes"):
            info = node_from_object(obj)
            provider = str((obj.get("spec") or {}).get("providerID") or "")
            tail = provider.rsplit("/", 1)[-1].rsplit(".", 1)[-1]
            found.append(ClusterNode(
                name=info.name, instance_id=tail if tail.startswith("i-") else None,
                instance_type=info.instance_type, zone=info.zone, max_pods=info.capacity_pods,
                allocatable_pods=info.allocatable_pods, terway_config=info.terway_config))
        return sorted(found, key=lambda n: n.name)

    def pods(self) -> list[PodInfo]:
        return list_pods(self.reader)

    def events(self) -> list[EventInfo]:
        return list_events(self.reader)

    def event_times(self) -> Mapping[tuple[str, str], str]:
        times = {}
        for obj in self.reader.list("v1", "events"):
            meta = obj.get("metadata") or {}
            when = obj.get("lastTimestamp") or obj.get("eventTime") or obj.get("firstTimestamp") \
                or meta.get("creationTimestamp")
            if when:
                times[(str(meta.get("namespace", "")), str(meta.get("name", "")))] = str(when)
        return times

    def config_map(self, name: str) -> Mapping[str, str] | None:
        try:
            obj = self.reader.get("v1", "configmaps", name, self._namespace)
        except KubeNotFound:
            return None
        return {str(k): str(v) for k, v in (obj.get("data") or {}).items()}

    def terway_logs(self, since_seconds: int, tail_lines: int) -> list[PodLog]:
        found = find_terway_daemonset(self.reader, self._namespace)
        if found is None or not isinstance(self.reader, _LogCapable):
            return []
        selector = ",".join(f"{k}={v}" for k, v in sorted(found.match_labels.items()))
        logs = []
        for obj in self.reader.list("v1", "pods", self._namespace, label_selector=selector):
            meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
            names = [str(c.get("name")) for c in spec.get("containers") or []]
            container = DAEMON_CONTAINER if DAEMON_CONTAINER in names or not names else names[0]
            name, node = str(meta.get("name", "")), str(spec.get("nodeName") or "")
            try:
                lines = read_pod_log(self.reader, self._namespace, name, container, since_seconds, tail_lines)
            except KubeError as exc:
                logs.append(PodLog(node, self._namespace, name, container, error=exc.message))
                continue
            logs.append(PodLog(node, self._namespace, name, container, tuple(lines)))
        return sorted(logs, key=lambda p: (p.node, p.pod))

    def terway_daemonset(self) -> DaemonSetState | None:
        found = find_terway_daemonset(self.reader, self._namespace)
        if found is None:
            return None
        status = self.reader.get("apps/v1", "daemonsets", found.name, self._namespace).get("status") or {}
        return DaemonSetState(
            name=found.name, namespace=found.namespace, mode=found.mode,
            desired=_int(status.get("desiredNumberScheduled")), ready=_int(status.get("numberReady")),
            updated=_int(status.get("updatedNumberScheduled")), available=_int(status.get("numberAvailable")),
        )


def cloud_factory(region: str | None, profile: str | None, endpoint: str | None) -> Any:
    def factory() -> Any:
        from terwayctl.cloud.errors import CredentialsNotFound, RegionNotFound
        from terwayctl.cloud.session import build_client

        try:
            return build_client(region=region, profile=profile, endpoint=endpoint)
        except (CredentialsNotFound, RegionNotFound) as exc:
            raise CheckSkipped(f"no cloud access: {exc.message}") from None

    return factory


def kube_factory(kubeconfig: str | None, context: str | None, namespace: str) -> Any:
    def factory() -> KubeReader:
        from terwayctl.kube.client import connect
        from terwayctl.kube.errors import KubeConfigError, KubeUnavailable

        try:
            client = connect(kubeconfig, context, request_timeout=10.0)
        except (KubeConfigError, KubeUnavailable) as exc:
            raise CheckSkipped(f"no cluster: {exc.message}") from None
        return KubeSource(client, namespace)

    return factory


def node_factory(netns: str | None) -> Callable[[], NodeReader]:
    def factory() -> NodeReader:
        from terwayctl.doctor.system import SystemNode  # pyroute2: only when a node check runs

        return SystemNode(netns)

    return factory


def probe_factory(options: DoctorOptions) -> Callable[[], Prober]:
    def factory() -> Prober:
        from terwayctl.doctor.system import SystemProber

        return SystemProber(options.netns, options.probe_from, options.probe_source)

    return factory


def real_inputs(
    options: DoctorOptions,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str = defaults.DEFAULT_NAMESPACE,
    region: str | None = None,
    profile: str | None = None,
    endpoint: str | None = None,
) -> Inputs:
    """The inputs of a real run: each connects (or creates its namespace) only when first needed."""
    inputs = Inputs(
        cloud=cloud_factory(region, profile, endpoint),
        cluster=kube_factory(kubeconfig, context, namespace),
        node=node_factory(options.netns),
    )
    if options.probe:
        inputs.probe = probe_factory(options)
    return inputs
