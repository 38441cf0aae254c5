"""GET /batches/{id}/contact-sheet: a PDF of the previews, 20 to a page, read back with Pillow's own
PDF parser (page count, page size) and each page's image decoded and looked at."""
from __future__ import annotations

import io

import pytest
import requests
from PIL import Image, PdfParser

from chalicelib.services import contact_sheets
from chalicelib.services.clock import iso, utcnow
from tests import images

GREEN = (30, 160, 60)


def webp(size=(320, 240), colour=GREEN) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "WEBP")
    return buf.getvalue()


def seed(api, aws, count: int, failed=(), cancelled_last: int = 0) -> dict:
    """A batch of `count` files finished straight through the repository (the processor's own
    transitions, without rendering): previews stored for the completed ones."""
    web = api.post("/pipelines", {"name": "web", "format": "jpeg"}).data["pipeline"]
    files = [{"name": f"PL_SHT{n:04d}_Front.png", "size": 100, "content_type": "image/png"} for n in range(count)]
    batch = api.post("/batches", {"pipeline_id": web["id"], "files": files}).data["batch"]
    repo, s3, bucket = aws.repository, aws.s3, aws.settings.bucket
    preview = webp()
    jobs = sorted(repo.all_jobs(batch["id"]), key=lambda j: j["position"])
    for job in jobs[:count - cancelled_last]:
        now = iso(utcnow())
        assert repo.claim_upload(job, now)
        if job["position"] in failed:
            assert repo.finish_job(job, 1, now, error=("not_an_image", "the file is not an image"))
            continue
        key = f"outputs/{batch['id']}/{job['job_id']}/preview.webp"
        s3.put_object(Bucket=bucket, Key=key, Body=preview, ContentType="image/webp")
        out = {"pipeline_id": web["id"], "key": f"outputs/{batch['id']}/{job['job_id']}/{web['id']}.jpg",
               "format": "jpeg", "width": 320, "height": 240, "size": 1000}
        assert repo.finish_job(job, 1, now, outputs=[out],
                               preview={"key": key, "width": 320, "height": 240, "format": "webp", "size": len(preview)})
    return batch


def pages_of(pdf: bytes) -> list[Image.Image]:
    """Every page's image: each page draws one image XObject, a JPEG (DCTDecode)."""
    parser = PdfParser.PdfParser(buf=pdf)
    out = []
    for ref in parser.pages:
        page = parser.read_indirect(ref)
        assert [round(v) for v in page[b"MediaBox"]] == [0, 0, 595, 842]   # A4 in points
        image_ref = page[b"Resources"][b"XObject"][b"image"]
        stream = parser.read_indirect(image_ref)
        assert stream.dictionary.Filter == PdfParser.PdfName("DCTDecode")
        out.append(Image.open(io.BytesIO(bytes(stream.buf))))
    return out


def tile_colours(page: Image.Image, tile: int, dy: int = 0) -> set:
    """The colours at the middle of a tile's picture area (4 x 5 grid under the header)."""
    col, row = tile % 4, tile // 4
    x = 60 + col * 280 + 140
    y = 140 + row * 310 + 120 + dy
    return {page.getpixel((x + dx, y + dy)) for dx in (-20, 0, 20) for dy in (-20, 0, 20)}


