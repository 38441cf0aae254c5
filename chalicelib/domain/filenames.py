"""Output file names from a pipeline's ``filename`` template, e.g. ``{stem}_{width}x{height}.{ext}``.

Pure: stdlib only. Templates use Python's ``str.format`` syntax restricted to the fields below:
no attribute or index access, no conversions, and a format spec only on the numeric fields
(``{counter:04}`` pads with zeros). ``{{`` and ``}}`` are literal braces.

Fields: ``stem`` (the input file name without its extension), ``ext`` (the output extension:
jpg, png, webp, avif, tif), ``format`` (jpeg, png, ...), ``pipeline`` (the pipeline's name),
``prefix`` (the batch's customer prefix), ``batch`` (its base directory name), ``date`` (its
YYYY-MM-DD date), ``counter`` (the file's 1-based position in the batch), ``width`` and ``height``
(the output's pixels).

A template is checked when the pipeline is saved (``template_errors``): unknown fields, path
separators, a missing ``{ext}`` and templates that give an empty name are refused. What it renders
still goes through the ZIP layout's ``safe_entry_name`` (Windows/macOS-safe, no control or
invisible characters) and is made unique inside its folder there (``domain/archive.py``).
"""
from __future__ import annotations

import re
import string
from typing import Mapping

STRING_FIELDS = ("stem", "ext", "format", "pipeline", "prefix", "batch", "date")
NUMBER_FIELDS = ("counter", "width", "height")
FIELDS = STRING_FIELDS + NUMBER_FIELDS
MAX_TEMPLATE_LENGTH = 200
_NUMBER_SPEC = re.compile(r"^0?[1-9]?d?$")  # "", "4", "04", "04d", "d"
_SAMPLE = {"stem": "s", "ext": "jpg", "format": "jpeg", "pipeline": "p", "prefix": "P", "batch": "b",
           "date": "2026-01-01", "counter": 1, "width": 1, "height": 1}


def template_errors(template: str) -> list[str]:
    """Every problem with a template (empty list when it is fine)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"filename is not a valid template ({exc}); write fields as {{stem}} and literal braces as "
                "{{ and }}"]
    errors: list[str] = []
    used = set()
    for literal, name, spec, conversion in parsed:
        if ("/" in literal or "\\" in literal) and not any("separators" in e for e in errors):
            errors.append("filename must not contain path separators (/ or \\): names are relative to their "
                          "pipeline's folder")
        if name is None:
            continue
        if name not in FIELDS:
            errors.append(f"filename has an unknown field {{{name}}}; allowed: "
                          + ", ".join(f"{{{f}}}" for f in FIELDS))
            continue
        used.add(name)
        if conversion:
            errors.append(f"filename field {{{name}}} cannot take a conversion (!{conversion})")
        if spec and (name in STRING_FIELDS or not _NUMBER_SPEC.match(spec)):
            errors.append(f"filename field {{{name}}} has an unsupported format {spec!r}; only {{counter}}, "
                          "{width} and {height} take one, a zero-padded width like {counter:04}")
    if errors:
        return errors
    if "ext" not in used:
        errors.append("filename must contain {ext}, so every name ends with its output's extension")
    elif not _stem_of(render_name(template, _SAMPLE)):
        errors.append("filename gives an empty name; add {stem}, {counter} or other text before {ext}")
    return errors


def render_name(template: str, values: Mapping[str, object]) -> str:
    """The template filled in (validated templates only; the caller makes the result safe)."""
    return template.format_map({name: values[name] for name in FIELDS})


def _stem_of(name: str) -> str:
    # What is left once the edge dots and spaces that safe names drop and the extension are gone.
    stem = name.strip(" .")
    return stem.rsplit(".", 1)[0].strip(" .") if "." in stem else ""
