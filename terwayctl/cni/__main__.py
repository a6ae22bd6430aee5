"""`python -m terwayctl.cni`: the same program as the `terway` console script."""

from terwayctl.cni.main import entry

entry()
