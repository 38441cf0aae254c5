"""Choosing which files to send: extension and content must both say image."""

from __future__ import annotations

import pytest

from imgbatch.files import collect, sniff_content_type
from tests.corpus import CORPUS, ROWS

from .conftest import make_image


@pytest.mark.parametrize(
    "fmt, content_type",
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp"),
     ("TIFF", "image/tiff"), ("BMP", "image/bmp"), ("ICO", "image/vnd.microsoft.icon"),
     ("TGA", "image/x-tga"), ("AVIF", "image/avif")],
)
def test_sniffs_real_images(tmp_path, fmt, content_type):
    path = make_image(tmp_path / f"x.{fmt.lower()}", fmt, size=(16, 16))
    assert sniff_content_type(path.read_bytes()[:64]) == content_type


def test_types_the_service_refuses_are_skipped_saying_so(tmp_path):
    found = collect([make_image(tmp_path / "x.ppm", "PPM"), make_image(tmp_path / "y.jp2", "JPEG2000")])
    assert found.images == []
    assert {s.reason for s in found.skipped} == {
        "Netpbm (PBM/PGM/PPM/PAM) images are not supported by the service",
        "JPEG 2000 images are not supported by the service"}


@pytest.mark.parametrize("head", [b"", b"%PDF-1.4", b"%!PS-Adobe-3.0 EPSF", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
                                  b"\x00\x05\x16\x07AppleDouble", b"hello world"])
def test_refuses_non_images(head):
    assert sniff_content_type(head) is None


def test_collect_walks_folders_and_explains_skips(photo_folder):
    found = collect([photo_folder])

    assert sorted(i.name for i in found.images) == ["PL_DXB191_Back.jpg", "PL_DXB191_Front.png",
                                                    "PL_DXB191_Side.webp"]
    reasons = {s.path.name: s.reason for s in found.skipped}
    assert reasons == {"notes.txt": "'.txt' is not an image extension",
                       "looks_like.png": "content is not a recognised image"}
    assert found.total_size == sum(i.path.stat().st_size for i in found.images)


def test_explicit_files_are_taken_even_when_hidden_and_not_repeated(photo_folder):
    hidden = photo_folder / ".hidden.png"
    found = collect([hidden, photo_folder, photo_folder / "PL_DXB191_Front.png"])
    names = [i.name for i in found.images]
    assert ".hidden.png" in names
    assert names.count("PL_DXB191_Front.png") == 1


def test_empty_file_and_image_under_wrong_extension(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    make_image(tmp_path / "real.png", "PNG").rename(tmp_path / "real.dat")
    found = collect([tmp_path])
    assert found.images == []
    assert {s.reason for s in found.skipped} == {"empty file", "'.dat' is not an image extension"}


def test_duplicate_names_are_reported(tmp_path):
    make_image(tmp_path / "a" / "Front.png", "PNG")
    make_image(tmp_path / "b" / "Front.png", "PNG")
    dupes = collect([tmp_path]).duplicate_names()
    assert list(dupes) == ["Front.png"] and len(dupes["Front.png"]) == 2


def test_corpus_extension_lies_are_judged_by_content():
    rows = [r for r in ROWS if r["category"] == "extension_lies"]
    found = collect([CORPUS / r["file"] for r in rows])
    taken = {i.name: i.content_type for i in found.images}
    # A WebP named .jpg is an image (sent as WebP); EPS, PDF and an Office file are not.
    assert taken == {"extlie_webp_content.jpg": "image/webp"}
    assert {s.path.name for s in found.skipped} == {
        "extlie_eps_content.jpg", "extlie_pdf_content.jpg", "extlie_ole_doc_content.png"}
