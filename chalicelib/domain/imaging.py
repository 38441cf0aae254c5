"""Pure image pipeline: one untrusted upload in, one encoded output per spec out.

No AWS here: callers hand in bytes or a file object and get bytes back.

Error codes (``ImageError.code``; stable, part of the API):

``not_an_image``
    The bytes are not an image type we know by content (EPS, PDF, Office
    documents, text, empty files...). The file name is never consulted.
``unsupported_format``
    A raster format we recognise but refuse (JPEG 2000, BLP, DDS, PSD, Netpbm,
    HEIC, ...), or a colour mode we cannot convert.
``too_many_pixels``
    The declared size is over ``Limits.max_pixels``; checked from the header,
    before any pixel is decoded.
``corrupt_image``
    Truncated or broken data, an unreadable header, zero or negative
    dimensions, or any other decoder failure.
``output_too_large``
    A requested output would exceed ``Limits.max_output_pixels`` or
    ``Limits.max_output_side`` (e.g. width 800 on a 1x20000 strip with upscale).

Policy decisions worth knowing:

* Input formats: JPEG (and MPO), PNG (and APNG), WebP, GIF, TIFF, BMP, ICO, TGA,
  and AVIF when this Pillow build has it. The format is decided from the magic
  bytes, and ``Image.open`` is only allowed the matching plugin, so nothing can
  reach Ghostscript or another external interpreter.
* Animated / multi-page inputs (GIF, APNG, WebP, AVIF sequences, MPO, TIFF
  pages) are rendered from their first frame / page only.
* Orientation: the EXIF orientation tag (or XMP ``tiff:Orientation`` when there
  is no EXIF one, as Pillow's ``exif_transpose`` does) is applied to the small
  resized result, never to the full image. Sizes refer to the displayed
  (oriented) image. For JPEG the tag is read from the header before decoding;
  other formats may store it after the pixels (PNG eXIf), so it is read after.
* 16-bit and 32-bit integer greyscale is scaled to 8 bits by the smallest of
  8/10/12/16 (or more) significant bits that holds the brightest pixel, so
  full-range 16-bit data maps like ``/257``, while 10- or 12-bit data stored in
  16-bit containers (scanners, microscopes) is not crushed to black and
  8-bit-in-16 data is unchanged. Contrast is never auto-stretched.
* Colour: an embedded ICC profile is converted to sRGB (unparseable or
  mismatched profiles are ignored; grey profiles are ignored, grey stays grey).
  CMYK without a profile uses Pillow's plain conversion.
* Alpha (including palette/tRNS transparency) is kept for PNG and WebP and
  flattened onto ``RenderSpec.background`` for JPEG.
* Output: one decode however many specs; outputs come back in spec order, and
  a spec over the output limits fails the whole call (``output_too_large``).
  JPEG sources are decoded with libjpeg's DCT scaling (``draft``) at the
  smallest 1/2..1/8 scale that still has enough pixels for every output, then
  resized with ``reducing_gap=2.0`` (Lanczos). PNG ``compression`` 0-100 maps
  to zlib level ``round(c * 9 / 100)`` (70 -> 6, zlib's default; 0 -> stored),
  and 100 also turns on Pillow's ``optimize``. Without ``upscale`` nothing is
  enlarged: contain keeps the source size, cover/exact shrink the box
  uniformly (keeping its aspect) until the source fills it.
* Metadata (EXIF, XMP, ICC) is stripped. With ``keep_metadata`` the EXIF block
  is carried with its orientation reset to 1, and an sRGB ICC profile is
  embedded (pixels are sRGB by then). XMP is always dropped: it can carry a
  stale orientation and PNG output has no clean place for it.
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
from typing import BinaryIO, Sequence

from PIL import Image, ImageCms, ImageColor, ImageMath, UnidentifiedImageError, features

__all__ = [
    "ALLOWED_INPUT_FORMATS",
    "ERROR_CODES",
    "ImageError",
    "Limits",
    "RenderSpec",
    "Rendered",
    "render",
    "sniff_format",
    "target_size",
]

ERROR_CODES = frozenset(
    {"not_an_image", "unsupported_format", "too_many_pixels", "corrupt_image", "output_too_large"}
)

_HAS_AVIF = bool(features.check("avif"))
ALLOWED_INPUT_FORMATS: tuple[str, ...] = (
    "JPEG", "MPO", "PNG", "WEBP", "GIF", "TIFF", "BMP", "ICO", "TGA",
) + (("AVIF",) if _HAS_AVIF else ())

# Pillow plugins each sniffed format may be opened with (MPO is a JPEG by magic).
_OPEN_AS = {"JPEG": ("JPEG", "MPO")}

_OUTPUTS = {
    "png": ("PNG", "image/png", "png"),
    "jpeg": ("JPEG", "image/jpeg", "jpg"),
    "webp": ("WEBP", "image/webp", "webp"),
}
_FORMAT_ALIASES = {"jpg": "jpeg"}
_WEBP_MAX_SIDE = 16383  # libwebp's hard limit


class ImageError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class RenderSpec:
    format: str  # "png" | "jpeg" | "webp"
    width: int | None = None
    height: int | None = None
    fit: str = "contain"  # "contain" | "cover" | "exact"
    quality: int = 85  # 1-100 JPEG/WebP
    compression: int = 70  # 0-100 PNG: 0 = fastest/biggest, 100 = smallest
    background: str = "#ffffff"  # alpha is flattened onto this for JPEG
    keep_metadata: bool = False
    upscale: bool = False

    def __post_init__(self) -> None:
        # Specs come from validated pipelines; a bad one is a programming error.
        fmt = _FORMAT_ALIASES.get(str(self.format).lower(), str(self.format).lower())
        if fmt not in _OUTPUTS:
            raise ValueError(f"format must be png, jpeg or webp, not {self.format!r}")
        object.__setattr__(self, "format", fmt)
        for name in ("width", "height"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {v!r}")
        if self.fit not in ("contain", "cover", "exact"):
            raise ValueError(f"fit must be contain, cover or exact, not {self.fit!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be 1-100, not {self.quality!r}")
        if not 0 <= self.compression <= 100:
            raise ValueError(f"compression must be 0-100, not {self.compression!r}")
        ImageColor.getrgb(self.background)  # raises ValueError when unparseable


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 50_000_000  # source, checked from the header before decoding
    max_output_pixels: int = 50_000_000
    max_output_side: int = 16384


@dataclass(frozen=True)
class Rendered:
    data: bytes
    format: str  # "png" | "jpeg" | "webp"
    content_type: str
    extension: str  # "png" | "jpg" | "webp"
    width: int
    height: int


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
    if _HAS_AVIF and _ftyp_brands(head) & {b"avif", b"avis"}:
        return "AVIF"
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
        return "HEIF/HEIC"
    if len(head) >= 3 and head[0:1] == b"P" and head[1] in b"1234567" and head[2:3] in b" \t\r\n0123456789":
        return "Netpbm (PBM/PGM/PPM/PAM)"
    return None


# --------------------------------------------------------------------------- geometry

_FULL = (0.0, 0.0, 1.0, 1.0)


def _plan(src_w: int, src_h: int, spec: RenderSpec) -> tuple[int, int, tuple[float, float, float, float]]:
    """(out_w, out_h, crop box as fractions of the source), all in displayed orientation."""
    w, h = spec.width, spec.height
    if w is None and h is None:
        return src_w, src_h, _FULL
    if w is None or h is None or spec.fit == "contain":
        s = min(side / src for side, src in ((w, src_w), (h, src_h)) if side is not None)
        if s > 1 and not spec.upscale:
            return src_w, src_h, _FULL
        out_w, out_h = max(1, round(src_w * s)), max(1, round(src_h * s))
        # Float error must never push a side past the box it was fitted to.
        return min(out_w, w or out_w), min(out_h, h or out_h), _FULL
    # cover / exact: the output has the box's aspect; without upscale a box
    # bigger than the source shrinks uniformly until the source can fill it.
    grow = max(w / src_w, h / src_h)
    if grow > 1 and not spec.upscale:
        w, h = max(1, round(w / grow)), max(1, round(h / grow))
    if spec.fit == "exact":
        return w, h, _FULL
    aspect = w / h
    if src_w / src_h > aspect:
        fx, fy = src_h * aspect / src_w, 1.0
    else:
        fx, fy = 1.0, src_w / aspect / src_h
    return w, h, ((1 - fx) / 2, (1 - fy) / 2, (1 + fx) / 2, (1 + fy) / 2)


def _check_output(w: int, h: int, spec: RenderSpec, limits: Limits) -> None:
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
    """Output size for a source of src_w x src_h (displayed orientation).
    Raises ImageError("output_too_large") when over the output limits."""
    w, h, _ = _plan(src_w, src_h, spec)
    _check_output(w, h, spec, limits)
    return w, h


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


# --------------------------------------------------------------------------- render


def _describe(fmt: str) -> str:
    return {"WEBP": "WebP", "MPO": "MPO (JPEG)"}.get(fmt, fmt)


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


def render(
    source: BinaryIO | bytes, specs: Sequence[RenderSpec], limits: Limits = Limits()
) -> list[Rendered]:
    """Decode once, return one Rendered per spec in the same order.
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
            raise ImageError(
                "unsupported_format",
                f"{refused} images are not supported; use JPEG, PNG, WebP, GIF, TIFF, BMP, ICO, TGA"
                + (" or AVIF" if _HAS_AVIF else ""),
            )
        raise ImageError("not_an_image", "the file is not an image in a supported format (checked by content, not name)")

    try:
        im = Image.open(fp, formats=_OPEN_AS.get(fmt, (fmt,)))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _bomb_error(e, limits) from e
    except Exception as e:
        raise ImageError(
            "corrupt_image",
            f"could not read the {_describe(fmt)} header: it is damaged, declares an invalid size "
            f"or carries oversized metadata ({_detail(e)})",
        ) from e
    with im:
        return _render_open(im, specs, limits)


