"""terwayctl: administration tool for the Terway container network on Alibaba Cloud."""

__version__ = "0.1.0"
