"""The pipeline options of issue 17 and the preview of issue 14, on real images: every output is
decoded and its size, mode, DPI, ICC, canvas colour and byte budget checked."""
from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageChops, ImageCms, ImageDraw, ImageFilter, ImageOps, ImageStat, TiffImagePlugin

from chalicelib.domain import imaging
from chalicelib.domain.imaging import ImageError, RenderSpec, render
from tests.corpus import FILES as CORPUS   # kept in the repository; a missing one fails collection



def encode(im: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def decode(rendered) -> Image.Image:
    im = Image.open(io.BytesIO(rendered.data))
    im.load()
    assert im.size == (rendered.width, rendered.height)
    return im


def one(data, preview=False, **spec):
    return render(data, [RenderSpec(**spec)], preview=preview)


def mean_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def photo(size=(640, 480)) -> Image.Image:
    """Shapes with soft edges and some texture: realistic enough for codecs and size budgets."""
    im = Image.new("RGB", (160, 120), (40, 90, 160))
    draw = ImageDraw.Draw(im)
    for i in range(24):
        x, y = (i * 37) % 160, (i * 23) % 120
        draw.ellipse((x - 20, y - 15, x + 20, y + 15), fill=((i * 53) % 256, (i * 97) % 256, (i * 31) % 256))
    im = im.filter(ImageFilter.GaussianBlur(2)).resize(size, Image.Resampling.BICUBIC)
    rng = random.Random(size[0] * 7919 + size[1])  # deterministic: tests compare two calls
    noise = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    return Image.blend(im, noise, 0.08)


def product(size=(400, 300), border=(255, 255, 255), box=(100, 60, 260, 200), colour=(180, 20, 20)) -> Image.Image:
    im = Image.new("RGB", size, border)
    im.paste(colour, box)
    return im


def grey16(size=(300, 200)) -> Image.Image:
    return Image.linear_gradient("L").resize(size).convert("I").point(lambda v: v * 257).convert("I;16")


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt,pil,mime,ext", [("avif", "AVIF", "image/avif", "avif"),
                                              ("tiff", "TIFF", "image/tiff", "tif")])
def test_avif_and_tiff_outputs_decode_with_their_size(fmt, pil, mime, ext):
    (out,) = one(encode(photo()), format=fmt, width=320)
    im = decode(out)
    assert (out.format, out.content_type, out.extension, im.format) == (fmt, mime, ext, pil)
    assert im.size == (320, 240) and im.mode == "RGB"
    assert mean_diff(im, photo().resize((320, 240), Image.Resampling.LANCZOS)) < 6


@pytest.mark.parametrize("fmt", ["avif", "tiff", "png", "webp"])
def test_alpha_is_kept_for_avif_and_tiff_too(fmt):
    src = Image.new("RGBA", (64, 64), (0, 0, 255, 0))
    src.paste((255, 0, 0, 255), (16, 16, 48, 48))
    im = decode(one(encode(src), format=fmt)[0])
    assert im.mode == "RGBA"
    assert im.getpixel((2, 2))[3] < 10 and im.getpixel((32, 32))[3] > 245


@pytest.mark.parametrize("name,code", [("deflate", 8), ("lzw", 5)])
def test_tiff_compression_and_predictor(name, code):
    im = decode(one(encode(photo()), format="tiff", tiff_compression=name)[0])
    assert im.tag_v2[259] == code and im.tag_v2[317] == 2  # compression, horizontal predictor
    assert mean_diff(im, photo()) == 0  # lossless


@pytest.mark.parametrize("source", ["png", "tiff"])
def test_tiff_keeps_16_bit_greyscale_and_png_or_jpeg_get_8_bit(source):
    data = encode(grey16(), source.upper())
    tiff, png = render(data, [RenderSpec("tiff"), RenderSpec("png")])
    deep = decode(tiff)
    assert deep.mode == "I;16" and deep.getextrema() == grey16().getextrema()  # values untouched
    assert deep.tobytes() == grey16().tobytes()
    assert decode(png).mode == "L"
    resized = decode(one(data, format="tiff", width=150)[0])
    assert resized.mode == "I;16" and resized.size == (150, 100) and resized.getextrema()[1] > 60000


def test_tiff_of_an_8_bit_source_stays_8_bit():
    assert decode(one(encode(photo().convert("L")), format="tiff")[0]).mode == "L"