def _plans(disp_w: int, disp_h: int, specs: list[RenderSpec], limits: Limits) -> list:
    plans = []
    for spec in specs:
        ow, oh, box = _plan(disp_w, disp_h, spec)
        _check_output(ow, oh, spec, limits)
        plans.append((ow, oh, box))
    return plans


def _render_open(im: Image.Image, specs: list[RenderSpec], limits: Limits) -> list[Rendered]:
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
    extent = (float(sw), float(sh))  # the source's full extent in decoded pixels
    try:
        # JPEG keeps orientation in the header, so we can plan (and reject
        # oversized outputs) before decoding. Elsewhere it may follow the
        # pixels (PNG eXIf), and reading it would decode anyway.
        if not is_jpeg:
            im.load()
        orientation = _orientation(im)
        swap = orientation >= 5
        plans = _plans(sh if swap else sw, sw if swap else sh, specs, limits)
        if is_jpeg and plans:
            # libjpeg scales by 1/2..1/8 while decoding: ask for the smallest
            # size that still has enough pixels for every output.
            need_w = max(math.ceil(ow / (b[2] - b[0])) for ow, oh, b in plans)
            need_h = max(math.ceil(oh / (b[3] - b[1])) for ow, oh, b in plans)
            if swap:
                need_w, need_h = need_h, need_w
            drafted = im.draft(None, (max(1, need_w), max(1, need_h)))
            if drafted:
                extent = drafted[1][2], drafted[1][3]
            im.load()
        if im.width * im.height > limits.max_pixels:  # ICO & co. may grow on load
            raise ImageError(
                "too_many_pixels",
                f"image is {im.width}x{im.height} = {_count(im.width * im.height)} pixels, "
                f"over the limit of {limits.max_pixels:,}",
            )
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _bomb_error(e, limits) from e
    except Exception as e:
        raise ImageError(
            "corrupt_image",
            f"the {_describe(fmt)} data is damaged or truncated and could not be decoded ({_detail(e)})",
        ) from e

    try:
        base = _normalise(im)
        transform = _to_srgb_transform(im.info.get("icc_profile"), base.mode)
        exif = _kept_exif(im) if any(s.keep_metadata for s in specs) else None
        base.info = {}  # nothing from the source leaks into the encoders
        sources: dict = {}  # derived full-size images, built once, shared by specs
        outputs = []
        for spec, plan in zip(specs, plans):
            key = _source_kind(base, spec, plan, extent, orientation, transform)
            if key not in sources:
                sources[key] = _make_source(base, key)
            outputs.append(_render_one(sources[key], extent, spec, plan, orientation, transform, exif))
        return outputs
    except ImageError:
        raise
    except Exception as e:
        raise ImageError("corrupt_image", f"the {_describe(fmt)} could not be converted ({_detail(e)})") from e


