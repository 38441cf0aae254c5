"""Entry names, manifest and ZIP members of a batch download (chalicelib/domain/archive.py); the
bytes come from the one ZIP writer (domain/zip_layout.py, tested in test_zip_layout.py). No I/O
but temp files.

`unzip` and `bsdtar` checks need the Debian packages `unzip` and `libarchive-tools` (CI installs
them); they are skipped, saying so, where the binary is absent.
"""
import csv
import io
import os
import random
import shutil
import subprocess
import tracemalloc
import unicodedata
import zipfile
import zlib
from datetime import datetime

import pytest
from hypothesis import given, settings, strategies as st

from chalicelib.domain.archive import (
    MANIFEST_COLUMNS, ArchiveJob, ArchiveOutput, PlannedEntry, archive_members, manifest_arcname, plan_archive,
    safe_entry_name,
)
from chalicelib.domain.zip_layout import layout_zip, stream

BASE = "PL_DXB_2025-11-05_batch-1"


def out(pipeline_id="p1", name="Web", key=None, ext="jpg", size=10, w=800, h=600, crc=None):
    return ArchiveOutput(pipeline_id, name, key or f"outputs/{pipeline_id}/{random.random()}",
                         ext, size, w, h, crc32=crc)


def done(file_name, *outputs):
    return ArchiveJob(file_name, "completed", None, None, tuple(outputs))


def rows(manifest: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(manifest.decode("utf-8-sig"))))


def names(entries):
    return [e.arcname for e in entries]


# --- layout --------------------------------------------------------------------------------

def test_one_pipeline_puts_files_directly_in_the_base_folder():
    entries, _ = plan_archive(BASE, [done("PL_DXB191_Front.png", out(key="k1")),
                                     done("PL_DXB191_Back.png", out(key="k2"))], ["Web"])
    assert names(entries) == [f"{BASE}/PL_DXB191_Back.jpg", f"{BASE}/PL_DXB191_Front.jpg"]
    assert [e.key for e in entries] == ["k2", "k1"]
    assert manifest_arcname(BASE) == f"{BASE}/manifest.csv"


def test_several_pipelines_get_one_folder_each_in_batch_order():
    jobs = [done("b.png", out("p1", "Web", "b1"), out("p2", "Print", "b2", ext="png")),
            done("a.png", out("p1", "Web", "a1"), out("p2", "Print", "a2", ext="png"))]
    entries, _ = plan_archive(BASE, jobs, ["Web", "Print"])
    assert names(entries) == [f"{BASE}/Web/a.jpg", f"{BASE}/Web/b.jpg",
                              f"{BASE}/Print/a.png", f"{BASE}/Print/b.png"]
    assert [e.key for e in entries] == ["a1", "b1", "a2", "b2"]


def test_plan_does_not_depend_on_job_order():
    jobs = [done(f"f{i}.png", out(key=f"k{i}")) for i in range(20)]
    expected = plan_archive(BASE, jobs, ["Web"])
    random.Random(1).shuffle(jobs)
    assert plan_archive(BASE, jobs, ["Web"]) == expected


def test_only_completed_jobs_contribute_files():
    jobs = [done("a.png", out()), ArchiveJob("b.png", "failed", "decode_error", "bad", ()),
            ArchiveJob("c.png", "processing", None, None, (out(),))]
    entries, _ = plan_archive(BASE, jobs, ["Web"])
    assert names(entries) == [f"{BASE}/a.jpg"]


# --- unique names -------------------------------------------------------------------------

def test_colliding_outputs_are_numbered_and_the_manifest_names_the_real_file():
    jobs = [done("a.png", out(key="from-png")), done("a.jpg", out(key="from-jpg"))]
    entries, manifest = plan_archive(BASE, jobs, ["Web"])
    assert [(e.arcname, e.key) for e in entries] == [(f"{BASE}/a.jpg", "from-jpg"),
                                                      (f"{BASE}/a (2).jpg", "from-png")]
    assert [(r["file"], r["output name"]) for r in rows(manifest)] == [("a.jpg", "a.jpg"),
                                                                       ("a.png", "a (2).jpg")]


def test_a_free_name_is_never_taken_by_a_renamed_one():
    jobs = [done("a (2).png", out(key="real")), done("a.png", out(key="x")),
            done("a.webp", out(key="y"))]
    entries, _ = plan_archive(BASE, jobs, ["Web"])
    assert {e.key: e.arcname for e in entries} == {
        "real": f"{BASE}/a (2).jpg", "x": f"{BASE}/a.jpg", "y": f"{BASE}/a (3).jpg"}


def test_names_differing_only_in_case_do_not_overwrite_each_other_on_extraction():
    entries, _ = plan_archive(BASE, [done("A.png", out()), done("a.png", out())], ["Web"])
    assert names(entries) == [f"{BASE}/A.jpg", f"{BASE}/a (2).jpg"]


