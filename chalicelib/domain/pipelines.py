"""Pipeline (processing preset) validation: every field checked, defaults filled in."""
from __future__ import annotations

import re

from .validation import Invalid, boolean, choice, integer, reject_unknown, require_object, string

FORMATS = ("png", "jpeg", "webp")
FITS = ("contain", "cover", "exact")
MAX_SIDE = 16384
SETTINGS = ("format", "width", "height", "fit", "quality", "compression", "background", "keep_metadata", "upscale")
NOT_NULL = ("fit", "quality", "compression", "background")
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def validate_pipeline(payload) -> dict:
    """Return {name, format, width, height, fit, quality, compression, background, keep_metadata, upscale}."""
    payload = require_object(payload)
    # Server-owned fields are tolerated so a client can PUT back what it GOT.
    reject_unknown(payload, ("name",) + SETTINGS + ("id", "created_at", "updated_at"))
    for field in NOT_NULL:  # null would slip past the defaults below (and crash the hex check)
        if field in payload and payload[field] is None:
            raise Invalid(f"{field} must not be null; omit it to get the default")
    name = string(payload, "name", 100, required=True).strip()
    spec = {
        "name": name,
        "format": choice(payload, "format", FORMATS, required=True),
        "width": integer(payload, "width", 1, MAX_SIDE),
        "height": integer(payload, "height", 1, MAX_SIDE),
        "fit": choice(payload, "fit", FITS, default="contain"),
        "quality": integer(payload, "quality", 1, 100, default=85),
        "compression": integer(payload, "compression", 0, 100, default=70),
        "background": string(payload, "background", 7, default="#ffffff"),
        "keep_metadata": boolean(payload, "keep_metadata", False),
        "upscale": boolean(payload, "upscale", False),
    }
    if not _HEX.match(spec["background"]):
        raise Invalid(f"background must be a hex colour like #ffffff or #fff, got {spec['background']!r}")
    spec["background"] = _expand_hex(spec["background"]).lower()
    if spec["fit"] in ("cover", "exact") and not (spec["width"] and spec["height"]):
        raise Invalid(f"fit {spec['fit']!r} needs both width and height")
    return spec


def _expand_hex(colour: str) -> str:
    if len(colour) == 4:
        return "#" + "".join(ch * 2 for ch in colour[1:])
    return colour


def name_key(name: str) -> str:
    """Pipeline names are unique per owner regardless of case and surrounding space."""
    return " ".join(name.split()).casefold()
