"""Test support for the CNI plugin: a daemon speaking its protocol, a conflist runtime."""
