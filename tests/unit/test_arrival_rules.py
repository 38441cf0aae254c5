"""The pure rules of arrival: how a file is cut into parts and whether S3's parts complete it, the
drop-folder key layout, markers and listings, and what makes a large upload safe to decode."""
from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from chalicelib.domain import imaging, large_inputs
from chalicelib.domain.batches import Limits
from chalicelib.domain.dropfolders import drop_batch_id, drop_job_id, list_folder, parse_marker
from chalicelib.domain.keys import DropKey, parse_drop_key, parse_upload_key
from chalicelib.domain.multipart import MAX_PARTS, MIB, PartPlan, plan_parts, uses_multipart
from chalicelib.domain.validation import Invalid
from tests.large_files import layered_tiff, rgba16_tiff


# -- parts -------------------------------------------------------------------------------

@given(st.integers(min_value=1, max_value=5 * 1024 ** 4), st.sampled_from([5 * MIB, 16 * MIB, 64 * MIB]))
def test_a_plan_covers_the_file_exactly_within_s3s_rules(size, preferred):
    plan = plan_parts(size, preferred)
    assert 1 <= plan.count <= MAX_PARTS and plan.part_size % MIB == 0 and plan.part_size >= 5 * MIB
    assert sum(plan.length(n) for n in range(1, plan.count + 1)) == size
    assert all(plan.length(n) == plan.part_size for n in range(1, plan.count))
    assert 1 <= plan.length(plan.count) <= plan.part_size
    assert plan.offset(plan.count) + plan.length(plan.count) == size


def test_the_part_size_grows_only_when_10000_parts_would_not_do():
    assert plan_parts(300 * MIB, 16 * MIB) == PartPlan(300 * MIB, 16 * MIB)
    assert plan_parts(300 * MIB, 16 * MIB).count == 19
    assert plan_parts(1024 ** 4, 16 * MIB).part_size == 105 * MIB   # 1 TiB: 9,987 parts
    with pytest.raises(ValueError):
        plan_parts(0, 16 * MIB)
    assert uses_multipart(64 * MIB + 1, 64 * MIB) and not uses_multipart(64 * MIB, 64 * MIB)


def test_parts_held_are_checked_against_the_plan_and_problems_named():
    plan = plan_parts(12 * MIB, 5 * MIB)   # 5, 5, 2 MiB
    check = plan.check({1: 5 * MIB, 2: 1000, 7: 5 * MIB})
    assert (check.uploaded, check.missing, check.extra) == ([1], [3], [7])
    assert check.to_send == [2, 3] and check.bytes_uploaded == 5 * MIB
    problem = check.completion_problem("big.tif")
    assert problem.startswith("big.tif: cannot complete the upload: part 2 is 1000 bytes, expected 5242880; "
                              "part 3 is missing")
    assert "Upload parts 2, 3" in problem
    assert plan.check({1: 5 * MIB, 2: 5 * MIB, 3: 2 * MIB}).completion_problem("big.tif") is None
    many = plan_parts(100 * MIB, 5 * MIB).check({})
    assert "parts 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 10 more are missing" in many.completion_problem("x")


# -- keys ---------------------------------------------------------------------------------

def test_drop_keys_have_a_layout_of_their_own():
    assert parse_drop_key("drop/studio/shoot 1/PL_A_Front.png") == DropKey("studio", "shoot 1", "PL_A_Front.png")
    assert parse_drop_key("drop/studio/shoot/_READY").is_marker
    assert parse_drop_key("drop/studio/shoot/_READY").folder_prefix == "drop/studio/shoot/"
    for other in ("drop/studio/shoot/", "drop/studio/shoot/sub/a.png", "drop/studio/a.png", "drop//x/a.png",
                  "uploads/b/j/a.png", "dropx/studio/shoot/a.png"):
        assert parse_drop_key(other) is None, other
    assert parse_upload_key("drop/studio/shoot/a.png") is None


def test_ids_are_derived_so_deliveries_agree():
    first = drop_batch_id("studio", "shoot", '"etag"|2026-01-01 00:00:00+00:00')
    assert first == drop_batch_id("studio", "shoot", '"etag"|2026-01-01 00:00:00+00:00')
    assert first != drop_batch_id("studio", "shoot", '"etag"|2026-01-01 00:00:01+00:00')
    assert first != drop_batch_id("studio", "shoot2", '"etag"|2026-01-01 00:00:00+00:00')
    assert drop_job_id(first, "drop/studio/shoot/a.png") != drop_job_id(first, "drop/studio/shoot/b.png")


# -- markers and listings ----------------------------------------------------------------

def test_a_marker_is_a_batch_body_without_files():
    request = parse_marker(b'{"pipeline_id": "p1", "description": "Spring", "customer_prefix": "PL_DXB"}', Limits())
    assert (request.pipeline_ids, request.description, request.customer_prefix, request.files) == \
        (("p1",), "Spring", "PL_DXB", ())
    for raw, why in ((b"  ", "the marker is empty"), (b"[]", "must be a JSON object"),
                     (b'{"pipeline_ids": ["p"], "files": []}', "must not list files"),
                     (b'{"pipeline_ids": ["p"], "x": 1}', "unknown field(s): x"), (b"{", "not valid JSON"),
                     (b'{"pipeline_ids": ["p"], "description": "' + b"x" * 70000 + b'"}', "over the limit")):
        with pytest.raises(Invalid, match=why.replace("(", r"\(").replace(")", r"\)")):
            parse_marker(raw, Limits())


