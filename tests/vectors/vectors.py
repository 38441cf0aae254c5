"""The shared test vectors (JSON beside this file), loaded once for every test that checks them.

The same files are read by the Python domain's tests, the CLI's and the browser's (tests/web),
so a rule written in two languages is held to one list of cases.
"""
from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(name: str) -> dict:
    # A missing or broken vector file must fail the run, never skip it.
    return json.loads((HERE / name).read_text(encoding="utf-8"))


def ids(cases: list[dict], key: str = "description") -> list[str]:
    return [case[key] for case in cases]


NAMING = load("naming.json")
SNIFFING = load("sniffing.json")
SIGNATURES = load("signatures.json")
