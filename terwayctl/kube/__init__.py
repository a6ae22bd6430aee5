"""Kubernetes: client factory, apply, ConfigMap edits, rollouts, node/pod/event reads.

The only package that imports `kubernetes` (inside functions, never at import time of the CLI).
"""
