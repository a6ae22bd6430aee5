"""The project's docs and sources stand alone: they cite no file outside the repository (users get
the repository, not the design brief it was built from)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(r"DESIGN\.md|STYLE\.md|\.\./shared/")
PLACES = ("README.md", "CHANGELOG.md", "docs", "terwayctl", "templates", "shim", "bench", "Containerfile")


def _files() -> list[Path]:
    found: list[Path] = []
    for place in PLACES:
        path = ROOT / place
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(p for p in path.rglob("*") if p.is_file() and p.suffix in {".md", ".py", ".j2", ".go", ""}
                         and "__pycache__" not in p.parts)
    return found


def test_no_file_cites_a_document_outside_the_repository() -> None:
    offenders = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for path in _files()
                 for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
                 if OUTSIDE.search(line)]
    assert offenders == []