def test_pipelines_with_the_same_safe_name_get_separate_folders():
    jobs = [done("a.png", out("p1", "Web/1", "k1"), out("p2", "Web_1", "k2"))]
    entries, manifest = plan_archive(BASE, jobs, ["Web/1", "Web_1"])
    assert names(entries) == [f"{BASE}/Web_1/a.jpg", f"{BASE}/Web_1 (2)/a.jpg"]
    assert [r["output name"] for r in rows(manifest)] == ["Web_1/a.jpg", "Web_1 (2)/a.jpg"]


def test_a_pipeline_folder_cannot_shadow_the_manifest():
    jobs = [done("a.png", out("p1", "manifest.csv"), out("p2", "Web"))]
    entries, _ = plan_archive(BASE, jobs, ["manifest.csv", "Web"])
    assert f"{BASE}/manifest (2).csv/a.jpg" in names(entries)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=40),
                          st.sampled_from(["jpg", "png", "webp"]),
                          st.integers(0, 2)), max_size=25),
       st.lists(st.text(max_size=12), min_size=1, max_size=3))
def test_any_names_give_unique_contained_entries(files, pipeline_names):
    jobs = [done(name, *(out(f"p{p}", pipeline_names[p % len(pipeline_names)], ext=ext)
                         for p in range(n + 1)))
            for name, ext, n in files]
    entries, manifest = plan_archive(BASE, jobs, pipeline_names)
    arcnames = names(entries) + [manifest_arcname(BASE)]
    assert len({a.casefold() for a in arcnames}) == len(arcnames)
    for arcname in arcnames:
        assert arcname.startswith(BASE + "/") and not arcname.startswith("/")
        parts = arcname.split("/")
        assert len(parts) in (2, 3)
        assert all(p and p == safe_entry_name(p) for p in parts)
        assert ".." not in parts and "\\" not in arcname
    assert len(rows(manifest)) == sum(n + 1 for _, _, n in files)


# --- safe_entry_name ----------------------------------------------------------------------

@pytest.mark.parametrize("raw, safe", [
    ("PL_DXB191_Front.png", "PL_DXB191_Front.png"),
    ("../../etc/passwd", "_.._etc_passwd"),
    ("..", "_"),
    ("", "_"),
    ("  .hidden.png ", "hidden.png"),
    ("a\\b/c.png", "a_b_c.png"),
    ("evil\x00\x1f\x7f.png", "evil.png"),
    ("x\u202egpj.exe", "xgpj.exe"),
    ("trailing. . ", "trailing"),
    ("CON.png", "_CON.png"),
    ('a<b>c:d"e|f?g*h.png', "a_b_c_d_e_f_g_h.png"),
    ("Cafe\u0301.png", "Caf\u00e9.png"),   # NFD in, NFC out
])
def test_safe_entry_name(raw, safe):
    assert safe_entry_name(raw) == safe


@given(st.text())
def test_safe_entry_name_is_one_short_non_empty_component(raw):
    safe = safe_entry_name(raw)
    assert safe and safe == safe_entry_name(safe)
    assert "/" not in safe and "\\" not in safe and safe not in (".", "..")
    assert not safe.startswith((".", " ")) and not safe.endswith((".", " "))
    assert len(safe.encode()) <= 255 and unicodedata.is_normalized("NFC", safe)
    assert not any(unicodedata.category(c) == "Cc" for c in safe)


# --- manifest -----------------------------------------------------------------------------

def test_manifest_has_a_row_per_output_and_per_unfinished_job():
    jobs = [done("ok.png", out("p1", "Web", size=123, w=800, h=533),
                 out("p2", "Print", ext="png", size=456, w=2000, h=1333)),
            ArchiveJob("bad.png", "failed", "decode_error", "not an image", ()),
            ArchiveJob("stop.png", "cancelled", None, None, ()),
            ArchiveJob("late.png", "failed", "upload_expired", "never uploaded", ()),
            ArchiveJob("wait.png", "awaiting_upload", None, None, ()),
            ArchiveJob("busy.png", "processing", None, None, ())]
    _, manifest = plan_archive(BASE, jobs, ["Web", "Print"])
    assert manifest.startswith(b"\xef\xbb\xbf")  # BOM: Excel then reads UTF-8
    assert manifest.decode("utf-8-sig").splitlines()[0] == ",".join(MANIFEST_COLUMNS)
    assert [list(r.values()) for r in rows(manifest)] == [
        ["bad.png", "", "failed", "decode_error: not an image", "", "", ""],
        ["busy.png", "", "processing", "", "", "", ""],
        ["late.png", "", "failed", "upload_expired: never uploaded", "", "", ""],
        ["ok.png", "Web", "completed", "", "Web/ok.jpg", "123", "800x533"],
        ["ok.png", "Print", "completed", "", "Print/ok.png", "456", "2000x1333"],
        ["stop.png", "", "cancelled", "", "", "", ""],
        ["wait.png", "", "awaiting_upload", "", "", "", ""],
    ]