def test_a_listing_keeps_direct_files_and_says_why_it_left_the_rest_out():
    listing = list_folder([("drop/o/f/b.png", 10), ("drop/o/f/_READY", 5), ("drop/o/f/A.jpg", 7),
                           ("drop/o/f/a.JPG", 8), ("drop/o/f/sub/c.png", 1), ("drop/o/f/", 0),
                           ("drop/o/f/notes.txt", 3), ("drop/o/f/" + "n" * 300, 4), ("drop/o/f/empty.png", 0)],
                          "drop/o/f/", Limits())
    assert [(f.key, f.spec.name, f.spec.size, f.spec.content_type) for f in listing.files] == [
        ("drop/o/f/A.jpg", "A.jpg", 7, "image/jpeg"), ("drop/o/f/b.png", "b.png", 10, "image/png"),
        ("drop/o/f/empty.png", "empty.png", 0, "image/png"),
        ("drop/o/f/notes.txt", "notes.txt", 3, "application/octet-stream")]
    reasons = dict(listing.skipped)
    assert "same name as 'A.jpg'" in reasons["drop/o/f/a.JPG"]
    assert "in a subfolder" in reasons["drop/o/f/sub/c.png"]
    assert "not a valid file name" in reasons["drop/o/f/" + "n" * 300]
    assert "drop/o/f/" not in reasons and "drop/o/f/_READY" not in reasons


def test_a_listing_over_the_batch_limits_is_refused():
    with pytest.raises(Invalid, match="holds 3 files, over the limit of 2") as refused:
        list_folder([(f"drop/o/f/{i}.png", 1) for i in range(3)], "drop/o/f/", Limits(max_files=2))
    assert refused.value.too_large
    with pytest.raises(Invalid, match="total 30 bytes, over the batch limit of 20"):
        list_folder([(f"drop/o/f/{i}.png", 10) for i in range(3)], "drop/o/f/", Limits(max_batch_size=20))


# -- large inputs -------------------------------------------------------------------------

def _render(fp) -> imaging.Rendering:
    return imaging.render(fp, [imaging.RenderSpec(format="jpeg", width=32)], imaging.Limits())


def test_oversized_tiff_metadata_is_dropped_from_the_copy_and_the_image_renders(tmp_path):
    path = layered_tiff(Path(tmp_path) / "layers.tif", 40 * MIB)
    with open(path, "r+b") as fp:
        assert large_inputs.prepare(fp, path.stat().st_size) == [f"Photoshop layers ({40 * MIB} bytes)"]
        assert fp.tell() == 0
        assert _render(fp)[0].width == 32
        assert large_inputs.prepare(fp, path.stat().st_size) == []   # nothing left to drop


def test_small_metadata_and_other_formats_are_left_alone(tmp_path):
    path = layered_tiff(Path(tmp_path) / "small.tif", 1 * MIB)
    before = path.read_bytes()
    with open(path, "r+b") as fp:
        assert large_inputs.prepare(fp, len(before)) == []
    assert path.read_bytes() == before
    png = io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    assert large_inputs.prepare(png, 300 * MIB) == []
    broken = io.BytesIO(b"II*\x00" + struct.pack("<I", 10 ** 9))   # a directory past the end
    assert large_inputs.prepare(broken, 8) == []


def test_the_layers_cost_no_memory_once_dropped(tmp_path):
    """In a child process, so the peak is this render's alone: 100 MiB of layers cost Pillow
    about three times that when read; dropped, the render stays small."""
    import subprocess
    import sys
    path = layered_tiff(Path(tmp_path) / "layers.tif", 100 * MIB)
    # VmHWM, not ru_maxrss: the latter carries the forking parent's (pytest's) peak across exec
    code = ("import re, sys; from chalicelib.domain import imaging, large_inputs\n"
            "f = open(sys.argv[1], 'r+b'); large_inputs.prepare(f, 0)\n"
            "imaging.render(f, [imaging.RenderSpec(format='jpeg', width=32)], imaging.Limits())\n"
            "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024)")
    peak = int(subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[2]).stdout)
    assert peak < 60, f"{peak} MB"


def test_buffered_decoders_are_refused_above_their_limit(monkeypatch):
    head = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\0" * 40
    if imaging.sniff_format(head) != "AVIF":
        pytest.skip("this Pillow has no AVIF")
    with pytest.raises(imaging.ImageError) as refused:
        large_inputs.prepare(io.BytesIO(head), 300 * MIB)
    assert refused.value.code == "file_too_large" and "256 MiB" in refused.value.message
    assert large_inputs.prepare(io.BytesIO(head), 200 * MIB) == []


def test_a_16_bit_rgba_tiff_decodes_to_its_size(tmp_path):
    path = rgba16_tiff(Path(tmp_path) / "deep.tif", 64, 40)
    with open(path, "rb") as fp:
        out = _render(fp)[0]
    assert (out.width, out.height) == (32, 20)
