"""A stateful Kubernetes API server on 127.0.0.1 for the tests and for `lab up --kube`
(terwayctl.lab.cluster), standard library + PyYAML.

It speaks enough of the real wire protocol for the real `kubernetes` client, including
`kubernetes.dynamic.DynamicClient`: discovery, CRUD, list selectors, resourceVersion conflicts,
the four PATCH types, server-side apply with managedFields, dryRun=All, and a DaemonSet controller
that tests drive (see `DaemonSetController`).
"""

from terwayctl.lab.kubeapi.server import DaemonSetController, KubeApiServer
from terwayctl.lab.kubeapi.store import ApiError, Store

__all__ = ["ApiError", "DaemonSetController", "KubeApiServer", "Store"]
