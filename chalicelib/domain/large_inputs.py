"""What makes a large upload safe to decode. Pure: works on the processor's private copy of it.

The pixel limit (imaging.Limits.max_pixels) bounds the decoded image, but two kinds of large
file cost memory in proportion to their size before a pixel is decoded:

- TIFF: Pillow reads every tag of the first page into memory when it opens the file. Layered
  TIFFs from Photoshop carry the layers in one tag (ImageSourceData, 37724) beside a flattened
  image, often gigabytes of it: a 300 MiB tag peaked at 927 MB. Such tags (the layers, Photoshop's
  resources, XMP, IPTC) are dropped from our copy when they exceed MAX_TIFF_TAG_BYTES, by setting
  their value count to 0 in the directory (Pillow skips an empty tag), so only the flattened image
  is read, as every other program that cannot read layers does. The upload itself is unchanged.
- AVIF and HEIF: their decoders take the whole file as one buffer, so a file above
  MAX_BUFFERED_DECODE fails with `file_too_large` instead of exhausting the function's memory.
"""
from __future__ import annotations

import struct
from typing import BinaryIO

from .imaging import ImageError, sniff_format

MIB = 1024 * 1024
MAX_TIFF_TAG_BYTES = 16 * MIB
MAX_BUFFERED_DECODE = 256 * MIB
DROPPABLE_TIFF_TAGS = {700: "XMP", 33723: "IPTC", 34377: "Photoshop resources", 37724: "Photoshop layers"}
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


def prepare(fp: BinaryIO, size: int) -> list[str]:
    """Check and adjust the writable copy `fp` of an upload of `size` bytes before decoding;
    returns what was dropped (for the log). Raises ImageError when it cannot be decoded safely.
    Leaves `fp` at offset 0."""
    fp.seek(0)
    fmt = sniff_format(fp.read(64))
    fp.seek(0)
    if fmt in ("AVIF", "HEIF") and size > MAX_BUFFERED_DECODE:
        raise ImageError("file_too_large", f"{fmt} files are decoded from memory, so they may be at most "
                                           f"{MAX_BUFFERED_DECODE // MIB} MiB; this one is {size} bytes")
    if fmt != "TIFF":
        return []
    try:
        return _drop_large_tags(fp)
    finally:
        fp.seek(0)


def _drop_large_tags(fp: BinaryIO) -> list[str]:
    """Zero the count of oversized droppable tags in the first image directory. A directory we
    cannot read is left alone: the decoder then says what is wrong with it."""
    header = fp.read(16)
    order = {b"II": "<", b"MM": ">"}.get(header[:2])
    if order is None or len(header) < 8:
        return []
    (magic,) = struct.unpack(order + "H", header[2:4])
    if magic == 42:
        big, entry, count_at, count_fmt = False, 12, 4, "L"
        (ifd,) = struct.unpack(order + "L", header[4:8])
    elif magic == 43 and len(header) >= 16:
        big, entry, count_at, count_fmt = True, 20, 4, "Q"
        (ifd,) = struct.unpack(order + "Q", header[8:16])
    else:
        return []
    fp.seek(ifd)
    raw = fp.read(8 if big else 2)
    if len(raw) != (8 if big else 2):
        return []
    (entries,) = struct.unpack(order + ("Q" if big else "H"), raw)
    dropped = []
    for i in range(min(entries, 4096)):
        at = ifd + len(raw) + i * entry
        fp.seek(at)
        data = fp.read(entry)
        if len(data) != entry:
            break
        tag, typ = struct.unpack(order + "HH", data[:4])
        (count,) = struct.unpack(order + count_fmt, data[count_at:count_at + struct.calcsize(order + count_fmt)])
        nbytes = count * _TYPE_SIZES.get(typ, 0)
        if tag in DROPPABLE_TIFF_TAGS and nbytes > MAX_TIFF_TAG_BYTES:
            fp.seek(at + count_at)
            fp.write(struct.pack(order + count_fmt, 0))
            dropped.append(f"{DROPPABLE_TIFF_TAGS[tag]} ({nbytes} bytes)")
    return dropped