def test_tiff_keeps_the_corpus_12_bit_data_in_16_bits():
    data = (CORPUS / "16bit.cropped.tif").read_bytes()
    im = decode(one(data, format="tiff")[0])
    src = Image.open(io.BytesIO(data))
    assert im.mode == "I;16" and im.getextrema() == src.getextrema() == (291, 694)


def heic(im: Image.Image, **params) -> bytes:
    return encode(im, "HEIF", quality=90, **params)  # pillow-heif's encoder (x265)


def test_heic_input_from_a_real_heic_file():
    src = photo()
    data = heic(src)
    assert data[4:12] == b"ftypheic" and imaging.sniff_format(data[:64]) == "HEIF"
    (out,) = one(data, format="jpeg", width=320)
    im = decode(out)
    assert im.size == (320, 240) and im.mode == "RGB"
    assert mean_diff(im, src.resize((320, 240), Image.Resampling.LANCZOS)) < 8


def test_heic_orientation_is_applied_once():
    src = product((120, 60), colour=(0, 0, 200), box=(0, 0, 30, 60))  # blue on the left
    exif = Image.Exif()
    exif[0x0112] = 6
    im = decode(one(heic(src, exif=exif.tobytes()), format="png")[0])
    assert im.size == (60, 120)  # displayed portrait, as a phone shows it
    reference = src.transpose(Image.Transpose.ROTATE_270)
    assert mean_diff(im, reference) < 8


def test_heic_with_alpha_and_a_profile():
    src = Image.new("RGBA", (48, 48), (200, 10, 10, 128))
    im = decode(one(heic(src), format="png")[0])
    assert im.mode == "RGBA" and abs(im.getpixel((5, 5))[3] - 128) <= 2


def test_avif_input():
    data = encode(photo(), "AVIF", quality=90)
    im = decode(one(data, format="jpeg", width=200)[0])
    assert im.size == (200, 150) and mean_diff(im, photo().resize((200, 150), Image.Resampling.LANCZOS)) < 8


def test_avif_sequence_from_the_corpus_uses_its_first_frame():
    im = decode(one((CORPUS / "avif_star.avifs").read_bytes(), format="avif", width=100)[0])
    assert im.size == (100, 100) and im.mode == "RGBA"


# --------------------------------------------------------------------------- canvas and size rules


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "tiff"])
def test_pad_letterboxes_onto_an_exact_canvas_in_background(fmt):
    im = decode(one(encode(product(colour=(0, 0, 255), box=(0, 0, 400, 300))), format=fmt, width=200, height=200,
                    fit="pad", background="#00ff00")[0])
    assert im.size == (200, 200)
    rgb = im.convert("RGB")
    for corner in ((2, 2), (197, 2), (2, 197), (197, 197)):  # 200x150 image: green bands above and below
        assert all(abs(a - b) <= 12 for a, b in zip(rgb.getpixel(corner), (0, 255, 0))), (fmt, corner)
    assert all(abs(a - b) <= 12 for a, b in zip(rgb.getpixel((100, 100)), (0, 0, 255)))
    assert rgb.getpixel((100, 20))[2] < 40 and rgb.getpixel((100, 30))[2] > 200  # bands are 25 px


def test_pad_never_upscales_unless_asked_but_keeps_the_canvas():
    small = encode(product((40, 20), colour=(0, 0, 0), box=(0, 0, 40, 20)))
    im = decode(one(small, format="png", width=100, height=100, fit="pad")[0])
    assert im.size == (100, 100)
    assert im.getbbox() is not None and ImageChops.invert(im.convert("L")).getbbox() == (30, 40, 70, 60)
    grown = decode(one(small, format="png", width=100, height=100, fit="pad", upscale=True)[0])
    assert ImageChops.invert(grown.convert("L")).getbbox() == (0, 25, 100, 75)


def test_pad_keeps_alpha_inside_and_an_opaque_canvas():
    src = Image.new("RGBA", (100, 50), (10, 10, 10, 0))
    im = decode(one(encode(src), format="png", width=100, height=100, fit="pad", background="#336699")[0])
    assert im.mode == "RGBA" and im.getpixel((50, 5)) == (0x33, 0x66, 0x99, 255) and im.getpixel((50, 50))[3] == 0


def test_pad_on_grey_with_a_coloured_background_becomes_colour():
    im = decode(one(encode(photo().convert("L")), format="png", width=100, height=100, fit="pad",
                    background="#ff0000")[0])
    assert im.mode == "RGB" and im.getpixel((50, 2)) == (255, 0, 0)


