"""Typed settings, read from the environment once when wiring starts (never at import)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from .domain.batches import Limits
from .domain.multipart import MAX_PART_SIZE, MIN_PART_SIZE
from .resources import EVENT_BUS, QUEUES, TABLES, WEBHOOK_KEY


def _default_tables() -> dict[str, str]:
    return {t.key: t.default for t in TABLES}

# Signs list cursors (services/paging.py). Locally any fixed key will do; the deploy template
# gives every stack its own generated key (deploy/template.py, CursorSigningKey).
DEV_CURSOR_SIGNING_KEY = "imgbatch-local-cursor-signing-key-not-a-secret"
MIN_CURSOR_KEY_LENGTH = 32
LOG_FORMATS = ("json", "text")


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
    # Larger archives are cut into S3 parts of about this size (members of at least
    # archive_min_part_size are copied inside S3 instead), and the parts into tasks of about
    # archive_task_bytes, each one message to the build_archive_part function.
    archive_part_size: int = 32 * 1024 * 1024
    archive_min_part_size: int = 5 * 1024 * 1024   # S3's minimum; lower only where storage allows it
    archive_task_bytes: int = 512 * 1024 * 1024
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
    # events and webhooks (API.md version 2)
    event_bus_name: str = EVENT_BUS.default
    webhook_key_id: str = WEBHOOK_KEY.alias
    webhook_retry_base_seconds: float = 60.0
    webhook_max_attempts: int = 8
    webhook_timeout_seconds: float = 10.0
    # Receivers on private, loopback and link-local addresses are refused unless this is set
    # (the local stack sets it, so a receiver on 127.0.0.1 works).
    webhook_allow_private: bool = False
    # Build a batch's ZIP as soon as it is final with outputs, so the download is an immediate 302.
    prebuild_archives: bool = True
    # Observability (chalicelib/observability.py): JSON lines in Lambda, `text` for people locally;
    # EMF metrics on stdout; X-Ray subsegments only where Lambda runs with active tracing.
    log_format: str = "json"
    log_level: str = "INFO"
    metrics: bool = True
    tracing: bool = False

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

        def flag(name: str, fallback: bool) -> bool:
            raw = (env.get(name) or "").strip().lower()
            if raw == "":
                return fallback
            if raw not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(f"{name} must be true or false (or on/off), got {env.get(name)!r}")
            return raw in ("true", "1", "yes", "on")

        def seconds(name: str, fallback: float) -> float:
            raw = env.get(name)
            if raw in (None, ""):
                return fallback
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
            if value <= 0:
                raise ValueError(f"{name} must be above 0, got {raw!r}")
            return value

        attempts = num("WEBHOOK_MAX_ATTEMPTS", default.webhook_max_attempts)
        if not 1 <= attempts <= 50:
            raise ValueError(f"WEBHOOK_MAX_ATTEMPTS must be between 1 and 50, got {attempts}")

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
        log_format = (env.get("LOG_FORMAT") or default.log_format).lower()
        if log_format not in LOG_FORMATS:
            raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
        return cls(
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or default.region,
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            tables={t.key: env.get(t.env) or t.default for t in TABLES},
            queue_urls={q.key: env[q.env] for q in QUEUES if env.get(q.env)},
            bucket=env.get("BUCKET_NAME", default.bucket),
            archive_sync_max_bytes=num("ARCHIVE_SYNC_MAX_BYTES", default.archive_sync_max_bytes),
            archive_sync_max_entries=num("ARCHIVE_SYNC_MAX_ENTRIES", default.archive_sync_max_entries),
            archive_part_size=num("ARCHIVE_PART_SIZE", default.archive_part_size),
            archive_min_part_size=num("ARCHIVE_MIN_PART_SIZE", default.archive_min_part_size),
            archive_task_bytes=num("ARCHIVE_TASK_BYTES", default.archive_task_bytes),
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
            event_bus_name=env.get(EVENT_BUS.env) or default.event_bus_name,
            webhook_key_id=env.get(WEBHOOK_KEY.env) or default.webhook_key_id,
            webhook_retry_base_seconds=seconds("WEBHOOK_RETRY_BASE_SECONDS", default.webhook_retry_base_seconds),
            webhook_max_attempts=attempts,
            webhook_timeout_seconds=seconds("WEBHOOK_TIMEOUT_SECONDS", default.webhook_timeout_seconds),
            webhook_allow_private=flag("WEBHOOK_ALLOW_PRIVATE", default.webhook_allow_private),
            prebuild_archives=flag("PREBUILD_ARCHIVES", default.prebuild_archives),
            log_format=log_format,
            log_level=(env.get("LOG_LEVEL") or default.log_level).upper(),
            metrics=flag("METRICS", default.metrics),
            # Lambda names itself in AWS_LAMBDA_FUNCTION_NAME; elsewhere nobody listens for traces
            tracing=flag("TRACING", bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))),
        )
