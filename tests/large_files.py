"""Large, valid images written to disk a strip at a time (never whole in memory), for the tests of
uploads in parts and of the processor's large-input rules."""
from __future__ import annotations

import hashlib
import struct
from pathlib import Path

MIB = 1024 * 1024


def _entries(tags: list[tuple[int, int, int, bytes]]) -> bytes:
    tags = sorted(tags)
    return struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHI", t, typ, n) + v for t, typ, n, v in tags) + \
        struct.pack("<I", 0)


def rgba16_tiff(path: Path, width: int, height: int) -> Path:
    """An uncompressed 16-bit RGBA TIFF (8 bytes a pixel) with a smooth, position-dependent
    pattern; 6144 x 6400 is 300 MiB of pixels (39.3 MP, under the default pixel limit)."""
    row_bytes = width * 8
    pixels = row_bytes * height
    pix_at = 8
    ifd_at = pix_at + pixels
    extra_at = ifd_at + 2 + 12 * 10 + 4
    tags = [(256, 4, 1, struct.pack("<I", width)), (257, 4, 1, struct.pack("<I", height)),
            (258, 3, 4, struct.pack("<I", extra_at)), (259, 3, 1, struct.pack("<HH", 1, 0)),
            (262, 3, 1, struct.pack("<HH", 2, 0)), (273, 4, 1, struct.pack("<I", pix_at)),
            (277, 3, 1, struct.pack("<HH", 4, 0)), (278, 4, 1, struct.pack("<I", height)),
            (279, 4, 1, struct.pack("<I", pixels)), (338, 3, 1, struct.pack("<HH", 2, 0))]
    with open(path, "wb") as f:
        f.write(b"II*\x00" + struct.pack("<I", ifd_at))
        for y in range(height):   # red rises along x, green along y (in bands), blue fixed, opaque
            f.write(_row(width, (y * 65535) // max(1, height - 1)))
        f.write(_entries(tags))
        f.write(struct.pack("<HHHH", 16, 16, 16, 16))
    return path


_ROWS: dict[tuple[int, int], bytes] = {}


def _row(width: int, green: int) -> bytes:
    """Rows are cached per band of green, so a 300 MiB file is written in under a second."""
    key = (width, green >> 10)   # 64 bands of green are plenty for a test image
    if key not in _ROWS:
        step = 65535 / max(1, width - 1)
        g = (green >> 10) << 10
        _ROWS[key] = b"".join(struct.pack("<HHHH", int(x * step), g, 20000, 65535) for x in range(width))
    return _ROWS[key]


def layered_tiff(path: Path, layer_bytes: int, size=(64, 48)) -> Path:
    """A small RGB TIFF carrying `layer_bytes` of Photoshop layer data (ImageSourceData, 37724)
    beside the flattened image, as Photoshop saves layered TIFFs."""
    w, h = size
    pixels = bytes([200, 40, 40]) * (w * h)
    pix_at, layers_at = 8, 8 + len(pixels)
    ifd_at = layers_at + layer_bytes + (layers_at + layer_bytes) % 2
    extra_at = ifd_at + 2 + 12 * 9 + 4
    tags = [(256, 3, 1, struct.pack("<HH", w, 0)), (257, 3, 1, struct.pack("<HH", h, 0)),
            (258, 3, 3, struct.pack("<I", extra_at)), (262, 3, 1, struct.pack("<HH", 2, 0)),
            (273, 4, 1, struct.pack("<I", pix_at)), (277, 3, 1, struct.pack("<HH", 3, 0)),
            (278, 3, 1, struct.pack("<HH", h, 0)), (279, 4, 1, struct.pack("<I", len(pixels))),
            (37724, 7, layer_bytes, struct.pack("<I", layers_at))]
    with open(path, "wb") as f:
        f.write(b"II*\x00" + struct.pack("<I", ifd_at) + pixels)
        block = hashlib.shake_256(b"layers").digest(MIB)
        left = layer_bytes
        while left:
            f.write(block[:min(left, MIB)])
            left -= min(left, MIB)
        f.write(b"\0" * (ifd_at - f.tell()))
        f.write(_entries(tags))
        f.write(struct.pack("<HHH", 8, 8, 8))
    return path