def test_trim_cuts_uniform_borders_before_resizing():
    im = decode(one(encode(product()), format="png", trim=5)[0])
    assert im.size == (160, 140) and im.getpixel((0, 0)) == (180, 20, 20)
    # the size rules apply to the trimmed image
    assert decode(one(encode(product()), format="png", trim=5, width=80)[0]).size == (80, 70)


def test_trim_tolerance_takes_noisy_borders():
    src = product()
    rng = random.Random(1)
    noise = Image.frombytes("RGB", src.size, bytes(rng.randrange(12) for _ in range(src.width * src.height * 3)))
    noisy = ImageChops.subtract(src, noise)  # border pixels 244..255
    assert decode(one(encode(noisy), format="png", trim=0)[0]).size != (160, 140)
    w, h = decode(one(encode(noisy), format="png", trim=15)[0]).size
    assert abs(w - 160) <= 2 and abs(h - 140) <= 2


def test_trim_by_alpha_and_a_uniform_image_stays_whole():
    src = Image.new("RGBA", (100, 80), (255, 255, 255, 0))
    src.paste((0, 200, 0, 255), (10, 20, 30, 70))
    assert decode(one(encode(src), format="png", trim=0)[0]).size == (20, 50)
    assert decode(one(encode(Image.new("RGB", (50, 40), "white")), format="png", trim=10)[0]).size == (50, 40)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_trim_follows_exif_orientation(orientation):
    src = product((120, 80), box=(10, 5, 50, 35), colour=(0, 0, 0))
    src.paste((255, 0, 0), (10, 5, 20, 15))  # marks a corner of the object
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(src, "PNG", exif=exif.tobytes())
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    expected = expected.crop(ImageChops.difference(expected, Image.new("RGB", expected.size, "white")).getbbox())
    got = decode(one(data, format="png", trim=5)[0])
    assert got.size == expected.size and mean_diff(got, expected) < 1


def test_trim_on_a_drafted_jpeg_decodes_again_when_the_region_needs_more_pixels(monkeypatch):
    src = product((2400, 1600), box=(900, 600, 1500, 1000), colour=(30, 60, 200))
    ImageDraw.Draw(src).line((900, 600, 1500, 1000), fill="white", width=3)  # detail that scaling would blur
    data = encode(src, "JPEG", quality=95)
    opened = []
    real_open = imaging._open
    monkeypatch.setattr(imaging, "_open", lambda *a: opened.append(1) or real_open(*a))
    im = decode(one(data, format="png", trim=10, width=500)[0])
    assert len(opened) == 2  # the untrimmed plan drafted 1/4; the 600 px region then needed 1/1
    reference = src.crop((900, 600, 1500, 1000)).resize(im.size, Image.Resampling.LANCZOS)
    assert abs(im.width - 500) <= 2 and mean_diff(im, reference) < 4
    opened.clear()
    one(data, format="png", width=500)
    assert len(opened) == 1  # without trim: one decode


@pytest.mark.parametrize("fmt,dpi", [("jpeg", 300), ("png", 300), ("tiff", 300), ("jpeg", 72), ("tiff", 1200)])
def test_dpi_is_written(fmt, dpi):
    im = decode(one(encode(photo()), format=fmt, dpi=dpi)[0])
    assert tuple(round(v) for v in im.info["dpi"]) == (dpi, dpi)


@pytest.mark.parametrize("fmt", ["webp", "avif"])
def test_dpi_goes_into_exif_for_webp_and_avif(fmt):
    im = decode(one(encode(photo()), format=fmt, dpi=300)[0])
    exif = im.getexif()
    assert float(exif[0x011A]) == float(exif[0x011B]) == 300 and exif[0x0128] == 2


def test_no_dpi_by_default():
    assert "dpi" not in decode(one(encode(photo()), format="png")[0]).info