def _resize_plan(size, extent, plan, orientation):
    """(w, h, source box) for Image.resize in stored orientation, or None when
    the output is the decoded image as is."""
    ow, oh, box = plan
    swap = orientation >= 5
    rw, rh = (oh, ow) if swap else (ow, oh)
    # Crop boxes are centred, so a transpose just swaps their axes.
    bx0, by0, bx1, by1 = (box[1], box[0], box[3], box[2]) if swap else box
    if (rw, rh) == size and box == _FULL:
        return None
    W, H = extent
    return rw, rh, (bx0 * W, by0 * H, bx1 * W, by1 * H)


_PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}


def _source_kind(base, spec, plan, extent, orientation, transform):
    """Which full-size image a spec resizes from. With alpha, Pillow's resize
    premultiplies by itself but then ignores reducing_gap (3x slower), so:
    JPEG flattens onto its background first (resizing commutes with that, and
    RGB is cheaper still); others resize a premultiplied copy. An ICC
    conversion must happen before flattening, so it disables the shortcut."""
    if base.mode not in _PREMULTIPLIED:
        return "base"
    if spec.format == "jpeg" and transform is None:
        return ("flat", ImageColor.getrgb(spec.background)[:3])
    if _resize_plan(base.size, extent, plan, orientation) is None:
        return "base"
    return "premultiplied"


