"""The node daemon: the IP pool (shared-ENI multi-IP or exclusive ENI), its SQLite store, the
CNI socket server, reconciliation with the kernel and the cloud, and metrics (docs/node.md).

Modules: `config` (eni_conf, identity, paths), `cloudapi` (the narrow `EniCloud` Protocol that
`terwayctl.cloud.CloudClient` satisfies, and call metering), `store` (SQLite), `pool` (refills),
`reconcile` (start-up repair), `cluster` (the narrow `Cluster` Protocol of the API server reads:
pod annotations, pod GC, eni_conf from ConfigMaps), `service` (`Daemon`: the CNI verbs), `server`
(the unix socket and metrics servers, `Running`), `check` (`ipam check`), `client` (asking a
running daemon), `metrics`, `logfmt`. The kernel side (namespaces, netlink, datapath) lives in
`terwayctl.kernel`; the node agent never imports the emulator or the lab. The package itself
imports nothing, so `config` and `client` stay cheap and free of pyroute2.
"""