def _edge_contrast(im: Image.Image) -> float:
    return ImageStat.Stat(im.convert("L").filter(ImageFilter.FIND_EDGES)).mean[0]


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_sharpen_raises_edge_contrast_and_is_off_by_default(fmt):
    src = Image.new("RGB", (1280, 960), (60, 60, 60))
    draw = ImageDraw.Draw(src)
    for i in range(0, 1280, 64):
        draw.rectangle((i, 100 + i // 4, i + 31, 700 + i // 8), fill=(200, 180, 40))
    data = encode(src)
    plain = decode(one(data, format=fmt, width=320)[0])
    sharp = decode(one(data, format=fmt, width=320, sharpen=150)[0])
    assert sharp.size == plain.size
    assert _edge_contrast(sharp) > 1.05 * _edge_contrast(plain)
    # an unsharp mask overshoots at edges: darker darks and lighter lights than the plain resize
    (lo_p, hi_p), (lo_s, hi_s) = plain.convert("L").getextrema(), sharp.convert("L").getextrema()
    assert lo_s < lo_p - 10 and hi_s > hi_p + 10
    assert mean_diff(sharp, plain) < 12  # sharper, not another picture


def test_sharpen_leaves_alpha_alone_and_works_on_16_bit():
    src = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(src).ellipse((8, 8, 56, 56), fill=(255, 0, 0, 255))
    plain = decode(one(encode(src), format="png", width=32)[0])
    sharp = decode(one(encode(src), format="png", width=32, sharpen=200)[0])
    assert plain.getchannel("A").tobytes() == sharp.getchannel("A").tobytes()
    steps = Image.new("I", (200, 200), 20000)
    steps.paste(40000, (100, 0, 200, 200))
    steps = steps.convert("I;16")
    deep = decode(one(encode(steps), format="tiff", sharpen=100)[0])
    assert deep.mode == "I;16" and deep.size == (200, 200)
    # an unsharp mask overshoots on both sides of the step, in 16-bit values
    assert deep.getpixel((98, 100)) < 20000 - 500 and deep.getpixel((101, 100)) > 40000 + 500
    assert deep.getpixel((50, 100)) == 20000 and deep.getpixel((150, 100)) == 40000


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_max_bytes_keeps_the_highest_quality_that_fits(fmt, monkeypatch):
    data = encode(photo())
    full = one(data, format=fmt, quality=90)[0]
    limit = len(full.data) * 2 // 5
    saves = []
    real_save = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", lambda self, fp, f=None, **kw: saves.append(kw.get("quality")) or
                        real_save(self, fp, f, **kw))
    out = one(data, format=fmt, quality=90, max_bytes=limit)[0]
    assert len(saves) <= imaging.MAX_BYTES_ENCODES and len(saves) < 90 - imaging.QUALITY_FLOOR
    monkeypatch.undo()
    assert len(out.data) <= limit and out.quality < 90
    assert decode(out).size == (640, 480)
    # the quality just above does not fit (the highest quality that fits was found)
    above = one(data, format=fmt, quality=out.quality + 1)[0]
    assert len(above.data) > limit


def test_max_bytes_not_needed_is_one_encode():
    out = one(encode(photo()), format="jpeg", quality=80, max_bytes=10_000_000)[0]
    assert out.quality == 80


def test_max_bytes_unreachable_fails_with_its_code():
    with pytest.raises(ImageError) as info:
        one(encode(photo((1600, 1200))), format="jpeg", max_bytes=2048)
    assert info.value.code == "exceeds_max_bytes" and "2,048" in info.value.message
    assert "exceeds_max_bytes" in imaging.ERROR_CODES


def _srgb_described(im: Image.Image) -> bool:
    profile = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
    return "srgb" in ImageCms.getProfileDescription(profile).lower()


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "avif", "tiff"])
def test_embed_icc_tags_srgb_and_is_off_by_default(fmt):
    data = encode(photo())
    assert not decode(one(data, format=fmt)[0]).info.get("icc_profile")
    tagged = decode(one(data, format=fmt, embed_icc=True)[0])
    assert _srgb_described(tagged)
    assert not tagged.getexif().get(0x010F)  # a profile, not the rest of the metadata


def test_embed_icc_converts_to_srgb_first():
    adobe = Image.open(CORPUS / "xmp_test.jpg").info["icc_profile"]
    data = encode(Image.new("RGB", (16, 16), (0, 255, 0)), "PNG", icc_profile=adobe)
    im = decode(one(data, format="tiff", embed_icc=True)[0])
    assert _srgb_described(im) and im.getpixel((8, 8))[0] < 20  # not Adobe's green left as is


def test_embed_icc_skips_grey_outputs():
    assert not decode(one(encode(photo().convert("L")), format="png", embed_icc=True)[0]).info.get("icc_profile")


