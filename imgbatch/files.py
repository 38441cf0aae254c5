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

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .mpo .png .apng .gif .webp .tif .tiff .bmp .dib .ico "
    ".avif .avifs .heic .heif .jp2 .j2k .jpf .jpx .tga .ppm .pgm .pbm .pnm".split()
)

SNIFF_BYTES = 32

_ISO_BMFF_BRANDS = {
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"heif": "image/heif",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
}


def sniff_content_type(head: bytes, extension: str = "") -> str | None:
    """Content type from a file's first bytes, or None when they are not a known image."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if head[:2] == b"BM" and len(head) >= 14:
        return "image/bmp"
    if head[:4] == b"\x00\x00\x01\x00":
        return "image/vnd.microsoft.icon"
    if head[4:8] == b"ftyp" and head[8:12] in _ISO_BMFF_BRANDS:
        return _ISO_BMFF_BRANDS[head[8:12]]
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n") or head.startswith(b"\xff\x4f\xff\x51"):
        return "image/jp2"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace():
        return "image/x-portable-anymap"
    # TGA has no magic number; a plausible header plus the extension is the best available.
    if extension == ".tga" and _looks_like_tga(head):
        return "image/x-tga"
    return None


def _looks_like_tga(head: bytes) -> bool:
    if len(head) < 18:
        return False
    color_map_type, image_type, depth = head[1], head[2], head[16]
    width = int.from_bytes(head[12:14], "little")
    height = int.from_bytes(head[14:16], "little")
    return (
        color_map_type in (0, 1)
        and image_type in (1, 2, 3, 9, 10, 11)
        and depth in (8, 15, 16, 24, 32)
        and width > 0
        and height > 0
    )


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
    content_type = sniff_content_type(head, extension)
    if content_type is None:
        return Skipped(path, "content is not a recognised image")
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
