"""Tables that never cut a name or an id.

On a terminal a table fits the width: the least important columns are dropped first, then the
columns allowed to wrap are wrapped; a name or id is only ever wrapped (never shortened with
"…"), and only when it alone is wider than the terminal. Anywhere else (a pipe, a file) the
table is plain tab-separated text with every column whole, so `cut -f1` or `awk -F'\\t'`
gives back exactly what the API sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

Cell = str | Text
GAP = 2  # cells between columns (rich's default padding of one on each side)


@dataclass(frozen=True)
class Column:
    header: str
    priority: int = 0  # 0: always shown; on a narrow terminal the highest number goes first
    wrap: int | None = None  # may wrap on a terminal, down to this many cells
    justify: str = "left"
    style: str | None = None


@dataclass
class Grid:
    """A table's content, independent of where it is shown."""

    columns: Sequence[Column]
    rows: list[Sequence[Cell]] = field(default_factory=list)

    def add(self, *cells: Cell) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append(cells)


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def _widths(grid: Grid) -> list[int]:
    return [max([cell_len(c.header), *(cell_len(_plain(row[i])) for row in grid.rows)])
            for i, c in enumerate(grid.columns)]


def _least(column: Column) -> int | None:
    """The narrowest a wrapping column may get: its wrap width, but never below its header."""
    return max(column.wrap, cell_len(column.header)) if column.wrap else None


def _needed(grid: Grid, widths: list[int], keep: list[int]) -> int:
    """Cells the kept columns need at least: wrapping columns at their narrowest."""
    cols = grid.columns
    return sum(min(widths[i], _least(cols[i]) or widths[i]) for i in keep) + GAP * (len(keep) - 1)


def fit(grid: Grid, width: int) -> list[int]:
    """Indexes of the columns shown in `width` cells: drop by priority until the rest fit."""
    widths = _widths(grid)
    keep = list(range(len(grid.columns)))
    while _needed(grid, widths, keep) > width:
        droppable = [i for i in keep if grid.columns[i].priority > 0]
        if not droppable:
            break
        keep.remove(max(droppable, key=lambda i: (grid.columns[i].priority, i)))
    return keep


def to_rich(grid: Grid, width: int, keep: list[int] | None = None) -> Table:
    keep = fit(grid, width) if keep is None else keep
    # Even the columns that are never dropped are wider than the terminal: wrap them all
    # (every character stays on screen) rather than let rich shorten them with "…".
    # rich then narrows the widest columns first, so a long name gives way before a short id.
    squeeze = _needed(grid, _widths(grid), keep) > width
    table = Table(box=None, header_style="bold", pad_edge=False)
    for i in keep:
        c = grid.columns[i]
        table.add_column(c.header, justify=c.justify, style=c.style, no_wrap=not (c.wrap or squeeze),
                         overflow="fold", min_width=None if squeeze else _least(c))
    for row in grid.rows:
        table.add_row(*(row[i] for i in keep))
    return table


def _tsv_field(cell: Cell) -> str:
    # A tab or line break inside a value would shift every column after it.
    return " ".join(_plain(cell).replace("\t", " ").splitlines())


def to_tsv(grid: Grid) -> str:
    lines = ["\t".join(c.header for c in grid.columns)]
    lines += ["\t".join(_tsv_field(cell) for cell in row) for row in grid.rows]
    return "\n".join(lines)