# --------------------------------------------------------------------------- alpha in strips


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_strip_reduction_equals_the_whole_image_resize(fmt):
    src = photo((1500, 1100)).convert("RGBA")
    src.putalpha(Image.radial_gradient("L").resize(src.size))
    (out,) = render(encode(src), [RenderSpec(fmt, width=300, background="#204060")])
    if fmt == "jpeg":
        whole = Image.new("RGB", src.size, (0x20, 0x40, 0x60))
        whole.paste(src, mask=src)
    else:
        whole = src.convert("RGBa")
    ref = whole.resize((300, 220), Image.Resampling.LANCZOS, reducing_gap=2.0)
    ref = ref if fmt == "jpeg" else ref.convert("RGBA")
    got = decode(out) if fmt == "png" else decode(render(encode(src), [RenderSpec("png", width=300)])[0])
    if fmt == "jpeg":  # compare before JPEG's loss: the same path, PNG-encoded
        flat = render(encode(src), [RenderSpec("jpeg", width=300, background="#204060", quality=100)])[0]
        assert mean_diff(decode(flat), ref) < 1.5
    else:
        assert ImageChops.difference(got, ref).getbbox() is None  # pixel for pixel


def test_several_outputs_share_one_decode_with_alpha(monkeypatch):
    src = photo((800, 600)).convert("RGBA")
    loads = []
    real = imaging._decode
    monkeypatch.setattr(imaging, "_decode", lambda *a: loads.append(1) or real(*a))
    outs = render(encode(src), [RenderSpec("jpeg", width=400), RenderSpec("webp", width=100),
                                RenderSpec("avif", width=200, fit="pad", height=200), RenderSpec("tiff")])
    assert len(loads) == 1 and [o.width for o in outs] == [400, 100, 200, 800]


# --------------------------------------------------------------------------- preview


def test_preview_is_webp_at_most_320_and_cut_from_an_output(monkeypatch):
    outs = render(encode(photo((1600, 1200))), [RenderSpec("jpeg", width=800)], preview=True)
    p = decode(outs.preview)
    assert (outs.preview.format, outs.preview.content_type, p.format) == ("webp", "image/webp", "WEBP")
    assert p.size == (320, 240)
    assert mean_diff(p, decode(outs[0]).resize((320, 240), Image.Resampling.LANCZOS)) < 3
    assert len(outs) == 1 and outs[0].width == 800


def test_preview_without_a_usable_output_is_rendered_from_the_source():
    src = photo((1600, 1200))
    outs = render(encode(src), [RenderSpec("jpeg", width=100), RenderSpec("png", width=900, height=300,
                                                                          fit="cover")], preview=True)
    p = decode(outs.preview)
    assert p.size == (320, 240) and mean_diff(p, src.resize((320, 240), Image.Resampling.LANCZOS)) < 6


def test_preview_is_never_upscaled_keeps_orientation_and_alpha():
    small = Image.new("RGBA", (60, 30), (0, 0, 255, 255))
    small.paste((255, 0, 0, 0), (0, 0, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 8
    outs = render(encode(small, exif=exif.tobytes()), [RenderSpec("png")], preview=True)
    p = decode(outs.preview)
    assert p.size == (30, 60) and p.mode == "RGBA"


def test_no_preview_unless_asked():
    assert render(encode(photo()), [RenderSpec("png", width=10)]).preview is None


def test_preview_of_a_portrait_jpeg_with_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6
    outs = render(encode(photo((1600, 1200)), "JPEG", exif=exif.tobytes()), [RenderSpec("webp", width=100)],
                  preview=True)
    assert (outs.preview.width, outs.preview.height) == (240, 320)


def test_render_result_is_still_a_list():
    outs = render(encode(photo()), [RenderSpec("png", width=10), RenderSpec("jpeg", width=20)])
    assert isinstance(outs, list) and [o.width for o in outs] == [10, 20]


def test_spec_validation_of_the_new_options():
    assert RenderSpec("tif").format == "tiff"
    for bad in (dict(format="png", fit="pad", width=10), dict(format="png", max_bytes=5000),
                dict(format="tiff", tiff_compression="zip"), dict(format="jpeg", trim=101),
                dict(format="jpeg", sharpen=-1), dict(format="jpeg", dpi=0)):
        with pytest.raises(ValueError):
            RenderSpec(**bad)


def test_tiff_resolution_is_an_ifd_rational():
    im = decode(one(encode(photo()), format="tiff", dpi=300)[0])
    assert isinstance(im.tag_v2[282], TiffImagePlugin.IFDRational)
