"""The hostile/odd image corpus kept with the tests (tests/data/corpus: Pillow's test images,
MIT-CMU; see its README.md and LICENSE-Pillow.txt).

A missing corpus is an error, never a skip: ROWS is read when a test module imports this, so
collection fails and says where the corpus should be.
"""
from __future__ import annotations

import csv
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
FILES = CORPUS / "files"
MANIFEST = CORPUS / "MANIFEST.csv"


def _rows() -> list[dict]:
    if not MANIFEST.is_file():
        raise FileNotFoundError(f"the test corpus is missing: {MANIFEST} not found (it is part of the repository)")
    rows = list(csv.DictReader(MANIFEST.open(newline="")))
    missing = [r["file"] for r in rows if not (CORPUS / r["file"]).is_file()]
    if missing:
        raise FileNotFoundError(f"the test corpus is incomplete: {', '.join(missing)} not found under {CORPUS}")
    return rows


ROWS = _rows()


def path(name: str) -> Path:
    """A corpus file by name (files/<name>)."""
    p = FILES / name
    if not p.is_file():
        raise FileNotFoundError(f"{name} is not in the test corpus ({FILES})")
    return p
