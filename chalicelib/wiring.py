"""The composition root: the one place that creates boto3 clients and adapters.

Everything is built lazily on first use and cached; tests call `reset()` to
start over with fresh settings (for example inside moto's mock_aws).
"""
from __future__ import annotations

import threading
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import boto3
from botocore.config import Config
from pynamodb.connection import Connection

from .adapters.models import Models, build_models
from .adapters.repository import DynamoRepository
from .adapters.storage import Storage
from .resources import ARCHIVES, ARRIVALS, UPLOADS, Created, create_all
from .settings import Settings


class Container:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.from_env()

    @staticmethod
    def in_memory(settings: Settings | None = None) -> "InMemoryContainer":
        """The same services on the in-memory adapters (adapters/memory.py): no AWS, no boto3 client."""
        return InMemoryContainer(settings or Settings())

    def provision(self) -> Settings:
        """Create every resource (moto: tests, the local stack); return these settings with the
        queue URLs filled in."""
        created: Created = create_all(models=self.models, dynamodb=self.dynamodb, s3=self.s3, sqs=self.sqs,
                                      bucket=self.settings.bucket, region=self.settings.region)
        return replace(self.settings, queue_urls={**self.settings.queue_urls, **created.queue_urls})

    @cached_property
    def session(self) -> boto3.session.Session:
        return boto3.session.Session(region_name=self.settings.region)

    def client(self, service: str, **config):
        return self.session.client(
            service, endpoint_url=self.settings.endpoint_url,
            config=Config(retries={"max_attempts": 8, "mode": "adaptive"}, **config))

    @cached_property
    def s3(self):
        # SigV4 always: us-east-1 would otherwise presign with SigV2.
        return self.client("s3", signature_version="s3v4", max_pool_connections=32)

    @cached_property
    def sqs(self):
        return self.client("sqs")

    @cached_property
    def dynamodb(self):
        return self.client("dynamodb")

    @cached_property
    def models(self) -> Models:
        s = self.settings
        return build_models(**s.tables, region=s.region, host=s.endpoint_url)

    @cached_property
    def repository(self) -> DynamoRepository:
        conn = Connection(region=self.settings.region, host=self.settings.endpoint_url, max_retry_attempts=8)
        return DynamoRepository(self.models, conn)

    @cached_property
    def storage(self) -> Storage:
        return Storage(self.s3, self.settings.bucket)

    @cached_property
    def pipelines(self):
        from .services.pipelines import PipelineService
        return PipelineService(self.repository)

    @cached_property
    def batches(self):
        from .services.batches import BatchService
        return BatchService(self.repository, self.storage, self.settings, queue=self.queue)

    @cached_property
    def queue(self):
        from .adapters.queue import UploadQueue
        return UploadQueue(self.sqs, self.settings.queue_url(UPLOADS.key))

    @cached_property
    def arrival_queue(self):
        """The arrivals queue, in the shape of S3's notifications (drop folders' files go this way)."""
        from .adapters.queue import UploadQueue
        return UploadQueue(self.sqs, self.settings.queue_url(ARRIVALS.key))

    @cached_property
    def multipart(self):
        from .services.multipart import MultipartService
        return MultipartService(self.repository, self.storage, self.settings)

    @cached_property
    def dropfolders(self):
        from .services.dropfolders import DropFolderService
        return DropFolderService(self.repository, self.storage, self.settings, self.batches, self.arrival_queue)

    @cached_property
    def processor(self):
        from .services.processor import Processor
        return Processor(self.repository, self.storage, self.settings, queue=self.queue)

    @cached_property
    def archive_queue(self):
        from .adapters.queue import ArchiveQueue
        return ArchiveQueue(self.sqs, self.settings.queue_url(ARCHIVES.key))

    @cached_property
    def archives(self):
        from .services.archives import ArchiveService
        return ArchiveService(self.repository, self.storage, self.settings, self.archive_queue)

    @cached_property
    def results(self):
        from .services.results import ResultsService
        return ResultsService(self.repository, self.storage, self.settings)

    @cached_property
    def contact_sheets(self):
        from .services.contact_sheets import ContactSheetService
        return ContactSheetService(self.repository, self.storage, self.settings)

    @cached_property
    def deleter(self):
        from .services.deletion import Deleter
        return Deleter(self.repository, self.storage)

    @cached_property
    def sweep(self):
        from .services.sweep import Sweep
        return Sweep(self.processor, self.deleter)

    @cached_property
    def web(self):
        from .services.webui import WebUI
        # web/ sits beside chalicelib/, in the repository and at the root of the Lambda zip
        return WebUI(Path(__file__).resolve().parents[1] / "web", self.storage)

    @cached_property
    def auth(self):
        from .services.auth import TokenResolver
        return TokenResolver(self.settings.local_api_tokens, self.repository)


class InMemoryContainer(Container):
    """Every port on its in-memory fake; anything that would create an AWS client raises instead."""

    def provision(self) -> Settings:
        return self.settings

    def client(self, service: str, **config):
        raise RuntimeError(f"the in-memory container has no {service} client")

    @cached_property
    def models(self) -> Models:
        raise RuntimeError("the in-memory container has no DynamoDB models")

    @cached_property
    def repository(self):
        from .adapters.memory import MemoryRepository
        return MemoryRepository()

    @cached_property
    def storage(self):
        from .adapters.memory import MemoryStorage
        return MemoryStorage(self.settings.bucket)

    @cached_property
    def queue(self):
        from .adapters.memory import MemoryProcessingQueue
        return MemoryProcessingQueue()

    @cached_property
    def archive_queue(self):
        from .adapters.memory import MemoryArchiveQueue
        return MemoryArchiveQueue()

    @cached_property
    def arrival_queue(self):
        from .adapters.memory import MemoryProcessingQueue
        return MemoryProcessingQueue()


_lock = threading.Lock()
_container: Container | None = None


def get() -> Container:
    global _container
    with _lock:
        if _container is None:
            _container = Container()
        return _container


def reset(settings: Settings | None = None) -> Container | None:
    """Drop cached clients; with settings, install a container built from them."""
    global _container
    with _lock:
        _container = Container(settings) if settings else None
        return _container
