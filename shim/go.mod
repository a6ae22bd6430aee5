module terwayctl/shim

go 1.19
