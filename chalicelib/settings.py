"""Typed settings, read from the environment once when wiring starts (never at import)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from .domain.batches import Limits
from .domain.multipart import MAX_PART_SIZE, MIN_PART_SIZE
from .resources import QUEUES, TABLES


def _default_tables() -> dict[str, str]:
    return {t.key: t.default for t in TABLES}

# Signs list cursors (services/paging.py). Locally any fixed key will do; the deploy template
# gives every stack its own generated key (deploy/template.py, CursorSigningKey).
DEV_CURSOR_SIGNING_KEY = "imgbatch-local-cursor-signing-key-not-a-secret"
MIN_CURSOR_KEY_LENGTH = 32


def parse_tokens(raw: str) -> dict[str, str]:
    """'token:owner,token2:owner2' -> {token: owner}; malformed pairs are a start-up error."""
    tokens = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        token, sep, owner = pair.partition(":")
        if not sep or not token.strip() or not owner.strip():
            raise ValueError(f"LOCAL_API_TOKENS entry {pair!r} is not of the form token:owner")
        tokens[token.strip()] = owner.strip()
    return tokens


@dataclass(frozen=True)
class Settings:
    region: str = "us-east-1"
    endpoint_url: str | None = None
    # table key -> name, queue key -> URL; keys and environment variables from resources.py
    tables: Mapping[str, str] = field(default_factory=_default_tables)
    queue_urls: Mapping[str, str] = field(default_factory=dict)
    bucket: str = "imgbatch-local"
    # Archives up to these sizes are built inside the API request (API Gateway allows 29 s);
    # larger ones are built by the build_archive function while the client polls (202).
    archive_sync_max_bytes: int = 256 * 1024 * 1024
    archive_sync_max_entries: int = 5000
    upload_ttl_seconds: int = 3600
    expiry_grace_seconds: int = 15
    # A job still `processing` this long after its last change has exhausted SQS's
    # redeliveries (5 receives x 16 min visibility) and is failed by the sweep.
    stale_processing_seconds: int = 90 * 60
    download_ttl_seconds: int = 900
    limits: Limits = field(default_factory=Limits)
    local_api_tokens: Mapping[str, str] = field(default_factory=dict)
    # Pixel limit for decoding (see domain/imaging.py); per-file memory scales with it.
    max_pixels: int = 50_000_000
    # Files above this many bytes are uploaded in parts (POST .../multipart), each part this size
    # (grown for files that would need more than 10,000 parts); see domain/multipart.py.
    multipart_threshold: int = 64 * 1024 * 1024
    multipart_part_size: int = 16 * 1024 * 1024
    # Owners whose drop folders (drop/{owner}/...) become batches; a marker anywhere else makes
    # none. Locally: the owners of LOCAL_API_TOKENS unless DROP_FOLDER_OWNERS says otherwise.
    drop_folder_owners: frozenset[str] = frozenset()
    cursor_signing_key: str = field(default=DEV_CURSOR_SIGNING_KEY, repr=False)

    def table(self, key: str) -> str:
        return self.tables[key]

    def queue_url(self, key: str) -> str | None:
        return self.queue_urls.get(key)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        default = cls()

        def num(name: str, fallback: int) -> int:
            raw = env.get(name)
            if raw in (None, ""):
                return fallback
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"{name} must be an integer, got {raw!r}") from None

        part_size = num("MULTIPART_PART_SIZE", default.multipart_part_size)
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"MULTIPART_PART_SIZE must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes "
                             f"(S3's limits for a part), got {part_size}")
        tokens = parse_tokens(env.get("LOCAL_API_TOKENS", ""))
        owners = env.get("DROP_FOLDER_OWNERS")
        drop_owners = frozenset(filter(None, (o.strip() for o in owners.split(",")))) if owners is not None \
            else frozenset(tokens.values())
        cursor_key = env.get("CURSOR_SIGNING_KEY") or default.cursor_signing_key
        if len(cursor_key) < MIN_CURSOR_KEY_LENGTH:
            raise ValueError(f"CURSOR_SIGNING_KEY must be at least {MIN_CURSOR_KEY_LENGTH} characters, "
                             f"got {len(cursor_key)}")
        return cls(
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or default.region,
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            tables={t.key: env.get(t.env) or t.default for t in TABLES},
            queue_urls={q.key: env[q.env] for q in QUEUES if env.get(q.env)},
            bucket=env.get("BUCKET_NAME", default.bucket),
            archive_sync_max_bytes=num("ARCHIVE_SYNC_MAX_BYTES", default.archive_sync_max_bytes),
            archive_sync_max_entries=num("ARCHIVE_SYNC_MAX_ENTRIES", default.archive_sync_max_entries),
            upload_ttl_seconds=num("UPLOAD_TTL_SECONDS", default.upload_ttl_seconds),
            expiry_grace_seconds=num("EXPIRY_GRACE_SECONDS", default.expiry_grace_seconds),
            stale_processing_seconds=num("STALE_PROCESSING_SECONDS", default.stale_processing_seconds),
            download_ttl_seconds=num("DOWNLOAD_TTL_SECONDS", default.download_ttl_seconds),
            limits=Limits(
                max_files=num("MAX_FILES_PER_BATCH", default.limits.max_files),
                max_file_size=num("MAX_FILE_SIZE", default.limits.max_file_size),
                max_batch_size=num("MAX_BATCH_SIZE", default.limits.max_batch_size),
            ),
            local_api_tokens=tokens,
            max_pixels=num("MAX_PIXELS", default.max_pixels),
            multipart_threshold=num("MULTIPART_THRESHOLD", default.multipart_threshold),
            multipart_part_size=part_size,
            drop_folder_owners=drop_owners,
            cursor_signing_key=cursor_key,
        )
