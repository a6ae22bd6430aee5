"""Install manifests: validated values (`values.py`) rendered from the packaged templates (`render.py`).

Imports no typer, rich or kubernetes; jinja2 and yaml only inside the functions that use them.
"""

from terwayctl.manifests.render import (
    conflist,
    dump_object,
    eni_conf,
    object_file_name,
    render_files,
    render_objects,
    render_warnings,
    render_yaml,
)
from terwayctl.manifests.values import (
    KEYS,
    InvalidValues,
    PoolValues,
    Problem,
    ResourceValues,
    Values,
    load_values,
    values_from_mapping,
)

__all__ = [
    "KEYS",
    "InvalidValues",
    "PoolValues",
    "Problem",
    "ResourceValues",
    "Values",
    "conflist",
    "dump_object",
    "eni_conf",
    "load_values",
    "object_file_name",
    "render_files",
    "render_objects",
    "render_warnings",
    "render_yaml",
    "values_from_mapping",
]
