"""Unit tests for the pure image pipeline (chalicelib.domain.imaging)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageCms, ImageOps, ImageStat

from chalicelib.domain import imaging
from chalicelib.domain.imaging import (
    ALLOWED_INPUT_FORMATS,
    ERROR_CODES,
    ImageError,
    Limits,
    RenderSpec,
    render,
    sniff_format,
    target_size,
)
from tests.corpus import FILES

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- helpers


def encode(im: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def decode(rendered) -> Image.Image:
    im = Image.open(io.BytesIO(rendered.data))
    im.load()
    return im


def render_one(data, **spec) -> Image.Image:
    spec.setdefault("format", "png")
    (out,) = render(data, [RenderSpec(**spec)])
    im = decode(out)
    assert im.size == (out.width, out.height)
    return im


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def bands(size=(400, 200)) -> Image.Image:
    """Red | green (middle half) | blue: tells crops apart."""
    im = Image.new("RGB", size, (0, 255, 0))
    w, h = size
    im.paste((255, 0, 0), (0, 0, w // 4, h))
    im.paste((0, 0, 255), (w - w // 4, 0, w, h))
    return im


def exif_with(orientation: int | None = None, **tags) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    for tag, value in tags.items():
        exif[{"Make": 0x010F, "Artist": 0x013B}[tag]] = value
    return exif.tobytes()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring width x height with a one-byte IDAT: decoding it would
    allocate width*height*3 bytes before failing."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A tiny real JPEG whose SOF0 is patched to declare width x height."""
    data = bytearray(encode(Image.new("RGB", (8, 8), "red"), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def tga_bytes() -> bytes:
    return encode(Image.new("RGB", (4, 3), "red"), "TGA")


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize(
    "fmt,params",
    [("JPEG", {}), ("PNG", {}), ("GIF", {}), ("WEBP", {}), ("TIFF", {}), ("BMP", {}), ("ICO", {}), ("TGA", {})],
)
def test_sniff_recognises_allowed_formats(fmt, params):
    data = encode(Image.new("RGB", (16, 16), "red"), fmt, **params)
    assert sniff_format(data[:64]) == fmt
    assert fmt in ALLOWED_INPUT_FORMATS


@pytest.mark.parametrize(
    "head",
    [
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
        b"\xc5\xd0\xd3\xc6" + b"\0" * 28,  # binary EPS
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 56,  # OLE2 (.doc)
        b"PK\x03\x04" + b"\0" * 60,
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"hello, world\n",
        b"",
        b"\x00\x00\x00\x0cjP  \r\n\x87\n",  # JPEG 2000: recognised but refused
        b"BLP2\x01\x00\x00\x00",
    ],
)
def test_sniff_rejects_non_images_and_refused_formats(head):
    assert sniff_format(head) is None


@pytest.mark.parametrize(
    "name,expected",
    [
        ("extlie_webp_content.jpg", "WEBP"),
        ("extlie_eps_content.jpg", None),
        ("extlie_pdf_content.jpg", None),
        ("extlie_ole_doc_content.png", None),
        ("la.tga", "TGA"),
        ("frame_size.mpo", "JPEG"),
    ],
)
def test_sniff_ignores_lying_extensions(name, expected):
    assert sniff_format((FILES / name).read_bytes()[:64]) == expected


@pytest.mark.parametrize(
    "data,code",
    [
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not_an_image"),
        (b"%PDF-1.4\n", "not_an_image"),
        (b"", "not_an_image"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\0" * 100, "unsupported_format"),
        (b"DDS |\x00\x00\x00" + b"\0" * 100, "unsupported_format"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "corrupt_image"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 40, "corrupt_image"),
    ],
)
def test_render_refuses_by_content_with_stable_codes(data, code):
    with pytest.raises(ImageError) as info:
        render(data, [RenderSpec("jpeg", width=100)])
    assert info.value.code == code
    assert info.value.message and str(info.value) == info.value.message
    assert "Traceback" not in info.value.message


def test_tga_is_rendered():
    assert render_one(tga_bytes(), format="jpeg").size == (4, 3)


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    "spec,size",
    [
        (dict(width=100), (100, 50)),
        (dict(height=50), (100, 50)),
        (dict(width=100, height=100), (100, 50)),  # contain
        (dict(width=100, height=100, fit="cover"), (100, 100)),
        (dict(width=100, height=30, fit="exact"), (100, 30)),
        (dict(width=300, height=30, fit="contain"), (60, 30)),
        (dict(), (400, 200)),
        (dict(width=800), (400, 200)),  # no upscale by default
        (dict(width=800, upscale=True), (800, 400)),
        (dict(width=800, height=800, fit="cover"), (200, 200)),  # box shrunk, aspect kept
        (dict(width=800, height=800, fit="cover", upscale=True), (800, 800)),
        (dict(width=1000, height=250, fit="exact"), (400, 100)),
    ],
)
def test_fit_modes_and_dimensions(spec, size):
    assert render_one(encode(bands()), **spec).size == size


def test_cover_crops_the_centre_and_contain_keeps_everything():
    data = encode(bands())
    cover = render_one(data, width=100, height=100, fit="cover").convert("RGB")
    for xy in [(0, 0), (99, 99), (0, 99), (99, 0), (50, 50)]:
        r, g, b = cover.getpixel(xy)  # Lanczos may bleed a little across the crop edge
        assert g > 220 and r < 40 and b < 40, xy
    contain = render_one(data, width=100, height=100).convert("RGB")
    assert contain.getpixel((0, 25))[0] > 200  # red band still there
    assert contain.getpixel((99, 25))[2] > 200  # and the blue one
    exact = render_one(data, width=100, height=100, fit="exact").convert("RGB")
    assert exact.getpixel((0, 50))[0] > 200 and exact.getpixel((99, 50))[2] > 200


def test_tiny_image_is_not_upscaled_unless_asked():
    one = encode(Image.new("RGB", (1, 1), "red"))
    assert render_one(one, format="jpeg", width=800).size == (1, 1)
    assert render_one(one, format="jpeg", width=800, height=800).size == (1, 1)
    assert render_one(one, format="jpeg", width=800, height=600, fit="cover").size == (1, 1)
    assert render_one(one, format="jpeg", width=800, height=600, upscale=True).size == (600, 600)


dims = st.integers(min_value=1, max_value=20_000)
box = st.one_of(st.none(), st.integers(min_value=1, max_value=5_000))
BIG = Limits(max_pixels=10**12, max_output_pixels=10**12, max_output_side=10**9)  # never binding here


@settings(max_examples=400, deadline=None)
@given(sw=dims, sh=dims, w=box, h=box, fit=st.sampled_from(["contain", "cover", "exact"]), up=st.booleans())
def test_target_size_properties(sw, sh, w, h, fit, up):
    spec = RenderSpec("jpeg", width=w, height=h, fit=fit, upscale=up)
    ow, oh = target_size(sw, sh, spec, BIG)
    assert ow >= 1 and oh >= 1
    if not up:
        assert ow <= sw and oh <= sh
    if w is None and h is None:
        assert (ow, oh) == (sw, sh)
        return
    if w is not None:
        assert ow <= w or (not up and ow == sw and ow <= w)
    if h is not None:
        assert oh <= h
    one_side = w is None or h is None
    if one_side or fit == "contain":
        # Aspect kept within rounding (a side clamped to 1 px may be off by 1 px).
        assert abs(ow / sw - oh / sh) <= 1 / sw + 1 / sh
        # and the box is touched on one side unless we refused to upscale
        touches = (w is not None and ow == w) or (h is not None and oh == h)
        assert touches or (not up and (ow, oh) == (sw, sh))
    else:
        if up or (w <= sw and h <= sh):
            assert (ow, oh) == (w, h)
        else:  # shrunk box keeps the requested aspect (each side within 1 px)
            assert abs(ow * h - oh * w) < w + h


@settings(max_examples=200, deadline=None)
@given(sw=dims, sh=dims, w=box, h=box, fit=st.sampled_from(["contain", "cover", "exact"]), up=st.booleans())
def test_target_size_respects_output_limits(sw, sh, w, h, fit, up):
    spec = RenderSpec("jpeg", width=w, height=h, fit=fit, upscale=up)
    limits = Limits(max_output_pixels=4_000_000, max_output_side=4096)
    unbounded = target_size(sw, sh, spec, BIG)
    try:
        ow, oh = target_size(sw, sh, spec, limits)
    except ImageError as e:
        assert e.code == "output_too_large"
        assert unbounded[0] * unbounded[1] > 4_000_000 or max(unbounded) > 4096
    else:
        assert (ow, oh) == unbounded and ow * oh <= 4_000_000 and max(ow, oh) <= 4096


def test_output_bound_on_a_strip():
    strip = encode(Image.new("L", (1, 20_000), 128))
    for upscale in (False, True):
        with pytest.raises(ImageError) as info:
            render(strip, [RenderSpec("jpeg", width=800, upscale=upscale)])
        assert info.value.code == "output_too_large"
        assert "1x20000" in info.value.message or "800x16000000" in info.value.message
    shorter = encode(Image.new("L", (1, 10_000), 128))
    assert render_one(shorter, format="jpeg", width=800).size == (1, 10_000)
    with pytest.raises(ImageError) as info:
        render(shorter, [RenderSpec("jpeg", width=800, upscale=True)])
    assert info.value.code == "output_too_large" and "800x8000000" in info.value.message
    with pytest.raises(ImageError) as info:
        target_size(1, 20_000, RenderSpec("png", width=800, upscale=True))
    assert info.value.code == "output_too_large"
    # libwebp cannot encode a side over 16383 px, whatever the limits say.
    assert target_size(1, 16_384, RenderSpec("png")) == (1, 16_384)
    with pytest.raises(ImageError):
        target_size(1, 16_384, RenderSpec("webp"))


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("n", range(2, 9))
def test_exif_orientation_matches_upright_reference(n):
    ref = render_one((FILES / "hopper_upright_reference.jpg").read_bytes(), width=64)
    out = render_one((FILES / f"hopper_orientation_{n}.jpg").read_bytes(), width=64)
    assert out.size == ref.size
    assert mean_diff(out, ref) < 10
    # The check has teeth: the stored (un-oriented) pixels are far off.
    raw = Image.open(FILES / f"hopper_orientation_{n}.jpg").convert("RGB").resize(ref.size)
    assert mean_diff(raw, ref) > 30


def test_orientation_rectangle_becomes_portrait():
    out = render_one((FILES / "orientation_rectangle.jpg").read_bytes(), format="jpeg", width=800)
    assert out.height > out.width
    up = render_one((FILES / "orientation_rectangle.jpg").read_bytes(), format="jpeg", width=800, upscale=True)
    assert up.size == (800, 1600)


def test_xmp_orientation_is_applied():
    path = FILES / "xmp_tags_orientation.png"  # orientation 3 in XMP only, ColorMatch RGB
    out = render_one(path.read_bytes(), format="png")
    stored = Image.open(path)
    expected = ImageCms.profileToProfile(
        ImageOps.exif_transpose(stored).convert("RGBA"),
        ImageCms.ImageCmsProfile(io.BytesIO(stored.info["icc_profile"])),
        ImageCms.createProfile("sRGB"),
        outputMode="RGBA",
    )
    assert out.size == stored.size
    assert mean_diff(out, expected) < 2
    assert mean_diff(out, stored) > 20


def test_width_applies_to_the_displayed_orientation_and_draft_is_used():
    src = bands((1200, 800))  # stored landscape; orientation 6 displays it portrait
    data = encode(src, "JPEG", quality=95, exif=exif_with(6))
    out = render_one(data, format="jpeg", width=100)
    assert out.size == (100, 150)
    # Rotated 90 CW for display: the stored left (red) band ends up on top.
    assert out.convert("RGB").getpixel((50, 5))[0] > 200
    assert out.convert("RGB").getpixel((50, 145))[2] > 200


def test_jpeg_is_drafted_and_several_specs_share_one_decode(monkeypatch):
    calls = []
    real = Image._getdecoder

    def spy(mode, decoder_name, args, extra=()):
        calls.append((decoder_name, extra))
        return real(mode, decoder_name, args, extra)

    monkeypatch.setattr(Image, "_getdecoder", spy)
    data = encode(bands((2400, 1600)), "JPEG")
    specs = [
        RenderSpec("jpeg", width=200),
        RenderSpec("png", width=100, height=100, fit="cover"),
        RenderSpec("webp", height=50),
    ]
    outs = render(data, specs)
    assert [o.format for o in outs] == ["jpeg", "png", "webp"]
    assert [(o.width, o.height) for o in outs] == [(200, 133), (100, 100), (75, 50)]
    assert [o.content_type for o in outs] == ["image/jpeg", "image/png", "image/webp"]
    assert [o.extension for o in outs] == ["jpg", "png", "webp"]
    jpeg_decodes = [extra for name, extra in calls if name == "jpeg"]
    assert len(jpeg_decodes) == 1
    assert jpeg_decodes[0][0] == 8  # libjpeg scaled by 1/8 while decoding (2400/8 >= 200)


# --------------------------------------------------------------------------- pixels & colour


def test_16bit_is_scaled_not_clipped():
    out = render_one((FILES / "16bit.cropped.tif").read_bytes(), format="jpeg")
    lo, hi = out.convert("L").getextrema()
    assert hi < 250 and hi - lo > 60  # values 291..694 -> 10-bit scale: roughly 72..173
    assert ImageStat.Stat(out.convert("L")).stddev[0] > 3


def test_16bit_full_range_maps_to_full_8bit_range():
    ramp = Image.new("I;16", (256, 4))
    ramp.putdata([x * 257 for x in range(256)] * 4)
    out = render_one(encode(ramp), format="png").convert("L")
    assert out.getpixel((0, 0)) == 0 and out.getpixel((255, 0)) == 255
    assert abs(out.getpixel((128, 0)) - 128) <= 1


def test_8bit_values_in_16bit_container_are_kept():
    im = Image.new("I;16", (8, 8), 200)
    assert render_one(encode(im), format="png").convert("L").getpixel((0, 0)) == 200


def _half_transparent() -> Image.Image:
    im = Image.new("RGBA", (64, 32), (255, 0, 0, 255))
    im.paste((0, 0, 0, 0), (0, 0, 32, 32))
    return im


def test_alpha_is_flattened_onto_background_for_jpeg():
    out = render_one(encode(_half_transparent()), format="jpeg", background="#0000ff").convert("RGB")
    assert out.mode == "RGB"
    r, g, b = out.getpixel((5, 16))
    assert b > 240 and r < 15 and g < 15
    r, g, b = out.getpixel((60, 16))
    assert r > 240 and g < 15 and b < 15


def test_palette_transparency_is_flattened_onto_background():
    im = Image.new("P", (16, 16), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(0, (0, 0, 8, 16))
    data = encode(im, "PNG", transparency=0)
    out = render_one(data, format="jpeg", background="#00ff00").convert("RGB")
    assert out.getpixel((2, 8))[1] > 240  # transparent index -> background, not black
    assert out.getpixel((13, 8))[0] > 240


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_alpha_is_kept_for_png_and_webp(fmt):
    out = render_one(encode(_half_transparent()), format=fmt, width=32)
    assert out.mode == "RGBA"
    assert out.getpixel((2, 8))[3] < 10
    assert out.getpixel((30, 8))[3] > 245


def test_alpha_is_resized_premultiplied():
    # Fully transparent pixels carry junk green; it must not bleed into edges.
    im = Image.new("RGBA", (64, 64), (0, 255, 0, 0))
    im.paste((255, 0, 0, 255), (30, 0, 64, 64))
    for fmt in ("jpeg", "png"):
        out = render_one(encode(im), format=fmt, width=16, background="#ffffff")
        flat = Image.new("RGB", out.size, "white")
        flat.paste(out.convert("RGBA"), mask=out.convert("RGBA").getchannel("A"))
        r, g, b = flat.split()
        assert ImageChops.difference(g, b).getextrema()[1] < 20, fmt


def test_grey_alpha_and_trns_become_alpha():
    la = Image.new("LA", (8, 8), (200, 0))
    assert render_one(encode(la), format="png").getpixel((0, 0))[-1] == 0
    l_trns = Image.new("L", (8, 8), 7)
    out = render_one(encode(l_trns, "PNG", transparency=7), format="jpeg", background="#ff0000").convert("RGB")
    assert out.getpixel((4, 4))[0] > 240


def test_cmyk_becomes_sane_rgb():
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    out = render_one(encode(cyan, "JPEG", quality=95), format="jpeg").convert("RGB")
    r, g, b = out.getpixel((8, 8))
    assert r < 30 and g > 220 and b > 220


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    r, g, b = render_one(buf.getvalue(), format="jpeg").convert("RGB").getpixel((8, 8))
    assert r > 200 and b < 50


def _to_srgb_reference(im: Image.Image, icc: bytes) -> Image.Image:
    return ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"))


def test_icc_profile_is_converted_to_srgb():
    src = Image.open(FILES / "xmp_test.jpg")  # Adobe RGB (1998)
    icc = src.info["icc_profile"]
    # Lossless copy of the pixels with the same profile, so JPEG draft noise
    # does not blur the comparison.
    data = encode(src.convert("RGB"), "PNG", icc_profile=icc)
    (rendered,) = render(data, [RenderSpec("png", width=400)])
    out = decode(rendered).convert("RGB")
    assert "icc_profile" not in out.info  # no foreign (or any) profile left behind
    naive = src.convert("RGB").resize(out.size, Image.Resampling.LANCZOS)
    expected = _to_srgb_reference(naive, icc)
    assert mean_diff(out, naive) > 1.0  # the colours really moved...
    assert mean_diff(out, expected) < mean_diff(out, naive) / 2  # ...to the right place


def test_icc_profile_is_converted_for_the_drafted_jpeg_too():
    path = FILES / "xmp_test.jpg"
    (rendered,) = render(path.read_bytes(), [RenderSpec("jpeg", width=400)])
    out = decode(rendered).convert("RGB")
    assert "icc_profile" not in out.info
    src = Image.open(path)
    naive = src.convert("RGB").resize(out.size, Image.Resampling.LANCZOS)
    expected = _to_srgb_reference(naive, src.info["icc_profile"])
    means = [ImageStat.Stat(im).mean for im in (out, naive, expected)]
    off_expected = sum(abs(a - b) for a, b in zip(means[0], means[2]))
    off_naive = sum(abs(a - b) for a, b in zip(means[0], means[1]))
    assert off_expected < off_naive / 2


def test_background_colour_is_srgb_even_when_the_source_has_a_profile():
    adobe = Image.open(FILES / "xmp_test.jpg").info["icc_profile"]
    im = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent
    im.paste((255, 0, 0, 255), (16, 0, 32, 32))
    data = encode(im, "PNG", icc_profile=adobe)
    out = render_one(data, format="jpeg", width=16, background="#33cc66").convert("RGB")
    r, g, b = out.getpixel((1, 8))
    # Converting the background through Adobe RGB -> sRGB would give ~(0, 205, 94).
    assert abs(r - 0x33) <= 3 and abs(g - 0xCC) <= 3 and abs(b - 0x66) <= 3
    r, g, b = out.getpixel((14, 8))  # the opaque half stays red
    assert r > 200 and g < 40 and b < 40


def test_unparseable_icc_profile_is_ignored():
    data = encode(Image.new("RGB", (8, 8), "red"), "JPEG", icc_profile=b"not a profile at all")
    assert render_one(data, format="jpeg").size == (8, 8)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_metadata_is_stripped_by_default_and_kept_on_request(fmt):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(
        bands((60, 40)),
        "JPEG",
        exif=exif_with(6, Make="StudioCam", Artist="Jane"),
        icc_profile=srgb,
        xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>secret</x:xmpmeta>",
    )
    stripped = render_one(data, format=fmt)
    assert stripped.size == (40, 60)
    assert not stripped.info.get("exif") and not stripped.info.get("icc_profile")
    assert not stripped.getexif()
    assert not any("xmp" in k.lower() for k in stripped.info)

    kept = render_one(data, format=fmt, keep_metadata=True)
    assert kept.size == (40, 60)
    exif = kept.getexif()
    assert exif.get(0x010F) == "StudioCam" and exif.get(0x0112) == 1
    profile = ImageCms.ImageCmsProfile(io.BytesIO(kept.info["icc_profile"]))
    assert "srgb" in ImageCms.getProfileDescription(profile).lower()
    assert not any("xmp" in k.lower() for k in kept.info)


def _photo_like(size=(256, 256)) -> Image.Image:
    return Image.radial_gradient("L").resize(size).convert("RGB").point(lambda v: (v * 7) % 256)


def test_png_compression_changes_size():
    data = encode(Image.effect_noise((256, 256), 20).convert("RGB"))
    fastest = render(data, [RenderSpec("png", compression=0)])[0].data
    smallest = render(data, [RenderSpec("png", compression=100)])[0].data
    default = render(data, [RenderSpec("png")])[0].data
    assert len(fastest) > len(default) >= len(smallest)
    assert len(fastest) > 1.2 * len(smallest)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_quality_changes_size(fmt):
    data = encode(Image.effect_noise((256, 256), 40).convert("RGB"))
    low = render(data, [RenderSpec(fmt, quality=10)])[0].data
    high = render(data, [RenderSpec(fmt, quality=95)])[0].data
    assert len(high) > 1.5 * len(low)


# --------------------------------------------------------------------------- limits


def test_pixel_limit_is_per_call_and_names_the_size():
    data = encode(Image.new("RGB", (20, 20)))
    with pytest.raises(ImageError) as info:
        render(data, [RenderSpec("jpeg")], Limits(max_pixels=399))
    assert info.value.code == "too_many_pixels"
    assert "20x20" in info.value.message and "399" in info.value.message
    assert render(data, [RenderSpec("jpeg")], Limits(max_pixels=400))


# "error": Pillow's warning surfaces as an exception inside render(); "ignore":
# only our own header check stands between the caller and a huge decode.
@pytest.mark.parametrize("warning_action", ["error", "ignore"])
@pytest.mark.parametrize(
    "data",
    [png_header_only(10_000, 9_000), png_header_only(100_000, 100_000), jpeg_declaring(8_000, 8_000)],
    ids=["png-90M-warning-band", "png-10G", "jpeg-64M"],
)
def test_pixel_limit_is_checked_before_decoding(data, warning_action):
    with warnings.catch_warnings():
        warnings.simplefilter(warning_action, Image.DecompressionBombWarning)
        t0 = time.perf_counter()
        with pytest.raises(ImageError) as info:
            render(data, [RenderSpec("jpeg", width=800)])
    assert info.value.code == "too_many_pixels"  # not corrupt_image: nothing was decoded
    assert "50,000,000" in info.value.message
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_pixel_limit_costs_no_memory():
    # Peak RSS of a fresh process that renders headers declaring 64-90 M pixels
    # (190-270 MB if decoded) must stay near the interpreter's own baseline.
    code = """
import json, sys
sys.path.insert(0, sys.argv[1])
from tests.unit.test_imaging import png_header_only, jpeg_declaring
from chalicelib.domain.imaging import render, RenderSpec, ImageError
def peak_kb():  # VmHWM: this process's own peak (ru_maxrss survives exec from pytest)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
base = peak_kb()
codes = []
for data in (png_header_only(10_000, 9_000), jpeg_declaring(8_000, 8_000)):
    try:
        render(data, [RenderSpec("jpeg", width=800)])
    except ImageError as e:
        codes.append(e.code)
print(json.dumps({"codes": codes, "delta_kb": peak_kb() - base}))
"""
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, str(REPO)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["codes"] == ["too_many_pixels", "too_many_pixels"]
    assert result["delta_kb"] < 50 * 1024


# --------------------------------------------------------------------------- robustness & API


def test_non_seekable_stream_and_file_objects_work(tmp_path):
    data = encode(bands(), "JPEG")

    class Pipe(io.RawIOBase):
        def __init__(self, payload):
            self._buf = io.BytesIO(payload)

        def readable(self):
            return True

        def seekable(self):
            return False

        def readinto(self, b):
            chunk = self._buf.read(len(b))
            b[: len(chunk)] = chunk
            return len(chunk)

    assert render(Pipe(data), [RenderSpec("jpeg", width=40)])[0].width == 40
    path = tmp_path / "x.bin"
    path.write_bytes(data)
    with path.open("rb") as fh:
        assert render(fh, [RenderSpec("png", width=40)])[0].width == 40
    for max_size in (1 << 20, 16):  # the processor spools uploads like this
        with tempfile.SpooledTemporaryFile(max_size=max_size) as spool:
            spool.write(data)
            spool.seek(0)
            assert render(spool, [RenderSpec("webp", width=40)])[0].width == 40


def test_spec_validation():
    assert RenderSpec("JPG").format == "jpeg"
    for bad in (
        dict(format="gif"),
        dict(format="png", width=0),
        dict(format="png", fit="fill"),
        dict(format="jpeg", quality=0),
        dict(format="png", compression=101),
        dict(format="jpeg", background="not-a-colour"),
    ):
        with pytest.raises(ValueError):
            RenderSpec(**bad)


def test_pillow_global_pixel_ceiling_is_not_looser_than_our_default():
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS <= Limits().max_pixels


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's "Corrupt EXIF data" etc.
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    magic=st.sampled_from(
        [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"II*\x00", b"BM", b"\x00\x00\x01\x00", b"RIFF"]
    ),
    body=st.binary(max_size=400),
)
def test_garbage_never_escapes_as_anything_but_image_error(magic, body):
    try:
        render(magic + body, [RenderSpec("jpeg", width=64)], Limits(max_pixels=1_000_000))
    except ImageError as e:
        assert e.code in ERROR_CODES and e.message


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=100))
def test_truncated_real_files_give_image_errors(cut):
    for fmt in ("JPEG", "PNG", "WEBP", "GIF", "TIFF"):
        data = encode(_photo_like((64, 64)), fmt)
        part = data[: len(data) * cut // 100]
        try:
            render(part, [RenderSpec("png", width=32)])
        except ImageError as e:
            assert e.code in ERROR_CODES


def test_module_has_no_aws_imports():
    source = Path(imaging.__file__).read_text()
    for name in ("boto3", "botocore", "chalice", "pynamodb"):
        assert f"import {name}" not in source and f"from {name}" not in source
