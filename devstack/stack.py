"""Start moto, create resources from chalicelib/resources.py, serve the API, poll the queue."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .persistence import DataDirError, Persistence
from .ports import PortInUse, check_free

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("devstack")

DEFAULTS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "LOCAL_API_TOKENS": "local-dev-token:local",
    "BUCKET_NAME": "imgbatch-local",
    # so that a webhook receiver on this machine (127.0.0.1) can be tried out
    "WEBHOOK_ALLOW_PRIVATE": "true",
    # readable lines for people (LOG_FORMAT=json prints what Lambda prints); EMF metrics are JSON
    # documents meant for CloudWatch, so off unless asked for (METRICS=on)
    "LOG_FORMAT": "text",
    "METRICS": "off",
}


@dataclass
class Stack:
    host: str = "127.0.0.1"
    port: int = 8000
    moto_port: int = 8001
    workers: int = 2
    sweep_seconds: float = 15.0
    data_dir: Path | None = None        # None: nothing survives a stop (devstack/persistence.py)
    persist_seconds: float = 2.0
    persistence: Persistence | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list = field(default_factory=list)
    _servers: list = field(default_factory=list)
    delivered: int = 0

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def s3_url(self) -> str:
        return f"http://{self.host}:{self.moto_port}"

    def start(self) -> None:
        for name, value in DEFAULTS.items():
            os.environ.setdefault(name, value)
        # moto answers on this port for every service; botocore and PynamoDB both read it.
        os.environ["AWS_ENDPOINT_URL"] = self.s3_url
        self._start_moto()
        self._start_services()

    def _start_moto(self) -> None:
        from .moto_patches import install
        from .moto_server import MotoServer
        install()
        middleware = None
        if self.data_dir is not None:
            self.persistence = Persistence(self.data_dir, interval=self.persist_seconds)
            self.persistence.open()   # loads the last snapshot before moto serves
            middleware = self.persistence.middleware
        moto = MotoServer(self.host, self.moto_port, middleware=middleware)
        moto.start()
        self._servers.append(moto)
        if self.persistence is not None:
            self.persistence.start()

    def _start_services(self) -> None:
        """Resources, the API server, the pollers and the sweep, against AWS_ENDPOINT_URL."""
        from chalicelib import resources, wiring
        wiring.reset()
        settings = wiring.get().provision()
        for spec in resources.QUEUES:  # the functions read their queues' URLs from the environment
            os.environ[spec.env] = settings.queue_url(spec.key)
        wiring.reset()
        self.queue_urls = dict(settings.queue_urls)

        import app as chalice_app
        self.app = chalice_app.app
        for spec in resources.QUEUES:   # one poller per event source mapping (more for processing)
            for n in range(spec.local_workers or self.workers):
                self._spawn(lambda spec=spec: self._poll(self.queue_urls[spec.key], spec.handler, batch=spec.batch_size),
                            f"{spec.key}-poller-{n}")
        for spec in resources.TABLES:   # the stream event source mappings
            if spec.stream_handler:
                self._spawn(lambda spec=spec: self._poll_stream(spec.stream_handler), f"{spec.key}-stream")
        self._spawn(self._sweep, "sweeper")
        self._serve_api()

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _serve_api(self) -> None:
        from chalice.config import Config
        from chalice.local import LocalDevServer, ThreadedHTTPServer

        from .gateway import install as gateway_responses
        gateway_responses()

        class Server(ThreadedHTTPServer):
            # the stdlib default backlog of 5 refuses bursts (a browser, the CLI's parallel calls)
            request_queue_size = 128
            daemon_threads = True
        config_file = ROOT / ".chalice" / "config.json"
        config = Config(chalice_stage="local", user_provided_params={"chalice_app": self.app},
                        config_from_disk=json.loads(config_file.read_text()))
        server = LocalDevServer(self.app, config, self.host, self.port, server_cls=Server)
        self._api_server = server
        self._spawn(server.serve_forever, "api")
        self._wait_http(f"{self.api_url}/health")

    @staticmethod
    def _wait_http(url: str, timeout: float = 30.0) -> None:
        import urllib.request
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout} s")
            time.sleep(0.1)

    # -- event delivery ------------------------------------------------------
    def _poll(self, queue_url: str, handler: str, batch: int = 10) -> None:
        """Deliver queue messages as Lambda's SQS event source would: up to `batch` per
        invocation, delete what succeeded, leave failures for redelivery."""
        from chalicelib import wiring
        sqs = wiring.get().sqs
        while not self._stop.is_set():
            try:
                got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=batch, WaitTimeSeconds=1,
                                          AttributeNames=["ApproximateReceiveCount"])
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("receive_message failed")
                time.sleep(1)
                continue
            messages = got.get("Messages", [])
            if not messages:
                continue
            event = {"Records": [_lambda_record(m, queue_url) for m in messages]}
            try:
                result = _invoke(self.app, handler, event)
                failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
            except Exception:
                log.exception("%s raised; every message of the batch will be redelivered", handler)
                failed = {m["MessageId"] for m in messages}
            done = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                    for n, m in enumerate(messages) if m["MessageId"] not in failed]
            retry = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 5}
                     for n, m in enumerate(messages) if m["MessageId"] in failed]
            if done:
                sqs.delete_message_batch(QueueUrl=queue_url, Entries=done)
                self.delivered += len(done)
            if retry:
                # Locally, retry soon instead of after the 16-minute Lambda visibility timeout.
                sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=retry)

    def _poll_stream(self, handler: str) -> None:
        """Deliver the batches table's stream as Lambda's DynamoDB event source does: records in
        order, and after a failure the same records again from the first one reported failed."""
        from chalicelib import wiring
        reader = wiring.get().batch_stream_reader()
        pending: list[dict] = []
        while not self._stop.is_set():
            try:
                if not pending:
                    pending = reader.poll()
                if not pending:
                    self._stop.wait(0.2)
                    continue
                result = _invoke(self.app, handler, {"Records": pending})
                failed = [f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])]
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("%s failed; its records will be delivered again", handler)
                failed = [pending[0]["dynamodb"]["SequenceNumber"]] if pending else []
            if not failed:
                pending = []
                continue
            first = min(int(seq) for seq in failed)
            pending = [r for r in pending if int(r["dynamodb"]["SequenceNumber"]) >= first]
            self._stop.wait(1.0)

    def _sweep(self) -> None:
        while not self._stop.wait(self.sweep_seconds):
            if _handler(self.app, "expire_uploads") is None:
                continue
            try:
                _invoke(self.app, "expire_uploads", _scheduled_event())
            except Exception:
                log.exception("upload-expiry sweep failed")

    def stop(self) -> None:
        self._stop.set()
        server = getattr(self, "_api_server", None)
        if server is not None:
            server.server.shutdown()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.persistence is not None:
            self.persistence.close()   # a last snapshot; moto accepts nothing after it
        for moto in self._servers:
            moto.stop()


def _handler(app, name: str):
    return getattr(sys.modules["app"], name, None)


def _invoke(app, name: str, event: dict):
    """Call the registered Chalice handler exactly as Lambda would: handler(event, context)."""
    return _handler(app, name)(event, _Context(name))


class _Context:
    def __init__(self, name: str):
        self.function_name = name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 1024

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _scheduled_event() -> dict:
    """What EventBridge hands a scheduled Lambda."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": os.environ.get("AWS_REGION", "us-east-1"), "resources": [], "detail": {}}


