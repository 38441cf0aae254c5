"""The single-page UI: its static files and the security headers they are served with."""
from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from ..errors import NotFound
from ..domain.keys import UPLOAD_PREFIX

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".json": "application/json"}


def security_headers(storage_origins: list[str]) -> dict[str, str]:
    """Headers for the UI's documents and assets.

    The page runs only its own files: no inline script or style attribute (web/ has none),
    no plugins, frames or foreign forms, and it cannot be framed (clickjacking). It talks to
    the API (same origin) and, for presigned uploads and downloads, to the storage origins,
    from which it also shows images (previews and outputs are presigned S3 URLs)."""
    policy = {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", *storage_origins],
        "connect-src": ["'self'", *storage_origins],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
    return {
        "Content-Security-Policy": "; ".join(f"{name} {' '.join(values)}" for name, values in policy.items()),
        "X-Content-Type-Options": "nosniff",
        # The UI's URLs carry nothing secret, but nothing outside needs them either.
        "Referrer-Policy": "no-referrer",
    }


class WebUI:
    def __init__(self, root: Path, storage):
        self.root = root
        self.storage = storage

    @cached_property
    def headers(self) -> dict[str, str]:
        # The origins come from the presigner itself (virtual-hosted or path-style, regional or
        # global endpoint, moto locally), so the policy allows exactly what the API hands out.
        return security_headers(self.storage.browser_origins(f"{UPLOAD_PREFIX}origin-probe"))

    def asset(self, name: str) -> tuple[str, str]:
        """(text, content type) of a file directly in the UI directory, else NotFound.
        The name is matched against the directory's listing, never handed to the file system,
        so hostile names (too long, '..', NUL, lone surrogates) are just unknown."""
        suffix = os.path.splitext(name)[1]
        if suffix not in TYPES or name not in os.listdir(self.root) or not (self.root / name).is_file():
            raise NotFound(f"no such asset: {name[:100]}")
        return (self.root / name).read_text(encoding="utf-8"), TYPES[suffix]
