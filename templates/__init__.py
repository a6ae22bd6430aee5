"""The jinja2 manifest templates, shipped in the wheel as the package `terwayctl.templates`."""
