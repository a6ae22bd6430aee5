"""The static CNI shim's Go sources, shipped in the wheel as `terwayctl.shim` so that
`terwayctl cni build-shim` can build it anywhere Go is installed."""
