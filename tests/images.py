"""Small real images made with Pillow, for tests that need bytes a decoder accepts."""
from __future__ import annotations

import io

from PIL import Image


def png(size=(64, 48), colour=(200, 30, 30), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour if mode == "RGB" else colour + (128,)).save(buf, "PNG")
    return buf.getvalue()


def jpeg(size=(120, 80), colour=(20, 120, 220), orientation: int | None = None) -> bytes:
    buf = io.BytesIO()
    im = Image.new("RGB", size, colour)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    im.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def webp(size=(50, 50)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(buf, "WEBP")
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im
