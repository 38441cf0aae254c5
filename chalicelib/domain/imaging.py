"""Pure image pipeline: one untrusted upload in, one encoded output per spec out.

No AWS here: callers hand in bytes or a file object and get bytes back.

Error codes (``ImageError.code``; stable, part of the API):

``not_an_image``
    The bytes are not an image type we know by content (EPS, PDF, Office
    documents, text, empty files...). The file name is never consulted.
``unsupported_format``
    A raster format we recognise but refuse (JPEG 2000, BLP, DDS, PSD, Netpbm,
    ...), or a colour mode we cannot convert.
``too_many_pixels``
    The declared size is over ``Limits.max_pixels``; checked from the header,
    before any pixel is decoded.
``corrupt_image``
    Truncated or broken data, an unreadable header, zero or negative
    dimensions, or any other decoder failure.
``output_too_large``
    A requested output would exceed ``Limits.max_output_pixels`` or
    ``Limits.max_output_side`` (e.g. width 800 on a 1x20000 strip with upscale).
``exceeds_max_bytes``
    ``RenderSpec.max_bytes`` cannot be met: even quality ``QUALITY_FLOOR`` gives
    a bigger file.

Policy decisions worth knowing:

* Input formats: JPEG (and MPO), PNG (and APNG), WebP, GIF, TIFF, BMP, ICO, TGA,
  AVIF when this Pillow build has it, and HEIF/HEIC when pillow-heif is
  installed. The format is decided from the magic bytes, and ``Image.open`` is
  only allowed the matching plugin, so nothing can reach Ghostscript or another
  external interpreter.
* Animated / multi-page inputs (GIF, APNG, WebP, AVIF sequences, MPO, TIFF
  pages, HEIF collections) are rendered from their first frame / primary image.
* Orientation: the EXIF orientation tag (or XMP ``tiff:Orientation`` when there
  is no EXIF one, as Pillow's ``exif_transpose`` does) is applied to the small
  resized result, never to the full image. Sizes refer to the displayed
  (oriented) image. For JPEG the tag is read from the header before decoding;
  other formats may store it after the pixels (PNG eXIf), so it is read after.
  libheif applies HEIF's own rotation while decoding (pillow-heif then reports
  orientation 1), so HEIC is never rotated twice.
* 16-bit and 32-bit integer greyscale is scaled to 8 bits by the smallest of
  8/10/12/16 (or more) significant bits that holds the brightest pixel, so
  full-range 16-bit data maps like ``/257``, while 10- or 12-bit data stored in
  16-bit containers (scanners, microscopes) is not crushed to black and
  8-bit-in-16 data is unchanged. Contrast is never auto-stretched. TIFF output
  keeps 16-bit greyscale (without alpha) at 16 bits, values untouched. Pillow
  decodes 16-bit colour (PNG, TIFF) and 10/12-bit AVIF/HEIC to 8 bits per
  channel, so colour outputs are always 8-bit.
* Colour: an embedded ICC profile is converted to sRGB (unparseable or
  mismatched profiles are ignored; grey profiles are ignored, grey stays grey).
  CMYK without a profile uses Pillow's plain conversion.
* Alpha (including palette/tRNS transparency) is kept for PNG, WebP, AVIF and
  TIFF and flattened onto ``RenderSpec.background`` for JPEG.
* Output: one decode however many specs; outputs come back in spec order, and
  a spec that fails (limits, ``max_bytes``) fails the whole call.
  JPEG sources are decoded with libjpeg's DCT scaling (``draft``) at the
  smallest 1/2..1/8 scale that still has enough pixels for every output, then
  resized with ``reducing_gap=2.0`` (Lanczos). Sources with alpha are
  premultiplied (or, for JPEG, flattened) and box-reduced in strips of rows, so
  the only full-size image in memory is the decoded one (see ``_strip_reduce``).
  PNG ``compression`` 0-100 maps to zlib level ``round(c * 9 / 100)``
  (70 -> 6, zlib's default; 0 -> stored), and 100 also turns on Pillow's
  ``optimize``. TIFF uses Deflate (default) or LZW with the horizontal
  predictor. AVIF is encoded at libavif speed ``AVIF_SPEED``. Without
  ``upscale`` nothing is enlarged: contain keeps the source size, cover/exact
  shrink the box uniformly (keeping its aspect) until the source fills it, pad
  keeps the exact canvas and centres the unenlarged image on it.
* Canvas and size rules, in this order: ``trim`` (uniform borders, the colour
  of the top-left pixel within a tolerance, are cut from the source; a
  transparent top-left pixel trims by alpha; an image that is all border is
  left whole), resize (``fit``), orientation, colour, ``sharpen`` (an unsharp
  mask on the resized image, colour bands only), ``pad`` canvas, encode.
  ``dpi`` is written as JFIF density (JPEG), pHYs (PNG), resolution tags (TIFF)
  and EXIF resolution (WebP, AVIF). ``max_bytes`` (JPEG, WebP, AVIF) keeps the
  highest quality at or below ``quality`` whose file fits, found with at most
  ``MAX_BYTES_ENCODES`` encodes (interpolation on log size, bisection as the
  safeguard), never below ``QUALITY_FLOOR``.
* JPEG with ``trim``: the DCT scale is planned for the untrimmed image; when the
  trimmed region then holds fewer pixels than an output needs, the file is
  decoded once more at the scale the region needs (the one case of two decodes).
* Metadata (EXIF, XMP, ICC) is stripped. With ``keep_metadata`` the EXIF block
  is carried with its orientation reset to 1, and an sRGB ICC profile is
  embedded (pixels are sRGB by then); ``embed_icc`` embeds the sRGB profile
  alone. Grey outputs are never tagged with the (RGB) sRGB profile. XMP is
  always dropped: it can carry a stale orientation and PNG output has no clean
  place for it.
* Preview: ``render(..., preview=True)`` also returns a WebP of the displayed
  image, longest side at most ``PREVIEW_SIDE``, never upscaled. It is cut from
  the smallest untrimmed, uncropped output that is at least that big (a few ms),
  and rendered from the decoded image like one more output only when there is
  none. It follows that output's colour steps: a JPEG output's preview is
  flattened onto its background.
* Pixel limit: besides the per-call check, this module lowers Pillow's global
  ``Image.MAX_IMAGE_PIXELS`` to the default ``Limits.max_pixels`` once, at
  import (never raises it). Pillow raises past twice that value at open, which
  we report as ``too_many_pixels``; a process that wants ``Limits.max_pixels``
  above 100 M must raise ``Image.MAX_IMAGE_PIXELS`` itself at start-up.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import BinaryIO, Callable, Sequence

from PIL import (
    Image, ImageChops, ImageCms, ImageColor, ImageFilter, ImageMath, TiffImagePlugin, UnidentifiedImageError,
    features,
)

try:  # a Pillow plugin (libheif + libde265), bundled in its manylinux2014 wheel
    import pillow_heif
except ImportError:  # pragma: no cover - listed in requirements.txt
    pillow_heif = None

__all__ = [
    "ALLOWED_INPUT_FORMATS",
    "ERROR_CODES",
    "FITS",
    "FORMATS",
    "ImageError",
    "Limits",
    "PREVIEW_SIDE",
    "RenderSpec",
    "Rendered",
    "Rendering",
    "render",
    "sniff_format",
    "target_size",
]

ERROR_CODES = frozenset(
    {"not_an_image", "unsupported_format", "too_many_pixels", "corrupt_image", "output_too_large",
     "exceeds_max_bytes"}
)

_HAS_AVIF = bool(features.check("avif"))
_HAS_HEIF = pillow_heif is not None
if _HAS_HEIF:
    # Only the primary image: thumbnails, depth maps and auxiliary images are never decoded.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

ALLOWED_INPUT_FORMATS: tuple[str, ...] = (
    "JPEG", "MPO", "PNG", "WEBP", "GIF", "TIFF", "BMP", "ICO", "TGA",
) + (("AVIF",) if _HAS_AVIF else ()) + (("HEIF",) if _HAS_HEIF else ())

# Pillow plugins each sniffed format may be opened with (MPO is a JPEG by magic).
_OPEN_AS = {"JPEG": ("JPEG", "MPO")}

# format -> (Pillow format, content type, file extension)
_OUTPUTS = {
    "png": ("PNG", "image/png", "png"),
    "jpeg": ("JPEG", "image/jpeg", "jpg"),
    "webp": ("WEBP", "image/webp", "webp"),
    "avif": ("AVIF", "image/avif", "avif"),
    "tiff": ("TIFF", "image/tiff", "tif"),
}
FORMATS = tuple(_OUTPUTS)
FITS = ("contain", "cover", "exact", "pad")
_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
_WEBP_MAX_SIDE = 16383  # libwebp's hard limit
_TIFF_COMPRESSION = {"deflate": "tiff_adobe_deflate", "lzw": "tiff_lzw"}
_TIFF_PREDICTOR = 317  # horizontal differencing (value 2): about 30% smaller photos, and faster
LOSSY = ("jpeg", "webp", "avif")
# libavif's default speed is 6; 8 measured about 5x faster for a few % more bytes (bench_pipeline.py).
AVIF_SPEED = 8
QUALITY_FLOOR = 10
MAX_BYTES_ENCODES = 8
PREVIEW_SIDE = 320
PREVIEW_QUALITY = 70
_LANCZOS_SUPPORT = 3.0
_REDUCING_GAP = 2.0
_STRIP_ROWS = 64  # output rows of a reduction strip: source strips of 64 x factor rows stay in cache


class ImageError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class RenderSpec:
    format: str  # "png" | "jpeg" | "webp" | "avif" | "tiff"
    width: int | None = None
    height: int | None = None
    fit: str = "contain"  # "contain" | "cover" | "exact" | "pad"
    quality: int = 85  # 1-100 JPEG/WebP/AVIF
    compression: int = 70  # 0-100 PNG: 0 = fastest/biggest, 100 = smallest
    background: str = "#ffffff"  # JPEG flattening and the pad canvas
    keep_metadata: bool = False
    upscale: bool = False
    tiff_compression: str = "deflate"  # "deflate" | "lzw"
    embed_icc: bool = False  # tag the (sRGB) output with the sRGB profile
    trim: int | None = None  # tolerance 0-100 (% of full scale); None = no trim
    dpi: int | None = None
    sharpen: int = 0  # unsharp-mask amount in %, 0 = off
    max_bytes: int | None = None  # JPEG/WebP/AVIF only

    def __post_init__(self) -> None:
        # Specs come from validated pipelines; a bad one is a programming error.
        fmt = _FORMAT_ALIASES.get(str(self.format).lower(), str(self.format).lower())
        if fmt not in _OUTPUTS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        object.__setattr__(self, "format", fmt)
        for name in ("width", "height", "dpi", "max_bytes"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {v!r}")
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, not {self.fit!r}")
        if self.fit == "pad" and not (self.width and self.height):
            raise ValueError("fit 'pad' needs both width and height")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be 1-100, not {self.quality!r}")
        if not 0 <= self.compression <= 100:
            raise ValueError(f"compression must be 0-100, not {self.compression!r}")
        if self.tiff_compression not in _TIFF_COMPRESSION:
            raise ValueError(f"tiff_compression must be deflate or lzw, not {self.tiff_compression!r}")
        if self.trim is not None and not 0 <= self.trim <= 100:
            raise ValueError(f"trim must be 0-100 or None, not {self.trim!r}")
        if not 0 <= self.sharpen <= 500:
            raise ValueError(f"sharpen must be 0-500, not {self.sharpen!r}")
        if self.max_bytes is not None and fmt not in LOSSY:
            raise ValueError(f"max_bytes applies to {', '.join(LOSSY)} only, not {fmt}")
        ImageColor.getrgb(self.background)  # raises ValueError when unparseable


PREVIEW_SPEC = RenderSpec("webp", width=PREVIEW_SIDE, height=PREVIEW_SIDE, quality=PREVIEW_QUALITY)


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 50_000_000  # source, checked from the header before decoding
    max_output_pixels: int = 50_000_000
    max_output_side: int = 16384


@dataclass(frozen=True)
class Rendered:
    data: bytes
    format: str  # "png" | "jpeg" | "webp" | "avif" | "tiff"
    content_type: str
    extension: str  # "png" | "jpg" | "webp" | "avif" | "tif"
    width: int
    height: int
    quality: int | None = None  # the quality used (lossy formats; below the spec's under max_bytes)


class Rendering(list):
    """The outputs in spec order (a list, as render() always returned), plus the preview."""

    preview: Rendered | None = None


# Backstop only (see module docstring); our own per-call check is the real one.
if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > Limits().max_pixels:
    Image.MAX_IMAGE_PIXELS = Limits().max_pixels


# --------------------------------------------------------------------------- sniffing

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
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def _ftyp_brands(head: bytes) -> set[bytes]:
    if head[4:8] != b"ftyp" or len(head) < 12:
        return set()
    end = min(int.from_bytes(head[:4], "big"), len(head))
    return {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}


def _looks_like_tga(head: bytes) -> bool:
    # TGA has no magic; accept only headers Pillow's plugin would accept, with
    # the colour-map fields consistent, so arbitrary binaries rarely match.
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
    """Pillow format name (one of ALLOWED_INPUT_FORMATS) decided from the first
    bytes of a file, or None when they are not an allowed image type.
    64 bytes are enough. MPO files sniff as "JPEG"."""
    head = bytes(head[:64])
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:2] == b"BM":
        return "BMP"
    if head[:4] == b"\x00\x00\x01\x00":
        return "ICO"
    brands = _ftyp_brands(head)
    if _HAS_AVIF and brands & {b"avif", b"avis"}:
        return "AVIF"
    if _HAS_HEIF and brands & _HEIF_BRANDS:
        return "HEIF"
    if _looks_like_tga(head):  # last: TGA has no magic (and can start like a CUR)
        return "TGA"
    return None


def _refused_format(head: bytes) -> str | None:
    for magic, name in _REFUSED_MAGIC:
        if head.startswith(magic):
            return name
    brands = _ftyp_brands(head)
    if brands & {b"avif", b"avis"}:
        return "AVIF"  # only reached when this Pillow build lacks AVIF
    if brands & _HEIF_BRANDS:
        return "HEIF/HEIC"  # only reached without pillow-heif
    if len(head) >= 3 and head[0:1] == b"P" and head[1] in b"1234567" and head[2:3] in b" \t\r\n0123456789":
        return "Netpbm (PBM/PGM/PPM/PAM)"
    return None


# --------------------------------------------------------------------------- geometry

_FULL = (0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class _Plan:
    width: int  # the resized image, displayed orientation
    height: int
    box: tuple[float, float, float, float]  # crop box, fractions of the (trimmed) source, displayed orientation
    canvas: tuple[int, int] | None = None  # fit "pad": the exact canvas the image is centred on

    @property
    def size(self) -> tuple[int, int]:
        return self.canvas or (self.width, self.height)


def _contain(src_w: int, src_h: int, w: int | None, h: int | None, upscale: bool) -> tuple[int, int]:
    s = min(side / src for side, src in ((w, src_w), (h, src_h)) if side is not None)
    if s > 1 and not upscale:
        return src_w, src_h
    out_w, out_h = max(1, round(src_w * s)), max(1, round(src_h * s))
    # Float error must never push a side past the box it was fitted to.
    return min(out_w, w or out_w), min(out_h, h or out_h)


def _plan(src_w: int, src_h: int, spec: RenderSpec) -> _Plan:
    """Output geometry for a source of src_w x src_h, all in displayed orientation."""
    w, h = spec.width, spec.height
    if w is None and h is None:
        return _Plan(src_w, src_h, _FULL)
    if w is None or h is None or spec.fit in ("contain", "pad"):
        iw, ih = _contain(src_w, src_h, w, h, spec.upscale)
        return _Plan(iw, ih, _FULL, (w, h) if spec.fit == "pad" else None)
    # cover / exact: the output has the box's aspect; without upscale a box
    # bigger than the source shrinks uniformly until the source can fill it.
    grow = max(w / src_w, h / src_h)
    if grow > 1 and not spec.upscale:
        w, h = max(1, round(w / grow)), max(1, round(h / grow))
    if spec.fit == "exact":
        return _Plan(w, h, _FULL)
    aspect = w / h
    if src_w / src_h > aspect:
        fx, fy = src_h * aspect / src_w, 1.0
    else:
        fx, fy = 1.0, src_w / aspect / src_h
    return _Plan(w, h, ((1 - fx) / 2, (1 - fy) / 2, (1 + fx) / 2, (1 + fy) / 2))


def _check_output(plan: _Plan, spec: RenderSpec, limits: Limits) -> None:
    w, h = plan.size
    max_side = limits.max_output_side
    if spec.format == "webp":
        max_side = min(max_side, _WEBP_MAX_SIDE)
    if w * h > limits.max_output_pixels or max(w, h) > max_side:
        raise ImageError(
            "output_too_large",
            f"requested output is {w}x{h} = {_count(w * h)} pixels; the limit is "
            f"{limits.max_output_pixels:,} pixels and {max_side:,} px per side",
        )


def target_size(src_w: int, src_h: int, spec: RenderSpec, limits: Limits = Limits()) -> tuple[int, int]:
    """Output size for a source of src_w x src_h (displayed orientation, after trim).
    Raises ImageError("output_too_large") when over the output limits."""
    plan = _plan(src_w, src_h, spec)
    _check_output(plan, spec, limits)
    return plan.size


# Where a displayed point (u, v) lies in the stored image, as fractions: the
# inverse of each EXIF orientation's transpose.
_TO_STORED: dict[int, Callable[[float, float], tuple[float, float]]] = {
    1: lambda u, v: (u, v),
    2: lambda u, v: (1 - u, v),
    3: lambda u, v: (1 - u, 1 - v),
    4: lambda u, v: (u, 1 - v),
    5: lambda u, v: (v, u),
    6: lambda u, v: (v, 1 - u),
    7: lambda u, v: (1 - v, 1 - u),
    8: lambda u, v: (1 - v, u),
}


def _box_to_stored(box: tuple[float, float, float, float], orientation: int) -> tuple[float, float, float, float]:
    (a, b), (c, d) = (_TO_STORED[orientation](box[0], box[1]), _TO_STORED[orientation](box[2], box[3]))
    return min(a, c), min(b, d), max(a, c), max(b, d)


def _safe_box(size: tuple[int, int], out: tuple[int, int], box) -> tuple[int, int, int, int]:
    """The source pixels a Lanczos resize of `box` to `out` reads (as Image._get_safe_box)."""
    support_x = (_LANCZOS_SUPPORT - 0.5) * (box[2] - box[0]) / out[0]
    support_y = (_LANCZOS_SUPPORT - 0.5) * (box[3] - box[1]) / out[1]
    return (max(0, int(box[0] - support_x)), max(0, int(box[1] - support_y)),
            min(size[0], math.ceil(box[2] + support_x)), min(size[1], math.ceil(box[3] + support_y)))


# --------------------------------------------------------------------------- pixels

# Same table as ImageOps.exif_transpose.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # corrupt EXIF must not fail an otherwise fine image
        return 1
    return value if value in _TRANSPOSE else 1


def _int_to_l(im: Image.Image) -> Image.Image:
    """16/32-bit integer greyscale -> L, by significant bits (see docstring)."""
    # point() works on I;16 in place of a 2x bigger "I" copy; other layouts
    # (I;16B, ...) go through "I".
    src = im if im.mode in ("I", "I;16") else im.convert("I")
    lo, hi = src.getextrema()
    bits = next((b for b in (8, 10, 12, 16) if hi < 1 << b), max(hi, 1).bit_length())
    out = src if bits == 8 else src.point(lambda v: v * (255 / ((1 << bits) - 1)))
    return out.convert("L")  # clamps negatives to 0


def _normalise(im: Image.Image) -> Image.Image:
    """Decoded image -> L, LA, RGB, RGBA or CMYK (8-bit), alpha made explicit."""
    mode = im.mode
    trns = im.info.get("transparency")
    if mode in ("RGB", "RGBA", "L", "LA", "CMYK") and (trns is None or mode in ("RGBA", "LA")):
        return im
    try:
        if mode == "1":
            return im.convert("L")
        if mode in ("P", "PA"):
            has_alpha = mode == "PA" or trns is not None
            return im.convert("RGBA" if has_alpha else "RGB")
        if mode in ("L", "RGB"):
            return im.convert(mode[0] + "A" if mode == "L" else "RGBA")
        if mode.startswith("I"):
            grey = _int_to_l(im)
            if isinstance(trns, int):
                src = im if mode == "I" else im.convert("I")
                alpha = ImageMath.lambda_eval(lambda a: (a["x"] != trns) * 255, x=src).convert("L")
                grey = Image.merge("LA", (grey, alpha))
            return grey
        if mode == "F":
            lo, hi = im.getextrema()
            if lo >= 0 and hi <= 1:
                return im.point(lambda v: v * 255).convert("L")
            span = (hi - lo) or 1
            return im.point(lambda v: (v - lo) * (255 / span)).convert("L")
        if mode in ("La", "RGBa"):
            return im.convert(mode[:-1] + "A")
        return im.convert("RGB")
    except Exception as e:
        raise ImageError("unsupported_format", f"images in colour mode {mode} are not supported") from e


_SRGB = ImageCms.createProfile("sRGB")
_SRGB_BYTES = ImageCms.ImageCmsProfile(_SRGB).tobytes()


def _to_srgb_transform(icc: bytes | None, mode: str):
    """A transform from the embedded profile to sRGB for images in `mode`, or
    None when there is nothing (valid) to convert."""
    if not icc or mode not in ("RGB", "RGBA", "CMYK"):
        return None
    try:
        prof = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = prof.profile.xcolor_space.strip()
        if space != ("CMYK" if mode == "CMYK" else "RGB"):
            return None
        if "srgb" in ImageCms.getProfileDescription(prof).lower():
            return None  # already what we output; skip the work
        return ImageCms.buildTransform(prof, _SRGB, mode, "RGBA" if mode == "RGBA" else "RGB")
    except Exception:  # unparseable profile: treat as untagged (sRGB)
        return None


def _kept_exif(im: Image.Image) -> bytes | None:
    if not im.info.get("exif"):
        return None  # TIFF tags etc. are not EXIF worth carrying
    try:
        exif = im.getexif()
        if 0x0112 in exif:
            exif[0x0112] = 1
        return exif.tobytes()
    except Exception:
        return None


def _deep(im: Image.Image) -> Image.Image | None:
    """The 16-bit greyscale source as I;16 (for TIFF output), or None when it is not one."""
    if im.mode not in ("I;16", "I;16B", "I;16L", "I;16N") or im.info.get("transparency") is not None:
        return None
    return im if im.mode == "I;16" else im.convert("I;16")


def _trim_box(im: Image.Image, tolerance: int) -> tuple[int, int, int, int] | None:
    """Pixel box of what differs from the top-left pixel by more than `tolerance` % in any band
    (by alpha alone when that pixel is transparent), or None when there is nothing to cut.
    Works strip by strip, so the temporary images stay small."""
    threshold = round(tolerance * 255 / 100)
    lut = [0] * (threshold + 1) + [255] * (255 - threshold)
    corner = im.getpixel((0, 0))
    corner = corner if isinstance(corner, tuple) else (corner,)
    by_alpha = im.mode in ("LA", "RGBA") and corner[-1] <= threshold
    width, height = im.size
    rows = max(1, (1 << 20) // width)
    found = None
    for y in range(0, height, rows):
        strip = im.crop((0, y, width, min(height, y + rows)))
        if by_alpha:
            mask = strip.getchannel("A").point(lut)
        else:
            diff = ImageChops.difference(strip, Image.new(im.mode, strip.size, corner))
            mask = diff.point(lut * len(corner))
        box = mask.getbbox(alpha_only=False)
        if box:
            box = (box[0], box[1] + y, box[2], box[3] + y)
            found = box if found is None else (min(found[0], box[0]), min(found[1], box[1]),
                                               max(found[2], box[2]), max(found[3], box[3]))
    if found is None or found == (0, 0, width, height):
        return None
    return found


def _flatten(im, rgb):
    rgba = im if im.mode == "RGBA" else im.convert("RGBA")
    flat = Image.new("RGB", im.size, rgb)
    flat.paste(rgba, mask=rgba)  # an RGBA mask means its alpha band, without a copy
    return flat


def _premultiply(im):
    return im.convert({"RGBA": "RGBa", "LA": "La"}[im.mode])


def _strip_reduce(im, convert, factor, box) -> Image.Image:
    """convert(im.crop(box)) box-reduced by `factor`, made strip by strip.

    What Image.resize(reducing_gap=...) does on a converted (premultiplied or flattened) copy,
    pixel for pixel, without that full-size copy: strips start on multiples of the factor, so
    every reduction block is the one a whole-image reduce would average."""
    fx, fy = factor
    x0, y0, x1, y1 = box
    step = _STRIP_ROWS * fy
    out = None
    for y in range(y0, y1, step):
        strip = convert(im.crop((x0, y, x1, min(y1, y + step))))
        if factor != (1, 1):
            strip = strip.reduce(factor)
        if out is None:
            out = Image.new(strip.mode, (math.ceil((x1 - x0) / fx), math.ceil((y1 - y0) / fy)))
        out.paste(strip, (0, (y - y0) // fy))
    return out


def _sharpen(im: Image.Image, amount: int) -> Image.Image:
    if im.mode == "I;16":
        # Pillow blurs 8-bit bands only; the same unsharp mask as a 5x5 kernel (Gaussian ~ radius 1).
        a = amount / 100
        g = [1, 4, 6, 4, 1]
        kernel = [-a * g[i] * g[j] / 256 for i in range(5) for j in range(5)]
        kernel[12] += 1 + a
        # Pillow's kernel filter clips I;16 to 8 bits; in 32-bit "I" it computes, and I -> I;16 clamps.
        return im.convert("I").filter(ImageFilter.Kernel((5, 5), kernel, scale=1)).convert("I;16")
    mask = ImageFilter.UnsharpMask(radius=1, percent=amount, threshold=2)
    if im.mode in ("RGBA", "LA"):  # sharpening alpha would draw halos into the transparency
        bands = im.split()
        colour = Image.merge(im.mode[:-1], bands[:-1]).filter(mask)
        return Image.merge(im.mode, (*colour.split(), bands[-1]))
    return im.filter(mask)


def _pad(im: Image.Image, canvas: tuple[int, int], background: str) -> Image.Image:
    if im.size == canvas:
        return im
    rgb = ImageColor.getrgb(background)[:3]
    if im.mode in ("L", "LA") and len(set(rgb)) > 1:  # a coloured canvas makes the output colour
        im = im.convert("RGBA" if im.mode == "LA" else "RGB")
    luma = ImageColor.getcolor(background, "L")
    fill = {"RGB": rgb, "RGBA": rgb + (255,), "L": luma, "LA": (luma, 255), "I;16": luma * 257}[im.mode]
    out = Image.new(im.mode, canvas, fill)
    out.paste(im, ((canvas[0] - im.width) // 2, (canvas[1] - im.height) // 2))
    return out


def _exif_with_dpi(exif: bytes | None, dpi: int) -> bytes:
    tags = Image.Exif()
    if exif:
        tags.load(exif)
    tags[0x011A] = tags[0x011B] = TiffImagePlugin.IFDRational(dpi, 1)  # X/YResolution
    tags[0x0128] = 2  # ResolutionUnit: inch
    return tags.tobytes()


# --------------------------------------------------------------------------- render


def _describe(fmt: str) -> str:
    return {"WEBP": "WebP", "MPO": "MPO (JPEG)", "HEIF": "HEIF/HEIC"}.get(fmt, fmt)


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**10 else f"{n:.1e}"


def _detail(e: BaseException) -> str:
    if isinstance(e, UnidentifiedImageError):  # its text is just the file object's repr
        return "unrecognised header"
    text = " ".join(str(e).split())[:160]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _bomb_error(e: Exception, limits: Limits) -> ImageError:
    # Pillow's own check fired before ours could; recover the declared count if we can.
    m = re.search(r"\((\d+) pixels\)", str(e))
    declared = int(m.group(1)) if m else None
    if declared is not None and declared <= limits.max_pixels:
        return ImageError(
            "too_many_pixels",
            f"image declares {_count(declared)} pixels, over this process's pixel ceiling "
            f"(PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS:,})",
        )
    what = f"{_count(declared)} pixels" if declared is not None else "more pixels than allowed"
    return ImageError("too_many_pixels", f"image declares {what}, over the limit of {limits.max_pixels:,}")


def _as_seekable(source: BinaryIO | bytes) -> BinaryIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    seekable = getattr(source, "seekable", None)
    if seekable is not None and seekable():
        return source
    return io.BytesIO(source.read())


def _supported_list() -> str:
    names = ["JPEG", "PNG", "WebP", "GIF", "TIFF", "BMP", "ICO", "TGA"] + (["AVIF"] if _HAS_AVIF else []) + (
        ["HEIC/HEIF"] if _HAS_HEIF else [])
    return ", ".join(names[:-1]) + " or " + names[-1]


def render(
    source: BinaryIO | bytes, specs: Sequence[RenderSpec], limits: Limits = Limits(), preview: bool = False
) -> Rendering:
    """Decode once, return one Rendered per spec in the same order (a list), with the
    preview rendition in ``.preview`` when asked for (else None).
    Raises ImageError (and nothing else for bad input data)."""
    specs = list(specs)
    fp = _as_seekable(source)
    fp.seek(0)  # Image.open reads from the start regardless
    head = fp.read(64)
    fp.seek(0)
    fmt = sniff_format(head)
    if fmt is None:
        if not head:
            raise ImageError("not_an_image", "the file is empty")
        refused = _refused_format(head)
        if refused:
            raise ImageError("unsupported_format", f"{refused} images are not supported; use {_supported_list()}")
        raise ImageError("not_an_image", "the file is not an image in a supported format (checked by content, not name)")
    with _open(fp, fmt, limits) as im:
        return _render_open(im, fp, fmt, specs, limits, preview)


def _open(fp: BinaryIO, fmt: str, limits: Limits) -> Image.Image:
    fp.seek(0)
    try:
        return Image.open(fp, formats=_OPEN_AS.get(fmt, (fmt,)))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _bomb_error(e, limits) from e
    except Exception as e:
        raise ImageError(
            "corrupt_image",
            f"could not read the {_describe(fmt)} header: it is damaged, declares an invalid size "
            f"or carries oversized metadata ({_detail(e)})",
        ) from e


class _Source:
    """The decoded image and everything derived from it, each built once and shared by the specs."""

    def __init__(self, im: Image.Image, full: tuple[int, int], extent: tuple[float, float], orientation: int,
                 keep_exif: bool):
        self.im = im
        self.full = full  # the source's size before any DCT scaling (stored orientation)
        self.extent = extent  # that full extent in decoded pixels
        self.orientation = orientation
        self.icc = im.info.get("icc_profile")
        self.exif = _kept_exif(im) if keep_exif else None
        self._base: Image.Image | None = None
        self._deep: Image.Image | None | bool = False
        self._transform = False
        self._regions: dict[int, tuple[float, float, float, float]] = {}
        self.derived: dict = {}

    @property
    def base(self) -> Image.Image:
        """L, LA, RGB, RGBA or CMYK, 8-bit, alpha made explicit, no metadata."""
        if self._base is None:
            base = _normalise(self.im)
            base.info = {}  # nothing from the source leaks into the encoders
            self._base = base
        return self._base

    @property
    def deep(self) -> Image.Image | None:
        if self._deep is False:
            self._deep = _deep(self.im)
        return self._deep  # type: ignore[return-value]

    @property
    def transform(self):
        if self._transform is False:
            self._transform = _to_srgb_transform(self.icc, self.base.mode)
        return self._transform

    def region(self, tolerance: int | None) -> tuple[float, float, float, float]:
        """The trimmed part of the source, as fractions of it (stored orientation)."""
        if tolerance is None:
            return _FULL
        if tolerance not in self._regions:
            box = _trim_box(self.base, tolerance)
            w, h = self.extent  # the decoded image may be a pixel wider (DCT scaling rounds up)
            self._regions[tolerance] = _FULL if box is None else (
                box[0] / w, box[1] / h, min(1.0, box[2] / w), min(1.0, box[3] / h))
        return self._regions[tolerance]


@dataclass
class _Layout:
    spec: RenderSpec
    plan: _Plan
    box: tuple[float, float, float, float]  # source box, fractions of the source, stored orientation
    out: tuple[int, int]  # resized size, stored orientation
    trimmed: bool = False


def _layout(src: _Source, spec: RenderSpec, limits: Limits, trim: bool = True) -> _Layout:
    region = src.region(spec.trim) if trim else _FULL
    rw, rh = region[2] - region[0], region[3] - region[1]
    reg_w, reg_h = max(1, round(src.full[0] * rw)), max(1, round(src.full[1] * rh))
    swap = src.orientation >= 5
    plan = _plan(*((reg_h, reg_w) if swap else (reg_w, reg_h)), spec)
    _check_output(plan, spec, limits)
    b = _box_to_stored(plan.box, src.orientation)
    box = (region[0] + b[0] * rw, region[1] + b[1] * rh, region[0] + b[2] * rw, region[1] + b[3] * rh)
    out = (plan.height, plan.width) if swap else (plan.width, plan.height)
    return _Layout(spec, plan, box, out, trimmed=region != _FULL)


def _needed(layouts: list[_Layout]) -> tuple[int, int]:
    """The full-image size (stored orientation) a decode needs so that every output has enough pixels."""
    need_w = max(math.ceil(lay.out[0] / max(lay.box[2] - lay.box[0], 1e-9)) for lay in layouts)
    need_h = max(math.ceil(lay.out[1] / max(lay.box[3] - lay.box[1], 1e-9)) for lay in layouts)
    return max(1, need_w), max(1, need_h)


def _decode(im: Image.Image, fmt: str, limits: Limits, need: tuple[int, int] | None) -> tuple[float, float]:
    """Load the pixels (JPEG: DCT-scaled to `need`); returns the full extent in decoded pixels."""
    sw, sh = im.size
    extent = (float(sw), float(sh))
    try:
        if need is not None:
            drafted = im.draft(None, need)
            if drafted:
                extent = drafted[1][2], drafted[1][3]
        im.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _bomb_error(e, limits) from e
    except Exception as e:
        raise ImageError(
            "corrupt_image",
            f"the {_describe(fmt)} data is damaged or truncated and could not be decoded ({_detail(e)})",
        ) from e
    if im.width * im.height > limits.max_pixels:  # ICO & co. may grow on load
        raise ImageError(
            "too_many_pixels",
            f"image is {im.width}x{im.height} = {_count(im.width * im.height)} pixels, "
            f"over the limit of {limits.max_pixels:,}",
        )
    return extent


def _render_open(im: Image.Image, fp: BinaryIO, sniffed: str, specs: list[RenderSpec], limits: Limits,
                 preview: bool) -> Rendering:
    fmt = im.format or "image"
    sw, sh = im.size
    if sw <= 0 or sh <= 0:
        raise ImageError("corrupt_image", f"the {_describe(fmt)} declares an invalid size {sw}x{sh}")
    if sw * sh > limits.max_pixels:
        raise ImageError(
            "too_many_pixels",
            f"image is {sw}x{sh} = {_count(sw * sh)} pixels, over the limit of {limits.max_pixels:,}",
        )
    is_jpeg = fmt in ("JPEG", "MPO")
    all_specs = specs + ([PREVIEW_SPEC] if preview else [])
    keep_exif = any(s.keep_metadata for s in specs)
    extra = None
    try:
        # JPEG keeps orientation in the header, so we can plan (and reject
        # oversized outputs) before decoding. Elsewhere it may follow the
        # pixels (PNG eXIf), and reading it would decode anyway.
        if not is_jpeg:
            _decode(im, fmt, limits, None)
        orientation = _orientation(im)
        probe = _Source(im, (sw, sh), (float(sw), float(sh)), orientation, False)
        untrimmed = [_layout(probe, s, limits, trim=False) for s in all_specs]
        extent = _decode(im, fmt, limits, _needed(untrimmed)) if is_jpeg and untrimmed else (float(sw), float(sh))
        if is_jpeg and not untrimmed:
            extent = _decode(im, fmt, limits, None)
        src = _Source(im, (sw, sh), extent, orientation, keep_exif)
        layouts = [_layout(src, s, limits) for s in all_specs]
        if is_jpeg and extent[0] < sw and any(lay.trimmed for lay in layouts):
            need = _needed(layouts)
            if need[0] > extent[0] or need[1] > extent[1]:
                # The trimmed region is too small at this DCT scale: decode once more, finer.
                extra = _open(fp, sniffed, limits)
                extent = _decode(extra, fmt, limits, (min(need[0], sw), min(need[1], sh)))
                src = _Source(extra, (sw, sh), extent, orientation, keep_exif)
                layouts = [_layout(src, s, limits) for s in all_specs]
    except ImageError:
        if extra is not None:
            extra.close()
        raise
    except Exception as e:
        if extra is not None:
            extra.close()
        raise ImageError(
            "corrupt_image",
            f"the {_describe(fmt)} data is damaged or truncated and could not be decoded ({_detail(e)})",
        ) from e

    try:
        return _render_all(src, layouts[: len(specs)], layouts[len(specs):])
    except ImageError:
        raise
    except Exception as e:
        raise ImageError("corrupt_image", f"the {_describe(fmt)} could not be converted ({_detail(e)})") from e
    finally:
        if extra is not None:
            extra.close()


def _render_all(src: _Source, layouts: list[_Layout], preview: list[_Layout]) -> Rendering:
    result = Rendering()
    want = preview[0].plan.size if preview else None
    candidate: list[Image.Image] = []  # the smallest intermediate the preview can be cut from

    def offer(image: Image.Image, lay: _Layout) -> None:
        if want is None or lay.trimmed or lay.plan.box != _FULL or lay.spec.fit == "exact":
            return
        if image.mode not in ("L", "LA", "RGB", "RGBA") or image.width < want[0] or image.height < want[1]:
            return
        if not candidate or image.width * image.height < candidate[0].width * candidate[0].height:
            candidate[:] = [image]

    for lay in layouts:
        result.append(_render_one(src, lay, offer))
    if preview:
        if candidate:
            result.preview = _encode_preview(candidate[0], want)
        else:
            result.preview = _render_one(src, preview[0], None)
    return result


def _resize_plan(src: _Source, image: Image.Image, lay: _Layout):
    """(w, h, source box in pixels) for Image.resize, or None when the output is the image as is."""
    if lay.out == image.size and lay.box == _FULL:
        return None
    W, H = src.extent
    b = lay.box
    return lay.out[0], lay.out[1], (b[0] * W, b[1] * H, b[2] * W, b[3] * H)


def _resized(src: _Source, lay: _Layout) -> tuple[Image.Image, bool]:
    """The resized image (stored orientation) and whether it is already flattened."""
    spec = lay.spec
    deep = src.deep if spec.format == "tiff" else None
    image = deep if deep is not None else src.base
    resize = _resize_plan(src, image, lay)
    if resize is None:
        return image, False
    rw, rh, box = resize
    if deep is not None:  # Pillow cannot box-reduce I;16; plain Lanczos reads every pixel instead
        return deep.resize((rw, rh), Image.Resampling.LANCZOS, box=box), False
    if image.mode not in _PREMULTIPLIED:
        return image.resize((rw, rh), Image.Resampling.LANCZOS, box=box, reducing_gap=_REDUCING_GAP), False
    # With alpha, Pillow's resize premultiplies a full-size copy and then ignores reducing_gap
    # (3x slower). Instead: JPEG flattens onto its background (resizing commutes with that, and
    # RGB is cheaper still), others premultiply; both strip by strip, then box-reduce, then Lanczos.
    # An ICC conversion must happen before flattening, so it disables the shortcut.
    flat = spec.format == "jpeg" and src.transform is None
    rgb = ImageColor.getrgb(spec.background)[:3]
    factor = (int((box[2] - box[0]) / rw / _REDUCING_GAP) or 1, int((box[3] - box[1]) / rh / _REDUCING_GAP) or 1)
    safe = _safe_box(image.size, (rw, rh), box)
    key = (("flat", rgb) if flat else "premultiplied", factor, safe)
    if key not in src.derived:
        convert = (lambda s: _flatten(s, rgb)) if flat else _premultiply
        src.derived[key] = _strip_reduce(image, convert, factor, safe)
    fx, fy = factor
    inner = ((box[0] - safe[0]) / fx, (box[1] - safe[1]) / fy, (box[2] - safe[0]) / fx, (box[3] - safe[1]) / fy)
    out = src.derived[key].resize((rw, rh), Image.Resampling.LANCZOS, box=inner)
    if out.mode in ("RGBa", "La"):
        out = out.convert(out.mode[:-1] + "A")
    return out, flat


_PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}


def _render_one(src: _Source, lay: _Layout, offer) -> Rendered:
    spec = lay.spec
    out, _ = _resized(src, lay)
    if src.orientation in _TRANSPOSE:
        out = out.transpose(_TRANSPOSE[src.orientation])

    if out.mode != "I;16":
        if src.transform is not None:
            out = ImageCms.applyTransform(out, src.transform)
        elif out.mode == "CMYK":
            out = out.convert("RGB")
    if offer is not None:
        offer(out, lay)
    if spec.sharpen:
        out = _sharpen(out, spec.sharpen)
    if lay.plan.canvas:
        out = _pad(out, lay.plan.canvas, spec.background)

    if spec.format == "jpeg" and out.mode in ("LA", "RGBA"):
        out = _flatten(out, ImageColor.getrgb(spec.background)[:3])
    elif spec.format in ("webp", "avif") and out.mode in ("L", "LA"):
        out = out.convert("RGB" if out.mode == "L" else "RGBA")
    data, quality = _encode(out, spec, src.exif)
    _, content_type, ext = _OUTPUTS[spec.format]
    return Rendered(data, spec.format, content_type, ext, out.width, out.height, quality)


def _encode_preview(image: Image.Image, size: tuple[int, int]) -> Rendered:
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)
    if image.mode in ("L", "LA"):
        image = image.convert("RGB" if image.mode == "L" else "RGBA")
    data, quality = _encode(image, PREVIEW_SPEC, None)
    return Rendered(data, "webp", "image/webp", "webp", image.width, image.height, quality)


def _encode(out: Image.Image, spec: RenderSpec, exif: bytes | None) -> tuple[bytes, int | None]:
    pil_fmt = _OUTPUTS[spec.format][0]
    # ImageCms tags its output sRGB; only keep_metadata / embed_icc may put a profile back.
    out.info = {}
    params: dict = {}
    exif = exif if spec.keep_metadata else None
    if spec.dpi:
        if spec.format in ("webp", "avif"):  # no density field of their own: EXIF resolution
            exif = _exif_with_dpi(exif, spec.dpi)
        else:
            params["dpi"] = (spec.dpi, spec.dpi)
            if exif:
                exif = _exif_with_dpi(exif, spec.dpi)
    if (spec.keep_metadata or spec.embed_icc) and out.mode in ("RGB", "RGBA"):
        params["icc_profile"] = _SRGB_BYTES
    # A JPEG APP1 segment holds at most 64 KiB; drop EXIF rather than fail.
    if exif and (spec.format != "jpeg" or len(exif) < 65000) and spec.format != "tiff":
        params["exif"] = exif
    if spec.format == "jpeg":
        params["optimize"] = True
    elif spec.format == "avif":
        params["speed"] = AVIF_SPEED
    elif spec.format == "png":
        params.update(compress_level=round(spec.compression * 9 / 100), optimize=spec.compression == 100)
    elif spec.format == "tiff":
        params.update(compression=_TIFF_COMPRESSION[spec.tiff_compression], tiffinfo={_TIFF_PREDICTOR: 2})

    def encode(quality: int | None) -> bytes:
        buf = io.BytesIO()
        out.save(buf, pil_fmt, **params, **({} if quality is None else {"quality": quality}))
        return buf.getvalue()

    if spec.format not in LOSSY:
        return encode(None), None
    data = encode(spec.quality)
    if spec.max_bytes is None or len(data) <= spec.max_bytes:
        return data, spec.quality
    return _fit_bytes(encode, spec, len(data))


def _fit_bytes(encode, spec: RenderSpec, size_hi: int) -> tuple[bytes, int]:
    """The highest quality below spec.quality whose file fits spec.max_bytes, within
    MAX_BYTES_ENCODES encodes in all: interpolation on log(size), bisection as the safeguard."""
    limit, hi = spec.max_bytes, spec.quality
    lo = min(QUALITY_FLOOR, hi)
    best = encode(lo) if lo < hi else None
    if best is None or len(best) > limit:
        floor = len(best) if best is not None else size_hi
        raise ImageError(
            "exceeds_max_bytes",
            f"the {spec.format.upper()} output is {floor:,} bytes even at quality {lo}, over max_bytes "
            f"{limit:,}; raise max_bytes or make the output smaller (width/height)",
        )
    size_lo, encodes, last_width = len(best), 2, hi - lo
    while hi - lo > 1 and encodes < MAX_BYTES_ENCODES:
        width = hi - lo
        if width * 2 > last_width and encodes > 2:
            q = (lo + hi) // 2  # the last guess did not halve the bracket
        else:
            t = (math.log(limit) - math.log(size_lo)) / (math.log(size_hi) - math.log(size_lo))
            q = round(lo + t * width)
        q = min(hi - 1, max(lo + 1, q))
        last_width = width
        data = encode(q)
        encodes += 1
        if len(data) <= limit:
            lo, size_lo, best = q, len(data), data
        else:
            hi, size_hi = q, len(data)
    return best, lo
