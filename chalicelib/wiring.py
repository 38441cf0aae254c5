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
import botocore
from botocore.config import Config

from .adapters.connection import ClientConnection, share
from .adapters.models import Models, build_models
from .adapters.repository import DynamoRepository
from .adapters.storage import Storage
from .resources import ARCHIVE_PARTS, ARCHIVES, ARRIVALS, DELIVERIES, MAINTENANCE, UPLOADS, Created, create_all
from .settings import Settings


USER_AGENT = f"imgbatch Boto3/{boto3.__version__} Botocore/{botocore.__version__}"


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
                                      bucket=self.settings.bucket, region=self.settings.region,
                                      events=self.events_client, kms=self.kms, bus_name=self.settings.event_bus_name)
        return replace(self.settings, queue_urls={**self.settings.queue_urls, **created.queue_urls})

    @cached_property
    def observability(self):
        """Powertools underneath (logs, EMF metrics, X-Ray when tracing is on): the one instance the
        handlers' middleware and every service share."""
        from .observability import PowertoolsObservability
        s = self.settings
        return PowertoolsObservability(log_format=s.log_format, log_level=s.log_level, metrics=s.metrics,
                                       tracing=s.tracing)

    @cached_property
    def session(self) -> boto3.session.Session:
        return boto3.session.Session(region_name=self.settings.region)

    def client(self, service: str, **config):
        # A fixed User-Agent: botocore otherwise assembles and sanitises about 35 parts twice per
        # request (some 0.1 ms of CPU each time, on every file's path).
        return self.session.client(
            service, endpoint_url=self.settings.endpoint_url,
            config=Config(retries={"max_attempts": 8, "mode": "adaptive"}, user_agent=USER_AGENT, **config))

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
    def events_client(self):
        return self.client("events")

    @cached_property
    def kms(self):
        return self.client("kms")

    def streams(self, endpoint_url: str | None = None):
        """A DynamoDB Streams client for reading the batches stream outside Lambda (the local stack,
        tests). botocore resolves DescribeStream to an ARN-based endpoint that moto does not route,
        so the endpoint is always named (ARCHITECTURE.md): moto's address, or under mock_aws the
        regional streams endpoint."""
        endpoint = endpoint_url or self.settings.endpoint_url or \
            f"https://streams.dynamodb.{self.settings.region}.amazonaws.com"
        return self.session.client("dynamodbstreams", endpoint_url=endpoint)

    def batch_stream_reader(self):
        from .adapters.batch_stream import StreamReader
        return StreamReader(self.dynamodb, self.streams(), self.settings.table("batches"))

    @cached_property
    def models(self) -> Models:
        s = self.settings
        models = build_models(**s.tables, region=s.region, host=s.endpoint_url)
        share(models, self.dynamodb_connection)
        return models

    @cached_property
    def dynamodb_connection(self) -> ClientConnection:
        """Every table's and every transaction's PynamoDB connection: one client (adapters/connection.py)."""
        return ClientConnection(self.dynamodb, self.settings.region)

    @cached_property
    def repository(self) -> DynamoRepository:
        return DynamoRepository(self.models, self.dynamodb_connection, obs=self.observability)

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
        return BatchService(self.repository, self.storage, self.settings, queue=self.queue,
                            maintenance=self.maintenance_queue, obs=self.observability)

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
        return Processor(self.repository, self.storage, self.settings, queue=self.queue,
                         maintenance=self.maintenance_queue, obs=self.observability)

    @cached_property
    def archive_queue(self):
        from .adapters.queue import ArchiveQueue
        return ArchiveQueue(self.sqs, self.settings.queue_url(ARCHIVES.key), self.settings.queue_url(ARCHIVE_PARTS.key))

    @cached_property
    def archives(self):
        from .services.archives import ArchiveService
        return ArchiveService(self.repository, self.storage, self.settings, self.archive_queue,
                              on_ready=lambda batch, key: self.events.archive_ready(batch, key), obs=self.observability)

    @cached_property
    def results(self):
        from .services.results import ResultsService
        return ResultsService(self.repository, self.storage, self.settings)

    @cached_property
    def contact_sheets(self):
        from .services.contact_sheets import ContactSheetService
        return ContactSheetService(self.repository, self.storage, self.settings)

    # -- events and webhooks -----------------------------------------------------------
    @cached_property
    def webhook_store(self):
        from .adapters.webhooks import DynamoWebhookStore
        return DynamoWebhookStore(self.models)

    @cached_property
    def deliveries(self):
        from .adapters.delivery_queue import SqsDeliveryQueue
        from .adapters.secrets import KmsSecretBox
        from .adapters.webhook_http import HttpSender
        from .services.deliveries import Deliveries
        s = self.settings
        return Deliveries(self.webhook_store, SqsDeliveryQueue(self.sqs, s.queue_url(DELIVERIES.key)),
                          KmsSecretBox(self.kms, s.webhook_key_id),
                          HttpSender(s.webhook_allow_private, s.webhook_timeout_seconds), s)

    @cached_property
    def events(self):
        from .adapters.event_bus import EventBridgeBus
        from .services.events import EventService
        return EventService(self.webhook_store, EventBridgeBus(self.events_client, self.settings.event_bus_name),
                            self.deliveries, self.archive_queue, self.settings)

    @cached_property
    def batch_changes(self):
        from .adapters.batch_stream import BatchChanges
        return BatchChanges(self.models)

    @cached_property
    def webhooks(self):
        from .services.webhooks import WebhookService
        d = self.deliveries
        return WebhookService(self.webhook_store, d.secrets, d.sender, d, self.settings)

    @cached_property
    def deleter(self):
        from .services.deletion import Deleter
        return Deleter(self.repository, self.storage, maintenance=self.maintenance_queue,
                       obs=self.observability)

    @cached_property
    def maintenance_queue(self):
        from .adapters.queue import MaintenanceQueue
        return MaintenanceQueue(self.sqs, self.settings.queue_url(MAINTENANCE.key))

    @cached_property
    def maintenance(self):
        from .services.maintenance import Maintenance
        return Maintenance(self.batches, self.deleter, self.processor, self.dropfolders)

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

    @cached_property
    def observability(self):
        from .observability import NOOP
        return NOOP

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
    def maintenance_queue(self):
        from .adapters.memory import MemoryMaintenanceQueue
        return MemoryMaintenanceQueue()

    @cached_property
    def arrival_queue(self):
        from .adapters.memory import MemoryProcessingQueue
        return MemoryProcessingQueue()

    # -- events and webhooks (adapters/memory_events.py) ----------------------------------
    @cached_property
    def webhook_store(self):
        from .adapters.memory_events import MemoryWebhookStore
        return MemoryWebhookStore()

    @cached_property
    def delivery_queue(self):
        from .adapters.memory_events import MemoryDeliveryQueue
        return MemoryDeliveryQueue()

    @cached_property
    def event_bus(self):
        from .adapters.memory_events import MemoryEventBus
        return MemoryEventBus()

    @cached_property
    def secret_box(self):
        from .adapters.memory_events import MemorySecretBox
        return MemorySecretBox()

    @cached_property
    def webhook_sender(self):
        from .adapters.memory_events import RecordingSender
        return RecordingSender()

    # Container builds these two with their AWS adapters inline: the same services, on the fakes.
    @cached_property
    def deliveries(self):
        from .services.deliveries import Deliveries
        return Deliveries(self.webhook_store, self.delivery_queue, self.secret_box, self.webhook_sender,
                          self.settings)

    @cached_property
    def events(self):
        from .services.events import EventService
        return EventService(self.webhook_store, self.event_bus, self.deliveries, self.archive_queue, self.settings)


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