def _lambda_record(message: dict, queue_url: str) -> dict:
    return {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
        "attributes": message.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs", "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue_url.rsplit('/', 1)[-1]}",
        "awsRegion": os.environ.get("AWS_REGION", "us-east-1"),
    }


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("werkzeug", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    port = int(os.environ.get("PORT", "8000"))
    data_dir = os.environ.get("DATA_DIR", str(ROOT / ".data"))
    stack = Stack(
        host=os.environ.get("HOST", "127.0.0.1"), port=port,
        moto_port=int(os.environ.get("MOTO_PORT", str(port + 1))),
        workers=int(os.environ.get("WORKERS", "2")),
        sweep_seconds=float(os.environ.get("SWEEP_SECONDS", "15")),
        data_dir=Path(data_dir) if data_dir else None,
        persist_seconds=float(os.environ.get("PERSIST_SECONDS", "2")),
    )
    try:
        check_free(stack.host, {"PORT": stack.port, "MOTO_PORT": stack.moto_port})
    except PortInUse as exc:
        sys.exit(f"imgbatch local stack: {exc}")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    failure = None
    try:
        stack.start()
        from chalicelib.settings import parse_tokens
        tokens = parse_tokens(os.environ["LOCAL_API_TOKENS"])
        print(f"\nimgbatch local stack is ready\n  API + web UI   {stack.api_url}/\n"
              f"  S3/SQS/DynamoDB (moto)  {stack.s3_url}\n  data           {_data_line(stack)}\n"
              f"  events         EventBridge bus {os.environ.get('EVENT_BUS_NAME', 'imgbatch-events')}; "
              "webhooks may point at 127.0.0.1 (try `imgbatch listen`)\n  tokens         " +
              ", ".join(f"{t} (owner {o})" for t, o in tokens.items()) +
              f"\n  try: curl -H 'Authorization: Bearer {next(iter(tokens))}' {stack.api_url}/batches\n"
              "Press Ctrl-C to stop.", flush=True)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    except (PortInUse, DataDirError) as exc:
        failure = f"imgbatch local stack: {exc}"
    finally:
        print("stopping...", flush=True)
        stack.stop()
    if failure:
        sys.exit(failure)


def _data_line(stack: Stack) -> str:
    if stack.persistence is None:
        return "in memory only (DATA_DIR is empty): everything is gone when the stack stops"
    restored = stack.persistence.restored
    return (f"{stack.data_dir} ({'restored ' + restored.describe() if restored else 'new'}; saved every "
            f"{stack.persist_seconds:g} s and at Ctrl-C; `make clean-data` empties it)")
