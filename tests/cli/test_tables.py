"""Tables on a terminal and in a pipe: ids and names are never cut (`imgbatch list`, `show`)."""

from __future__ import annotations

import pytest
from rich.cells import cell_len

from imgbatch.tables import Column, Grid, fit, to_tsv

from .conftest import plain

LONG_PREFIX = "STUDIO_NORTHWEST"  # a name of 35 characters: with its id, 73 of 80 columns
LONG_FILE = "STUDIO_NORTHWEST_2026-12-01_long_product_Front.png"
HUGE_FILE = "STUDIO_NORTHWEST_2026-12-01_extremely_long_product_name_seen_from_the_Front.png"
LONG_ERROR = ("the file is not an image in a supported format (checked by content, not name); "
              "it was uploaded as image/png")


@pytest.fixture
def long_batches(fake):
    fake.add_pipeline("web")
    fake.failing_files["short_Back.png"] = ("not_an_image", LONG_ERROR)
    first = fake.add_batch([LONG_FILE, "short_Back.png", HUGE_FILE], prefix=LONG_PREFIX)
    second = fake.add_batch(["a.png"], prefix="PL_DXB", processed=False)
    return [first, second]


def assert_fits(output: str, width: int) -> None:
    assert "…" not in output, output
    for line in output.splitlines():
        assert cell_len(line) <= width, f"{cell_len(line)} cells: {line!r}"


# -- list ----------------------------------------------------------------------------------


def test_list_in_a_pipe_is_tab_separated_and_never_cut(run, long_batches):
    result = run("list", "--ids")

    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split("\t") == ["base_directory_name", "files", "status", "uploaded", "processed",
                                  "created (UTC)", "id"]
    by_id = {row.split("\t")[-1]: row.split("\t") for row in rows}
    first = by_id[long_batches[0]["id"]]
    # What `cut -f1` gives is exactly the name the API knows, ready for the next command.
    assert first[0] == long_batches[0]["base_directory_name"] == f"{LONG_PREFIX}_2025-11-05_batch-1"
    assert first[1:5] == ["3", "completed_with_errors", "3/3", "3/3 1 failed"]
    second = by_id[long_batches[1]["id"]]
    assert second[2:5] == ["processing", "1/1", "0/1"]


def test_list_at_80_columns_drops_columns_before_cutting_names_or_ids(run, long_batches):
    result = run("list", "--ids", terminal=80)

    assert result.exit_code == 0, result.output
    out = plain(result.stdout)
    assert_fits(out, 80)
    for batch in long_batches:
        line = next(line for line in out.splitlines() if batch["id"] in line)
        assert batch["base_directory_name"] in line  # whole, on the same line as its id


def test_list_at_80_columns_without_ids_keeps_status_and_progress(run, long_batches):
    out = plain(run("list", terminal=80).stdout)

    assert_fits(out, 80)
    header = out.splitlines()[0].split()
    assert header[:2] == ["base_directory_name", "status"]
    assert "processed" in header  # wrapped if need be, dropped only after files and uploads
    row = next(line for line in out.splitlines() if long_batches[0]["base_directory_name"] in line)
    assert "completed_with_errors" in row


def test_list_on_a_wide_terminal_shows_every_column(run, long_batches):
    out = plain(run("list", terminal=160).stdout)

    assert out.splitlines()[0].split() == ["base_directory_name", "files", "status", "uploaded", "processed",
                                           "created", "(UTC)"]
    assert "3/3 1 failed" in out


def test_a_name_wider_than_the_terminal_wraps_but_is_not_cut(run, long_batches):
    out = plain(run("list", terminal=24).stdout)

    assert_fits(out, 24)
    name = long_batches[0]["base_directory_name"]
    lines = [line.strip() for line in out.splitlines()[1:]]
    assert name in "".join(lines)


# -- show ----------------------------------------------------------------------------------


