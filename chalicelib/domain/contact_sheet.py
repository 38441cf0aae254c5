"""A contact sheet: a batch's previews in a grid, page after page, as one PDF. Pure: Pillow only.

A4 portrait at 150 dpi (1240 x 1754 px), 4 x 5 tiles a page. Each tile shows the file's preview
(at most 320 px, fitted into the tile), its name (two lines at most, shortened in the middle so the
end of the name stays), and its status: a failed file gets a red frame, "FAILED" and its error
code; a file with no preview (cancelled, not uploaded, still processing) a grey box saying why.

Memory stays at one page: Pillow's PDF writer iterates the frames of a multi-frame image, and
`_Pages` is such an image whose frame is drawn when the writer seeks to it, so each page is drawn,
encoded (JPEG inside the PDF) and dropped before the next. Text uses Pillow's built-in font
(Aileron, Latin scripts); characters it lacks show as boxes.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import IO, Callable, Sequence

from PIL import Image, ImageDraw, ImageFont

PAGE_SIZE = (1240, 1754)
DPI = 150
COLUMNS, ROWS = 4, 5
PER_PAGE = COLUMNS * ROWS
MARGIN = 60
HEADER = 110
NAME_LINES = 2
JPEG_QUALITY = 82

INK, MUTED, LINE, PANEL = (17, 24, 39), (90, 98, 112), (214, 218, 224), (243, 244, 246)
RED, RED_PANEL = (185, 28, 28), (254, 226, 226)


@dataclass(frozen=True)
class SheetItem:
    file_name: str
    status: str
    error_code: str | None = None
    preview: bytes | None = None   # the stored preview rendition (WebP), if any


@dataclass(frozen=True)
class SheetHeader:
    title: str           # the batch's base_directory_name
    subtitle: str        # description, counts
    first_number: int = 1  # the number of the sheet's first file within the batch (parts)


def page_count(items: int) -> int:
    return max(1, math.ceil(items / PER_PAGE))


def write_pdf(header: SheetHeader, count: int, items_for_page: Callable[[int], Sequence[SheetItem]],
              target: IO[bytes]) -> int:
    """Write the sheet of `count` items to `target`; `items_for_page(n)` gives page n's items
    (0-based), asked for once, in order. Returns the number of pages."""
    pages = page_count(count)
    fonts = _Fonts()
    document = _Pages(pages, lambda n: render_page(header, items_for_page(n), n, pages, fonts))
    document.save(target, "PDF", save_all=True, resolution=DPI, title=f"{header.title} contact sheet",
                  quality=JPEG_QUALITY)
    return pages


class _Pages(Image.Image):
    """A multi-frame image whose frames are drawn on demand (seek), one held at a time."""

    def __init__(self, count: int, draw: Callable[[int], Image.Image]):
        super().__init__()
        self.n_frames = count
        self.is_animated = count > 1
        self._draw = draw
        self._frame = -1
        self.seek(0)

    def seek(self, frame: int) -> None:
        if frame == self._frame:
            return
        if not 0 <= frame < self.n_frames:
            raise EOFError("no more pages")
        page = self._draw(frame)
        self.im, self._mode, self._size = page.im, page.mode, page.size
        self._frame = frame

    def tell(self) -> int:
        return self._frame


class _Fonts:
    def __init__(self):
        self.title = ImageFont.load_default(30)
        self.text = ImageFont.load_default(18)
        self.small = ImageFont.load_default(16)
        self.mark = ImageFont.load_default(22)


def render_page(header: SheetHeader, items: Sequence[SheetItem], number: int, pages: int,
                fonts: _Fonts | None = None) -> Image.Image:
    fonts = fonts or _Fonts()
    page = Image.new("RGB", PAGE_SIZE, "white")
    draw = ImageDraw.Draw(page)
    width, height = PAGE_SIZE
    draw.text((MARGIN, MARGIN - 10), _fit(header.title, fonts.title, width - 2 * MARGIN - 220), font=fonts.title,
              fill=INK)
    label = f"Page {number + 1} of {pages}"
    draw.text((width - MARGIN - fonts.text.getlength(label), MARGIN - 2), label, font=fonts.text, fill=MUTED)
    draw.text((MARGIN, MARGIN + 34), _fit(header.subtitle, fonts.text, width - 2 * MARGIN), font=fonts.text,
              fill=MUTED)
    top = MARGIN + HEADER - 30
    draw.line((MARGIN, top - 12, width - MARGIN, top - 12), fill=LINE, width=2)

    tile_w = (width - 2 * MARGIN) // COLUMNS
    tile_h = (height - top - MARGIN) // ROWS
    for i, item in enumerate(items[:PER_PAGE]):
        x = MARGIN + (i % COLUMNS) * tile_w
        y = top + (i // COLUMNS) * tile_h
        first = header.first_number + number * PER_PAGE + i
        _tile(page, draw, fonts, item, (x + 8, y + 8, x + tile_w - 8, y + tile_h - 8), first)
    return page


def _tile(page: Image.Image, draw: ImageDraw.ImageDraw, fonts: _Fonts, item: SheetItem,
          box: tuple[int, int, int, int], number: int) -> None:
    left, top, right, bottom = box
    text_h = 26 * NAME_LINES + 26
    image_box = (left, top, right, bottom - text_h)
    failed = item.status == "failed"
    draw.rectangle(image_box, fill=RED_PANEL if failed else PANEL)
    shown = _open(item.preview) if item.preview and not failed else None
    if shown is not None:
        bw, bh = image_box[2] - image_box[0] - 8, image_box[3] - image_box[1] - 8
        shown.thumbnail((bw, bh), Image.Resampling.LANCZOS)
        page.paste(shown, (image_box[0] + 4 + (bw - shown.width) // 2, image_box[1] + 4 + (bh - shown.height) // 2),
                   shown if shown.mode == "RGBA" else None)
    elif failed:
        _centered(draw, image_box, ["FAILED", item.error_code or ""], [fonts.mark, fonts.small], RED)
        cx, cy = (image_box[0] + image_box[2]) // 2, image_box[1] + 40
        draw.line((cx - 14, cy - 14, cx + 14, cy + 14), fill=RED, width=5)
        draw.line((cx - 14, cy + 14, cx + 14, cy - 14), fill=RED, width=5)
    else:
        _centered(draw, image_box, [_STATUS_WORDS.get(item.status, item.status.replace("_", " "))],
                  [fonts.text], MUTED)
    if failed:
        draw.rectangle((left - 4, top - 4, right + 4, bottom + 2), outline=RED, width=4)
    lines = _wrap(item.file_name, fonts.small, right - left)
    y = image_box[3] + 6
    for line in lines:
        draw.text((left, y), line, font=fonts.small, fill=INK)
        y += 24
    status = f"{number} · " + ("failed: " + (item.error_code or "error") if failed else item.status.replace("_", " "))
    draw.text((left, bottom - 22), _fit(status, fonts.small, right - left), font=fonts.small,
              fill=RED if failed else MUTED)


_STATUS_WORDS = {"awaiting_upload": "not uploaded", "processing": "processing", "cancelled": "cancelled",
                 "completed": "no preview"}


def _open(data: bytes) -> Image.Image | None:
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception:   # a preview that cannot be read only costs its picture, not the sheet
        return None
    return im.convert("RGBA") if im.mode in ("RGBA", "LA", "P", "PA") else im.convert("RGB")


def _centered(draw, box, lines, fonts, fill) -> None:
    heights = [f.size + 8 for f in fonts]
    y = (box[1] + box[3]) // 2 - sum(heights) // 2 + 20
    for line, font, h in zip(lines, fonts, heights):
        if line:
            draw.text(((box[0] + box[2] - font.getlength(line)) / 2, y), line, font=font, fill=fill)
        y += h


def _fit(text: str, font, width: float) -> str:
    """One line: the text, shortened in the middle with an ellipsis when it does not fit."""
    if font.getlength(text) <= width:
        return text
    keep_end = max(4, len(text) // 3)
    head, tail = text[:-keep_end], text[-keep_end:]
    while head and font.getlength(head + "…" + tail) > width:
        head = head[:-1]
        if not head and len(tail) > 4:
            tail = tail[1:]
            head = " "
    return head.rstrip() + "…" + tail


def _wrap(text: str, font, width: float) -> list[str]:
    """At most NAME_LINES lines, broken where the width ends; the last one shortened in the middle."""
    lines, rest = [], text
    while rest and len(lines) < NAME_LINES - 1:
        if font.getlength(rest) <= width:
            break
        cut = len(rest)
        while cut > 1 and font.getlength(rest[:cut]) > width:
            cut -= 1
        lines.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        lines.append(_fit(rest, font, width))
    return lines
