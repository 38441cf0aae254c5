"""Pipeline validation (every problem at once), filename templates, and template names in the ZIP layout."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.archive import ArchiveJob, ArchiveOutput, plan_archive
from chalicelib.domain.filenames import FIELDS, render_name, template_errors
from chalicelib.domain.pipelines import DEFAULTS, SETTINGS, validate_pipeline, with_defaults
from chalicelib.domain.validation import Invalid
from chalicelib.services.processor import render_specs


def problems(payload) -> list[dict]:
    with pytest.raises(Invalid) as info:
        validate_pipeline(payload)
    return info.value.errors


def test_every_problem_is_reported_at_once_in_field_order():
    errors = problems({"name": "x", "format": "gif", "width": -5, "quality": 200})
    assert [e["field"] for e in errors] == ["format", "width", "quality"]
    with pytest.raises(Invalid) as info:
        validate_pipeline({"name": "x", "format": "gif", "width": -5, "quality": 200})
    message = info.value.message
    assert message.startswith("3 problems: ") and "format must be one of" in message
    assert "width must be between 1 and 16384, got -5" in message and "quality must be between 1 and 100" in message


def test_one_problem_keeps_its_plain_message():
    with pytest.raises(Invalid) as info:
        validate_pipeline({"name": "x", "format": "png", "quality": 101})
    assert info.value.message == "quality must be between 1 and 100, got 101"
    assert info.value.errors == [{"field": "quality", "message": info.value.message}]


def test_new_options_are_validated():
    errors = problems({"name": "", "format": "png", "fit": "pad", "width": 10, "trim": 101, "dpi": 0,
                       "sharpen": 501, "max_bytes": 5000, "tiff_compression": "zip", "embed_icc": "yes",
                       "filename": "a/{stem}.{ext}", "extra": 1})
    fields = [e["field"] for e in errors]
    assert fields == ["extra", "name", "fit", "tiff_compression", "embed_icc", "trim", "dpi", "sharpen", "max_bytes",
                      "filename"]
    by = {e["field"]: e["message"] for e in errors}
    assert by["fit"] == "fit 'pad' needs both width and height"
    assert "max_bytes applies to jpeg, webp, avif" in by["max_bytes"] and "not png" in by["max_bytes"]
    assert "path separators" in by["filename"]


def test_cross_field_rules_wait_for_their_fields():
    # a bad width is reported once, not again as "pad needs both width and height"
    assert [e["field"] for e in problems({"name": "x", "format": "png", "fit": "pad", "width": 0,
                                          "height": 5})] == ["width"]
    # max_bytes with a bad format: only the format is wrong
    assert [e["field"] for e in problems({"name": "x", "format": "bmp", "max_bytes": 5000})] == ["format"]


def test_nulls_for_defaulted_fields_are_refused():
    errors = problems({"name": "x", "format": "png", "fit": None, "sharpen": None, "tiff_compression": None})
    assert [e["field"] for e in errors] == ["fit", "tiff_compression", "sharpen"]


def test_defaults_and_a_full_valid_pipeline():
    spec = validate_pipeline({"name": " Shop ", "format": "avif"})
    assert spec == {"name": "Shop", "format": "avif", **DEFAULTS}
    full = validate_pipeline({"name": "Print", "format": "tiff", "width": 3000, "height": 3000, "fit": "pad",
                              "tiff_compression": "lzw", "embed_icc": True, "trim": 10, "dpi": 300, "sharpen": 80,
                              "filename": "{prefix}_{counter:04}.{ext}", "background": "#FFF"})
    assert full["background"] == "#ffffff" and full["filename"] == "{prefix}_{counter:04}.{ext}"
    assert set(full) == {"name", *SETTINGS}


def test_old_pipelines_get_the_new_defaults_and_map_to_specs():
    old = {"id": "p", "name": "web", "format": "jpeg", "width": 800, "fit": "contain", "quality": 85,
           "compression": 70, "background": "#ffffff", "keep_metadata": False, "upscale": False}
    assert with_defaults(old)["trim"] is None and with_defaults(old)["filename"] is None
    [spec] = render_specs([old])
    assert (spec.format, spec.width, spec.trim, spec.max_bytes, spec.tiff_compression) == ("jpeg", 800, None, None,
                                                                                         "deflate")
    [new] = render_specs([validate_pipeline({"name": "x", "format": "webp", "max_bytes": 50000, "dpi": 72,
                                             "sharpen": 30, "trim": 5})])
    assert (new.max_bytes, new.dpi, new.sharpen, new.trim) == (50000, 72, 30, 5)


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize("template", ["{stem}_{pipeline}.{ext}", "{prefix}_{counter:04}.{ext}",
                                      "{stem}_{width}x{height}.{ext}", "{batch}-{date}-{counter}.{ext}",
                                      "{{{stem}}}.{ext}", "shot {counter:3}.{ext}"])
def test_good_templates(template):
    assert template_errors(template) == []


@pytest.mark.parametrize("template,fragment", [
    ("{colour}.{ext}", "unknown field {colour}"),
    ("{stem.__class__}.{ext}", "unknown field"),
    ("{stem[0]}.{ext}", "unknown field"),
    ("{0}.{ext}", "unknown field {0}"),
    ("{stem!r}.{ext}", "conversion"),
    ("{stem:>20}.{ext}", "unsupported format"),
    ("{counter:,}.{ext}", "unsupported format"),
    ("out/{stem}.{ext}", "path separators"),
    ("..\\{stem}.{ext}", "path separators"),
    ("{stem}.jpg", "must contain {ext}"),
    ("{ext}", "empty name"),
    (" . .{ext}", "empty name"),
    ("{stem", "not a valid template"),
])
def test_bad_templates(template, fragment):
    errors = template_errors(template)
    assert errors and any(fragment in e for e in errors), errors


@given(st.text(max_size=40))
def test_any_text_is_either_refused_or_renders(template):
    if template_errors(template):
        return
    name = render_name(template, {f: ("x" if f not in ("counter", "width", "height") else 7) for f in FIELDS})
    assert "/" not in name and "\\" not in name


def _job(name, position, *outputs, status="completed"):
    return ArchiveJob(file_name=name, status=status, error_code=None, error_message=None, outputs=tuple(outputs),
                      position=position)


def _out(pid, pname, key, template, w=800, h=600, ext="jpg"):
    return ArchiveOutput(pipeline_id=pid, pipeline_name=pname, key=key, extension=ext, size=10, width=w, height=h,
                         filename=template)


def test_template_names_in_the_zip_with_counter_prefix_and_size():
    jobs = [_job("PL_DXB191_Front.png", 1, _out("p1", "Shop", "k1", "{prefix}_{counter:04}_{width}x{height}.{ext}")),
            _job("PL_DXB191_Back.png", 0, _out("p1", "Shop", "k2", "{prefix}_{counter:04}_{width}x{height}.{ext}",
                                               w=400, h=300))]
    entries, manifest = plan_archive("PL_DXB_2026-11-05_batch-1", jobs, ["Shop"],
                                     {"prefix": "PL_DXB", "date": "2026-11-05"})
    assert sorted(e.arcname for e in entries) == ["PL_DXB_2026-11-05_batch-1/PL_DXB_0001_400x300.jpg",
                                                  "PL_DXB_2026-11-05_batch-1/PL_DXB_0002_800x600.jpg"]
    assert b"PL_DXB_0002_800x600.jpg" in manifest


def test_colliding_template_names_get_a_stable_suffix_whatever_the_read_order():
    def plan(order):
        jobs = [_job(n, i, _out("p", "Web", f"k{n}", "{pipeline}.{ext}")) for i, n in order]
        return [(e.arcname, e.key) for e in plan_archive("B", jobs, ["Web"])[0]]

    forward = plan([(0, "a.png"), (1, "b.png"), (2, "c.png")])
    assert forward == plan([(2, "c.png"), (0, "a.png"), (1, "b.png")])
    assert [a for a, _ in forward] == ["B/Web.jpg", "B/Web (2).jpg", "B/Web (3).jpg"]


def test_template_names_are_made_safe_and_case_insensitively_unique():
    jobs = [_job("CON.png", 0, _out("p", "a:b", "k1", "{stem}-{pipeline}.{ext}")),
            _job("con.png", 1, _out("p", "a:b", "k2", "{stem}-{pipeline}.{ext}"))]
    names = sorted(e.arcname for e in plan_archive("B", jobs, ["a:b"])[0])
    assert names == ["B/CON-a_b.jpg", "B/con-a_b (2).jpg"]


def test_no_template_keeps_todays_layout():
    jobs = [_job("x.png", 0, _out("p1", "Web", "k1", None), _out("p2", "Thumb", "k2", None, ext="webp"))]
    names = [e.arcname for e in plan_archive("B", jobs, ["Web", "Thumb"])[0]]
    assert names == ["B/Web/x.jpg", "B/Thumb/x.webp"]