def test_show_in_a_pipe_prints_details_and_a_tab_separated_file_table(run, long_batches):
    batch = long_batches[0]

    result = run("show", batch["id"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"ID               {batch['id']}" in lines
    assert "Processed        3/3: 2 succeeded, 1 failed" in lines
    table = lines[lines.index("Jobs (3)") + 1:]
    assert table[0].split("\t") == ["file", "status", "size", "outputs", "error"]
    rows = {row.split("\t")[0]: row.split("\t") for row in table[1:]}
    assert rows[LONG_FILE] == [LONG_FILE, "completed", "10 bytes", "jpeg 800x600 1.2 kB", "-"]
    assert rows[HUGE_FILE][1] == "completed"
    assert rows["short_Back.png"][1:3] == ["failed", "10 bytes"]
    assert rows["short_Back.png"][4] == f"not_an_image: {LONG_ERROR}"


def test_show_at_80_columns_fits_and_never_cuts_a_file_name(run, long_batches):
    result = run("show", long_batches[0]["id"], terminal=80)

    assert result.exit_code == 0, result.output
    out = plain(result.stdout)
    assert_fits(out, 80)
    lines = out.splitlines()
    assert long_batches[0]["id"] in out
    assert next(line for line in lines if LONG_FILE in line).split()[1] == "completed"
    # Wider than the terminal with its status: wrapped over two lines, every character kept.
    first = next(i for i, line in enumerate(lines) if line.startswith(HUGE_FILE[:40]))
    assert HUGE_FILE == lines[first].split()[0] + lines[first + 1].strip()
    # The error column did not fit: the errors follow the table, wrapped, every word there.
    errors = " ".join(" ".join(lines[lines.index("Errors") + 1:]).split())
    assert errors == f"short_Back.png: not_an_image: {LONG_ERROR}"


def test_show_on_a_wide_terminal_has_every_column(run, long_batches):
    out = plain(run("show", long_batches[0]["id"], terminal=200).stdout)

    assert_fits(out, 200)
    table = out.splitlines()[out.splitlines().index("Jobs (3)") + 1:]
    assert table[0].split() == ["file", "status", "size", "outputs", "error"]
    assert "Errors" not in out
    assert " ".join(LONG_ERROR.split()[:4]) in out


def test_pipelines_list_keeps_ids_whole_at_80_columns(run, fake):
    a = fake.add_pipeline("catalogue-web-large-retina", width=1600, quality=80)
    b = fake.add_pipeline("thumb", width=300, height=300, fit="cover")

    out = plain(run("pipelines", "list", terminal=80).stdout)

    assert_fits(out, 80)
    for p in (a, b):
        assert any(p["name"] in line and p["id"] in line for line in out.splitlines())


# -- the fitting rule itself ---------------------------------------------------------------


def test_fit_drops_the_least_important_columns_first():
    grid = Grid([Column("name"), Column("a", priority=1), Column("b", priority=3), Column("c", priority=2)])
    grid.add("n" * 20, "a" * 10, "b" * 10, "c" * 10)

    assert fit(grid, 200) == [0, 1, 2, 3]
    assert fit(grid, 20 + 2 + 10 + 2 + 10) == [0, 1, 3]  # b (priority 3) went first
    assert fit(grid, 32) == [0, 1]
    assert fit(grid, 10) == [0]  # the name is never dropped, even when it does not fit


def test_fit_counts_wrapping_columns_at_their_wrap_width():
    grid = Grid([Column("name"), Column("error", priority=1, wrap=8)])
    grid.add("n" * 20, "e" * 60)

    assert fit(grid, 30) == [0, 1]  # 20 + 2 + 8
    assert fit(grid, 29) == [0]


def test_tsv_keeps_tabs_and_line_breaks_inside_a_value_from_splitting_columns():
    grid = Grid([Column("file"), Column("error")])
    grid.add("a\tb.png", "line one\nline two")

    assert to_tsv(grid).splitlines() == ["file\terror", "a b.png\tline one line two"]
