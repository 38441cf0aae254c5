"""Naming rules for batches: customer prefix, directory name, description, safe file names.

Pure functions: no I/O, no clock. See ../shared/design/API.md ("Naming rules").
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Sequence

from .validation import unicode_problem

# "leading LETTERS_LETTERS": PL_DXB191_Front.png -> PL_DXB
_PREFIX_RE = re.compile(r"^([A-Za-z]+_[A-Za-z]+)")
_EXPLICIT_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DEFAULT_PREFIX = "MISC"
MAX_PREFIX_LENGTH = 64
MAX_NAME_BYTES = 255  # S3 key segment and most file systems


class NameError_(ValueError):
    """A file name or prefix that cannot be accepted; the message says why."""


def prefix_of(file_name: str) -> str | None:
    match = _PREFIX_RE.match(file_name)
    if not match:
        return None
    return match.group(1)[:MAX_PREFIX_LENGTH].upper()


def customer_prefix(file_names: Sequence[str]) -> str:
    """Most common prefix among the names; ties go to the one seen first; MISC if none."""
    found = [p for p in (prefix_of(n) for n in file_names) if p]
    if not found:
        return DEFAULT_PREFIX
    counts = Counter(found)
    best = max(counts.values())
    return next(p for p in found if counts[p] == best)


def validate_explicit_prefix(prefix: str) -> str:
    if not _EXPLICIT_PREFIX_RE.match(prefix):
        raise NameError_(
            "customer_prefix must be 1-64 characters of letters, digits, '_' or '-', "
            f"starting with a letter or digit (got {prefix!r})"
        )
    return prefix


def prefix_key(prefix: str) -> str:
    """The customer prefix as index keys hold it, so the filter ignores case like search does.
    Upper case, as parsed prefixes already are: their keys written before this rule still match."""
    return prefix.upper()


def directory_name(prefix: str, batch_date: str, counter: int) -> str:
    return f"{prefix}_{batch_date}_batch-{counter}"


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name.strip(".") else name


def auto_description(file_names: Sequence[str]) -> str:
    """'{N}-view Render' when names differ only in their last '_' token, else '{N} files'."""
    n = len(file_names)
    if n >= 2:
        parts = [_stem(name).split("_") for name in file_names]
        if all(len(p) >= 2 for p in parts):
            heads = {tuple(p[:-1]) for p in parts}
            lasts = [p[-1].casefold() for p in parts]
            if len(heads) == 1 and len(set(lasts)) == n and all(lasts):
                return f"{n}-view Render"
    return "1 file" if n == 1 else f"{n} files"


def _is_hostile_char(ch: str) -> bool:
    # Cc: control characters; Cf: format characters such as RTL overrides that
    # make a name display differently from what it is.
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


def safe_file_name(name: str) -> str:
    """Return the NFC form of an acceptable file name or raise NameError_ saying why."""
    if not isinstance(name, str):
        raise NameError_("must be a string")
    problem = unicode_problem(name)
    if problem:
        raise NameError_(problem)
    normal = unicodedata.normalize("NFC", name)
    if not normal.strip():
        raise NameError_("is empty")
    if "/" in normal or "\\" in normal:
        raise NameError_("must be a plain file name without path parts ('/' or '\\')")
    bad = [ch for ch in normal if _is_hostile_char(ch)]
    if bad:
        raise NameError_(f"contains a control character (U+{ord(bad[0]):04X})")
    if normal in (".", "..") or normal.startswith("."):
        raise NameError_("must not start with '.'")
    if normal != normal.strip():
        raise NameError_("must not start or end with whitespace")
    if len(normal.encode("utf-8")) > MAX_NAME_BYTES:
        raise NameError_(f"is longer than {MAX_NAME_BYTES} bytes in UTF-8")
    return normal


def duplicate_key(safe_name: str) -> str:
    """Names that would clobber each other once unzipped on macOS or Windows."""
    return safe_name.casefold()


def search_text(*fields: str) -> str:
    return "\n".join(f.casefold() for f in fields if f)
