"""Tools of the packaged-node test (tests/test_packaged_node.py, docs/image.md): a cached Debian base
image (`base`), podman with private storage and config (`podman`), the node image build (`image`), a
mini kubelet that runs a rendered DaemonSet's pod template (`kubelet`), the node's own container
runtime (`runtime`) and the API server's certificate (`tls`)."""
