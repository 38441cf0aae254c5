"""The combined table: one row per claim, every ratio measured side by side in the same run.

    name | ours | baseline | ratio | target | verdict

`ratio` is defined per row (the `ratio_label` says what over what). `verdict` is "met",
"MISSED", or "info" for rows without a target. Nothing here asserts: benchmarks print.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    section: str
    name: str
    ours: str
    baseline: str
    ratio: float | None
    ratio_label: str = ""
    target: str = "-"
    ok: bool | None = None  # None: no target, informational

    @property
    def verdict(self) -> str:
        if self.ok is None:
            return "info"
        return "met" if self.ok else "MISSED"


def fmt_ratio(value: float | None, label: str = "") -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    text = f"{value:.2f}x" if value < 10 else f"{value:.1f}x"
    return f"{text} ({label})" if label else text


def table(rows: list[Row]) -> str:
    header = ["section", "name", "ours", "baseline", "ratio", "target", "verdict"]
    body = [[r.section, r.name, r.ours, r.baseline, fmt_ratio(r.ratio, r.ratio_label), r.target, r.verdict]
            for r in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    met = sum(r.ok is True for r in rows)
    missed = [r for r in rows if r.ok is False]
    text = f"{met} targets met, {len(missed)} missed, {sum(r.ok is None for r in rows)} informational rows"
    if missed:
        text += "\nmissed: " + "; ".join(f"{r.section}: {r.name}" for r in missed)
    return text
