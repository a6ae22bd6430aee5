"""Names and defaults shared by every layer (Terway's and Alibaba Cloud's names and numbers)."""

from __future__ import annotations

DEFAULT_VPC_CIDR = "192.168.0.0/16"
DEFAULT_NODE_VSWITCH_CIDR = "192.168.0.0/19"
DEFAULT_POD_VSWITCH_CIDR = "192.168.32.0/19"
DEFAULT_SERVICE_CIDR = "172.21.0.0/20"
DEFAULT_VSWITCH_PREFIX = 19
RECOMMENDED_POD_VSWITCH_PREFIX = 19

# Alibaba Cloud keeps the first and the last three addresses of every vSwitch.
VSWITCH_RESERVED_ADDRESSES = 4
VSWITCH_MIN_PREFIX = 16
VSWITCH_MAX_PREFIX = 29
VPC_MIN_PREFIX = 8
VPC_MAX_PREFIX = 24
# A VPC gets one IPv6 /56 from Alibaba Cloud; each vSwitch takes one /64 of it.
VPC_IPV6_VSWITCH_SLOTS = 256

PRIVATE_VPC_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
# Alibaba Cloud services live in 100.64.0.0/10; docker's default bridge uses 172.17.0.0/16.
CLOUD_SERVICE_RANGE = "100.64.0.0/10"
DOCKER_DEFAULT_BRIDGE = "172.17.0.0/16"

# ACK refuses nodes whose pod limit is not above these.
ACK_MIN_SHARED_ENI_PODS = 11
ACK_MIN_EXCLUSIVE_ENI_PODS = 6
# The terway and kube-proxy pods run in the host network and take no pod IP.
DEFAULT_HOST_NETWORK_PODS = 2

ENI_CONFIG_NAME = "eni-config"
ENI_CONF_KEY = "eni_conf"
DAEMONSET_ENIIP = "terway-eniip"
DAEMONSET_ENI = "terway-eni"
DEFAULT_NAMESPACE = "kube-system"
