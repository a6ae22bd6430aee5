"""The Terway CNI plugin (`terway`): a thin, standard-library-only shim over the node daemon.

The container runtime execs the plugin once per pod and verb; it validates its input the way the
CNI spec 1.1.0 asks, forwards one request to the daemon over a unix socket (`protocol`), and prints
the daemon's answer as a CNI result in the requested `cniVersion` (`results`).

Nothing here may import anything outside the standard library: the plugin's start-up is the pod's.
This file imports nothing, so `import terwayctl.cni.protocol` (the daemon's side) stays cheap too.
"""
