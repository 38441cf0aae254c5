"""Find the image files to submit.

A file is sent only when its extension says image AND its first bytes say image: the extension
alone lets PDFs, EPS (which Pillow would hand to Ghostscript) and macOS `._*` resource forks
through, and magic bytes alone would sweep up files the user never meant as images.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

# Image extensions, including those of types the service refuses (HEIC, PSD...): such a file is
# then skipped as "not supported", which says more than "not an image extension".
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .mpo .png .apng .gif .webp .tif .tiff .bmp .dib .ico .avif .avifs .tga "
    ".heic .heif .jp2 .j2k .jpf .jpx .jxl .psd .ppm .pgm .pbm .pnm .pam .dds .qoi .icns .cur .exr .hdr".split()
)

SNIFF_BYTES = 64

# A copy of the service's rules (chalicelib/domain/imaging.py), which the CLI cannot import:
# both are tested against tests/vectors/sniffing.json, as is the browser's copy (web/sniff.js).
CONTENT_TYPES = {
    "JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp",
    "TIFF": "image/tiff", "BMP": "image/bmp", "ICO": "image/vnd.microsoft.icon",
    "AVIF": "image/avif", "HEIF": "image/heif", "TGA": "image/x-tga",
}

_REFUSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xffO\xffQ", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"BLP1", "BLP"),
    (b"BLP2", "BLP"),
    (b"DDS ", "DDS"),
    (b"8BPS", "Photoshop PSD"),
    (b"qoif", "QOI"),
    (b"icns", "ICNS"),
    (b"\x00\x00\x02\x00", "Windows cursor (CUR)"),
    (b"v/1\x01", "OpenEXR"),
    (b"#?RADIANCE", "Radiance HDR"),
    (b"\x01\xda", "SGI"),
    (b"SIMPLE  =", "FITS"),
)
_AVIF_BRANDS = {b"avif", b"avis"}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def _ftyp_brands(head: bytes) -> set[bytes]:
    """ISO base media (AVIF, HEIF): the major brand and the compatible brands of the ftyp box."""
    if head[4:8] != b"ftyp" or len(head) < 12:
        return set()
    end = min(int.from_bytes(head[:4], "big"), len(head))
    return {head[8:12]} | {head[i:i + 4] for i in range(16, end - 3, 4)}


def _looks_like_tga(head: bytes) -> bool:
    # TGA has no magic: accept only headers the service's decoder would, so that arbitrary
    # binaries rarely match.
    if len(head) < 18:
        return False
    cmap_type, image_type, depth, flags = head[1], head[2], head[16], head[17]
    width = int.from_bytes(head[12:14], "little")
    height = int.from_bytes(head[14:16], "little")
    return (
        cmap_type in (0, 1)
        and image_type in (1, 2, 3, 9, 10, 11)
        and (cmap_type == 1) == (image_type in (1, 9))
        and (cmap_type == 1 or head[3:8] == b"\0" * 5)
        and depth in (1, 8, 16, 24, 32)
        and flags & 0xC0 == 0
        and width > 0
        and height > 0
    )


def sniff_format(head: bytes) -> str | None:
    """The image format the service will process these first bytes as, or None."""
    head = bytes(head[:SNIFF_BYTES])
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):  # TIFF and BigTIFF
        return "TIFF"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] == b"\x00\x00\x01\x00":
        return "ICO"
    if _ftyp_brands(head) & _AVIF_BRANDS:
        return "AVIF"
    if _ftyp_brands(head) & _HEIF_BRANDS:   # phone and camera photos (HEIC), decoded by pillow-heif
        return "HEIF"
    if _looks_like_tga(head):  # last: TGA has no magic (and can start like a CUR)
        return "TGA"
    return None


def refused_format(head: bytes) -> str | None:
    """A known image type the service refuses (HEIC, JPEG 2000, PSD...), by name, or None."""
    head = bytes(head[:SNIFF_BYTES])
    for magic, name in _REFUSED_MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 3 and head[0:1] == b"P" and head[1] in b"1234567" and head[2:3] in b" \t\r\n0123456789":
        return "Netpbm (PBM/PGM/PPM/PAM)"
    return None


def sniff_content_type(head: bytes) -> str | None:
    """Content type to declare for a file with these first bytes, or None when the service refuses it."""
    return CONTENT_TYPES.get(sniff_format(head) or "")


@dataclass(frozen=True)
class ImageFile:
    path: Path
    name: str  # what the API sees: the base name only, paths never leave this machine
    size: int
    content_type: str


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass
class Collection:
    images: list[ImageFile]
    skipped: list[Skipped]

    @property
    def total_size(self) -> int:
        return sum(image.size for image in self.images)

    def duplicate_names(self) -> dict[str, list[Path]]:
        """Names that occur more than once; the API refuses duplicates within one batch."""
        by_name: dict[str, list[Path]] = defaultdict(list)
        for image in self.images:
            by_name[image.name].append(image.path)
        return {name: paths for name, paths in by_name.items() if len(paths) > 1}


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk(folder: Path) -> Iterable[Path]:
    # followlinks=False: a symlink loop in a photo folder must not hang the client.
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not _is_hidden(d))
        for name in sorted(names):
            if not _is_hidden(name):
                yield Path(root) / name


def classify(path: Path) -> ImageFile | Skipped:
    extension = path.suffix.lower()
    if extension not in IMAGE_EXTENSIONS:
        return Skipped(path, f"'{extension or 'no extension'}' is not an image extension")
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        return Skipped(path, f"cannot read it: {exc.strerror or exc}")
    if size == 0:
        return Skipped(path, "empty file")
    content_type = sniff_content_type(head)
    if content_type is None:
        refused = refused_format(head)
        return Skipped(path, f"{refused} images are not supported by the service" if refused
                       else "content is not a recognised image")
    return ImageFile(path=path, name=path.name, size=size, content_type=content_type)


def collect(paths: Iterable[Path]) -> Collection:
    """Expand folders recursively (skipping hidden entries) and classify every file.

    Files named explicitly are taken even when hidden: the user asked for them by name.
    """
    images: list[ImageFile] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    for given in paths:
        candidates = _walk(given) if given.is_dir() else [given]
        for path in candidates:
            real = path.resolve()
            if real in seen or not path.is_file():
                continue
            seen.add(real)
            result = classify(path)
            (images if isinstance(result, ImageFile) else skipped).append(result)
    return Collection(images=images, skipped=skipped)
