"""Pipeline (processing preset) validation: every field checked, every problem reported, defaults filled in."""
from __future__ import annotations

import re
from typing import Any, Callable

from .filenames import MAX_TEMPLATE_LENGTH, template_errors
from .validation import Invalid, boolean, choice, integer, require_object, string

FORMATS = ("png", "jpeg", "webp", "avif", "tiff")
LOSSY_FORMATS = ("jpeg", "webp", "avif")
FITS = ("contain", "cover", "exact", "pad")
TIFF_COMPRESSIONS = ("deflate", "lzw")
MAX_SIDE = 16384
MAX_DPI = 10000
MAX_SHARPEN = 500
MIN_MAX_BYTES, MAX_MAX_BYTES = 1024, 100 * 1024 * 1024
SETTINGS = ("format", "width", "height", "fit", "quality", "compression", "background", "keep_metadata", "upscale",
            "tiff_compression", "embed_icc", "trim", "dpi", "sharpen", "max_bytes", "filename")
# Defaults of every optional setting; also filled in for pipelines stored before a setting existed.
DEFAULTS: dict[str, Any] = {"width": None, "height": None, "fit": "contain", "quality": 85, "compression": 70,
                            "background": "#ffffff", "keep_metadata": False, "upscale": False,
                            "tiff_compression": "deflate", "embed_icc": False, "trim": None, "dpi": None,
                            "sharpen": 0, "max_bytes": None, "filename": None}
NOT_NULL = ("fit", "quality", "compression", "background", "tiff_compression", "sharpen")
SERVER_OWNED = ("id", "created_at", "updated_at")
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def validate_pipeline(payload) -> dict:
    """Return {name} and every setting, defaults filled in. Raises Invalid listing every problem
    (``Invalid.errors``: ``[{"field", "message"}]``, in field order)."""
    payload = require_object(payload)
    errors: list[dict] = []

    def field(name: str, check: Callable[[], Any]) -> Any:
        if name in NOT_NULL and name in payload and payload[name] is None:
            # null would slip past the defaults (and crash the checks after them)
            errors.append({"field": name, "message": f"{name} must not be null; omit it to get the default"})
            return None
        try:
            return check()
        except Invalid as exc:
            errors.append({"field": name, "message": exc.message})
            return None

    allowed = ("name",) + SETTINGS + SERVER_OWNED  # server-owned fields: a client may PUT back what it GOT
    for name in sorted(set(payload) - set(allowed)):
        errors.append({"field": name, "message": f"request body has unknown field(s): {name}; "
                                                 f"allowed: {', '.join(sorted(allowed))}"})
    name = field("name", lambda: string(payload, "name", 100, required=True).strip())
    spec = {
        "name": name,
        "format": field("format", lambda: choice(payload, "format", FORMATS, required=True)),
        "width": field("width", lambda: integer(payload, "width", 1, MAX_SIDE)),
        "height": field("height", lambda: integer(payload, "height", 1, MAX_SIDE)),
        "fit": field("fit", lambda: choice(payload, "fit", FITS, default="contain")),
        "quality": field("quality", lambda: integer(payload, "quality", 1, 100, default=85)),
        "compression": field("compression", lambda: integer(payload, "compression", 0, 100, default=70)),
        "background": field("background", lambda: _colour(payload)),
        "keep_metadata": field("keep_metadata", lambda: boolean(payload, "keep_metadata", False)),
        "upscale": field("upscale", lambda: boolean(payload, "upscale", False)),
        "tiff_compression": field("tiff_compression",
                                  lambda: choice(payload, "tiff_compression", TIFF_COMPRESSIONS, default="deflate")),
        "embed_icc": field("embed_icc", lambda: boolean(payload, "embed_icc", False)),
        "trim": field("trim", lambda: integer(payload, "trim", 0, 100)),
        "dpi": field("dpi", lambda: integer(payload, "dpi", 1, MAX_DPI)),
        "sharpen": field("sharpen", lambda: integer(payload, "sharpen", 0, MAX_SHARPEN, default=0)),
        "max_bytes": field("max_bytes", lambda: integer(payload, "max_bytes", MIN_MAX_BYTES, MAX_MAX_BYTES)),
        "filename": field("filename", lambda: _template(payload)),
    }
    bad = {e["field"] for e in errors}
    if {"fit", "width", "height"}.isdisjoint(bad) and spec["fit"] in ("cover", "exact", "pad") \
            and not (spec["width"] and spec["height"]):
        errors.append({"field": "fit", "message": f"fit {spec['fit']!r} needs both width and height"})
    if {"format", "max_bytes"}.isdisjoint(bad) and spec["max_bytes"] is not None \
            and spec["format"] not in LOSSY_FORMATS:
        errors.append({"field": "max_bytes", "message": f"max_bytes applies to {', '.join(LOSSY_FORMATS)} "
                                                        f"(lossy formats) only, not {spec['format']}"})
    if errors:
        order = {f: i for i, f in enumerate(("name",) + SETTINGS)}
        errors.sort(key=lambda e: order.get(e["field"], -1))
        raise Invalid(_summary(errors), errors=errors)
    return spec


def with_defaults(pipeline: dict) -> dict:
    """A stored pipeline with every setting present (those saved before a setting existed lack it)."""
    return {**DEFAULTS, **pipeline}


def _colour(payload: dict) -> str:
    colour = string(payload, "background", 7, default="#ffffff")
    if not _HEX.match(colour):
        raise Invalid(f"background must be a hex colour like #ffffff or #fff, got {colour!r}")
    return _expand_hex(colour).lower()


def _template(payload: dict) -> str | None:
    template = string(payload, "filename", MAX_TEMPLATE_LENGTH)
    if template is None:
        return None
    problems = template_errors(template)
    if problems:
        raise Invalid("; ".join(problems))
    return template


def _summary(errors: list[dict]) -> str:
    if len(errors) == 1:
        return errors[0]["message"]
    return f"{len(errors)} problems: " + "; ".join(e["message"] for e in errors)


def _expand_hex(colour: str) -> str:
    if len(colour) == 4:
        return "#" + "".join(ch * 2 for ch in colour[1:])
    return colour


def name_key(name: str) -> str:
    """Pipeline names are unique per owner regardless of case and surrounding space."""
    return " ".join(name.split()).casefold()