def _make_source(base, key):
    if key == "base":
        return base
    if key == "premultiplied":
        return base.convert(_PREMULTIPLIED[base.mode])
    return _flatten(base, key[1])


def _flatten(im, rgb):
    rgba = im if im.mode == "RGBA" else im.convert("RGBA")
    flat = Image.new("RGB", im.size, rgb)
    flat.paste(rgba, mask=rgba)  # an RGBA mask means its alpha band, without a copy
    return flat


def _render_one(src, extent, spec, plan, orientation, transform, exif) -> Rendered:
    resize = _resize_plan(src.size, extent, plan, orientation)
    if resize is None:
        out = src
    else:
        rw, rh, src_box = resize
        out = src.resize((rw, rh), Image.Resampling.LANCZOS, box=src_box, reducing_gap=2.0)
        if out.mode in ("RGBa", "La"):
            out = out.convert(out.mode[:-1] + "A")
    if orientation in _TRANSPOSE:
        out = out.transpose(_TRANSPOSE[orientation])

    if transform is not None:
        out = ImageCms.applyTransform(out, transform)
    elif out.mode == "CMYK":
        out = out.convert("RGB")

    pil_fmt, content_type, ext = _OUTPUTS[spec.format]
    if spec.format == "jpeg" and out.mode in ("LA", "RGBA"):
        out = _flatten(out, ImageColor.getrgb(spec.background)[:3])
    elif spec.format == "webp" and out.mode in ("L", "LA"):
        out = out.convert("RGB" if out.mode == "L" else "RGBA")

    # ImageCms tags its output sRGB; only keep_metadata may put a profile back.
    out.info = {}
    params: dict = {}
    if spec.format == "jpeg":
        params.update(quality=spec.quality, optimize=True)
    elif spec.format == "webp":
        params.update(quality=spec.quality)
    else:
        params.update(compress_level=round(spec.compression * 9 / 100), optimize=spec.compression == 100)
    if spec.keep_metadata:
        params["icc_profile"] = _SRGB_BYTES
        # A JPEG APP1 segment holds at most 64 KiB; drop EXIF rather than fail.
        if exif and (spec.format != "jpeg" or len(exif) < 65000):
            params["exif"] = exif

    buf = io.BytesIO()
    out.save(buf, pil_fmt, **params)
    return Rendered(buf.getvalue(), spec.format, content_type, ext, out.width, out.height)