def close(a, b, tolerance=40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


def test_300_files_make_a_15_page_pdf_with_failures_marked(api, aws):
    batch = seed(api, aws, 300, failed={3, 299}, cancelled_last=0)
    r = api.get(f"/batches/{batch['id']}/contact-sheet")
    assert r.status_code == 302
    got = requests.get(r.headers["location"], timeout=30)
    assert got.status_code == 200 and got.headers["content-type"] == "application/pdf"
    assert got.content.startswith(b"%PDF-")
    assert f'filename="{batch["base_directory_name"]}-contact-sheet.pdf"' in got.headers["content-disposition"]
    pages = pages_of(got.content)
    assert len(pages) == 15
    assert {p.size for p in pages} == {(1240, 1754)}
    first, last = pages[0], pages[-1]
    assert all(close(c, GREEN) for c in tile_colours(first, 0))          # a preview
    failed = tile_colours(first, 3)
    assert not any(close(c, GREEN) for c in failed)                     # no preview for a failed file
    assert any(c[0] > 200 and c[1] < 235 and c[2] < 235 for c in failed)  # its red panel
    assert any(c[0] > 150 and c[1] < 80 for c in _frame(first, 3))        # and red frame
    assert all(close(c, GREEN) for c in tile_colours(last, 18))
    assert not any(close(c, GREEN) for c in tile_colours(last, 19))        # file 300 failed


def _frame(page, tile):
    col, row = tile % 4, tile // 4
    x0, y0 = 60 + col * 280 + 4, 140 + row * 310 + 60
    return {page.getpixel((x0 + dx, y0)) for dx in range(0, 6)}


def test_parts_for_large_batches_and_the_json_answer(api, aws, monkeypatch):
    monkeypatch.setattr(contact_sheets, "PART_FILES", 20)
    batch = seed(api, aws, 45, cancelled_last=5)
    r = api.get(f"/batches/{batch['id']}/contact-sheet?redirect=false")
    assert r.status_code == 200
    assert (r.data["part"], r.data["parts"]) == (1, 3)
    assert r.data["file_name"] == f"{batch['base_directory_name']}-contact-sheet-part-1-of-3.pdf"
    third = api.get(f"/batches/{batch['id']}/contact-sheet?part=3&redirect=false").data
    pages = pages_of(requests.get(third["url"], timeout=10).content)
    assert len(pages) == 1
    # never uploaded: a grey panel (saying so), no preview
    assert all(close(c, (243, 244, 246), 6) for c in tile_colours(pages[0], 0, dy=-60))
    assert all(c == (255, 255, 255) for c in tile_colours(pages[0], 5))          # 45 files: the page ends at 5
    bad = api.get(f"/batches/{batch['id']}/contact-sheet?part=4")
    assert bad.status_code == 400 and "part must be between 1 and 3" in bad.data["Message"]
    assert api.get(f"/batches/{batch['id']}/contact-sheet?part=x").status_code == 400
    assert api.get(f"/batches/{batch['id']}/contact-sheet", token="token-bob").status_code == 404


def test_an_unchanged_batch_reuses_its_sheet_a_changed_one_gets_a_new_one(api, aws):
    batch = seed(api, aws, 3, cancelled_last=1)
    first = api.get(f"/batches/{batch['id']}/contact-sheet?redirect=false").data
    again = api.get(f"/batches/{batch['id']}/contact-sheet?redirect=false").data
    listed = aws.s3.list_objects_v2(Bucket=aws.settings.bucket, Prefix=f"archives/{batch['id']}/")["Contents"]
    assert len(listed) == 1 and first["size"] == again["size"]
    api.post(f"/batches/{batch['id']}/cancel")
    api.get(f"/batches/{batch['id']}/contact-sheet?redirect=false")
    listed = aws.s3.list_objects_v2(Bucket=aws.settings.bucket, Prefix=f"archives/{batch['id']}/")["Contents"]
    assert len(listed) == 2


@pytest.mark.parametrize("name", ["名前_front.png", "a" * 200 + ".png"])
def test_names_the_font_lacks_or_too_long_still_make_a_sheet(api, aws, name):
    web = api.post("/pipelines", {"name": "web", "format": "jpeg"}).data["pipeline"]
    batch = api.post("/batches", {"pipeline_id": web["id"], "files": [
        {"name": name, "size": len(images.png()), "content_type": "image/png"}]}).data["batch"]
    r = api.get(f"/batches/{batch['id']}/contact-sheet?redirect=false")
    assert r.status_code == 200
    assert len(pages_of(requests.get(r.data["url"], timeout=10).content)) == 1
