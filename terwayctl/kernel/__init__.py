"""Kernel plumbing below the daemon and the lab: network namespaces (`netns`), raw netlink helpers
(`netlink`) and the pod datapath layouts (`datapath`: veth + policy routing, ipvlan, exclusive ENI,
tc). Only this package imports pyroute2. It knows nothing of the cloud, the emulator or the daemon.
"""
