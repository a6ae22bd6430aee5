"""Plain aligned columns, kubectl style, for table output.

Rich would take ~17 ms to import and ~0.5 s to lay out the whole 941-row catalog; a table of
plain strings needs neither, so `capacity` keeps within its start-up budget (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

GAP = "  "


def write_table(
    out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[str] = ()
) -> None:
    """Columns as wide as their widest cell; the columns named in `right` are right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    aligned_right = [h in right for h in headers]
    for cells in (headers, *rows):
        parts = [
            cell.rjust(width) if is_right else cell.ljust(width)
            for cell, width, is_right in zip(cells, widths, aligned_right, strict=True)
        ]
        out.write(GAP.join(parts).rstrip() + "\n")


def cell(value: object) -> str:
    """A table cell: '?' for an unknown (None) value."""
    return "?" if value is None else str(value)