def test_manifest_cells_cannot_become_formulas():
    jobs = [done("=HYPERLINK(1).png", out()), done("+1.png", out()), done("@x.png", out()),
            ArchiveJob("-2.png", "failed", None, "=cmd|' /C calc'!A0", ())]
    _, manifest = plan_archive(BASE, jobs, ["Web"])
    cells = [c for r in rows(manifest) for c in r.values() if c]
    assert all(not c.startswith(("=", "+", "-", "@")) for c in cells)
    assert "'=HYPERLINK(1).png" in cells and "'=HYPERLINK(1).jpg" in cells


def test_manifest_handles_commas_quotes_and_newlines_in_names():
    jobs = [ArchiveJob('a,"b".png', "failed", "x", "line1\nline2", ())]
    _, manifest = plan_archive(BASE, jobs, ["Web"])
    assert rows(manifest)[0]["file"] == 'a,"b".png'
    assert rows(manifest)[0]["error"] == "x: line1\nline2"


# --- the members the planned entries make (written by zip_layout.py) ---------------------------

def build(objects: dict[str, bytes], file_names=None, pipelines=("Web",)):
    """Plan an archive whose outputs are `objects` (key -> bytes) and write it; return zip bytes."""
    jobs = [done(name, out(key=key, size=len(data), crc=zlib.crc32(data)))
            for (key, data), name in zip(objects.items(), file_names or [f"{k}.png" for k in objects])]
    entries, manifest = plan_archive(BASE, jobs, list(pipelines))
    layout = layout_zip(archive_members(entries, manifest, manifest_arcname(BASE)), datetime(2026, 1, 1))
    data = b"".join(stream(layout.segments, lambda s: [objects[s.key][s.start:s.start + s.length]]))
    return data, entries, manifest


def check_zip(data: bytes, expected: dict[str, bytes]):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == list(expected)
        for name, content in expected.items():
            assert zf.read(name) == content
        return zf.infolist()


def tool(name):
    if shutil.which(name) is None:
        pytest.skip(f"{name} not installed (Debian: unzip / libarchive-tools); CI installs them")
    return name


def test_planned_entries_carry_the_recorded_crc():
    entries, _ = plan_archive(BASE, [done("a.png", out(key="k", crc=1234))], ["Web"])
    assert entries == [PlannedEntry(f"{BASE}/a.jpg", "k", 10, 1234)]


def test_the_manifest_comes_first_deflated_then_every_entry_stored():
    objects = {"k1": os.urandom(300_000), "k2": b"", "k3": os.urandom(1)}
    data, entries, manifest = build(objects)
    infos = check_zip(data, {manifest_arcname(BASE): manifest,
                             **{e.arcname: objects[e.key] for e in entries}})
    assert infos[0].compress_type == zipfile.ZIP_DEFLATED
    assert {i.compress_type for i in infos[1:]} == {zipfile.ZIP_STORED}


def test_an_entry_without_its_crc_cannot_be_laid_out():
    entries, manifest = plan_archive(BASE, [done("a.png", out(key="k"))], ["Web"])
    with pytest.raises(ValueError, match="CRC-32"):
        archive_members(entries, manifest, manifest_arcname(BASE))


def test_archive_passes_unzip_and_bsdtar(tmp_path):
    objects = {f"k{i}": os.urandom(random.randint(0, 70_000)) for i in range(5)}
    data, entries, _ = build(objects, pipelines=("Web", "Print"))
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    subprocess.run([tool("unzip"), "-t", str(path)], check=True, capture_output=True)
    listed = subprocess.run([tool("bsdtar"), "-tf", str(path)], check=True, capture_output=True,
                            text=True).stdout.splitlines()
    assert listed == [manifest_arcname(BASE)] + names(entries)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=20), st.binary(max_size=300)),
                max_size=8))
def test_any_plan_makes_a_valid_zip(files):
    objects = {f"k{i}": content for i, (_, content) in enumerate(files)}
    data, entries, manifest = build(objects, [name for name, _ in files])
    check_zip(data, {manifest_arcname(BASE): manifest,
                     **{e.arcname: objects[e.key] for e in entries}})


def zip_peak_memory(total_mb: int) -> int:
    block = os.urandom(64 * 1024)
    per_object = 4 * 1024 * 1024
    count = total_mb * 1024 * 1024 // per_object
    entries = [PlannedEntry(f"{BASE}/{i}.jpg", str(i), per_object, 0) for i in range(count)]

    def read(source):
        for _ in range(source.length // len(block)):
            yield bytes(bytearray(block))  # a fresh buffer per chunk, as a real reader returns

    tracemalloc.start()
    try:
        layout = layout_zip(archive_members(entries, b"m", "m.csv"), datetime(2026, 1, 1))
        written = sum(len(chunk) for chunk in stream(layout.segments, read))
        return tracemalloc.get_traced_memory()[1], written
    finally:
        tracemalloc.stop()


def test_writing_memory_does_not_grow_with_archive_size():
    small_peak, small_written = zip_peak_memory(20)
    large_peak, large_written = zip_peak_memory(200)
    assert large_written > 200 * 1024 * 1024
    # 10x the data (and 10x the entries: 50 vs 5 headers and central directory records of ~100 bytes)
    assert large_peak - small_peak < 256 * 1024, (small_peak, large_peak)
    assert large_peak < 2 * 1024 * 1024
