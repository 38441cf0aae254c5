"""Run in a child process by test_tracing.py: X-Ray's SDK patches botocore for the whole process,
which must not leak into other tests. Processes one upload under mock_aws with tracing on inside
a segment, and prints every entity the X-Ray recorder sends, as JSON lines."""
from __future__ import annotations

import io
import json
import sys

from moto import mock_aws


class Capture:
    """The X-Ray SDK's emitter interface: what the daemon would receive over UDP."""

    def __init__(self):
        self.entities = []

    def send_entity(self, entity):
        self.entities.append(json.loads(entity.serialize()))

    def set_daemon_address(self, address):
        pass

    @property
    def ip(self):
        return "127.0.0.1"

    @property
    def port(self):
        return 2000


def main() -> None:
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from chalicelib import wiring
    from chalicelib.observability import PowertoolsObservability
    from chalicelib.settings import Settings
    from tests import images

    with mock_aws():
        container = wiring.Container(Settings(local_api_tokens={"t": "alice"}))
        container = wiring.Container(container.provision())
        container.observability = PowertoolsObservability(tracing=True, stream=io.StringIO(),
                                                          metrics_stream=io.StringIO())
        from aws_xray_sdk.core import xray_recorder
        capture = Capture()
        xray_recorder.configure(emitter=capture, sampling=False, context_missing="LOG_ERROR")
        pipeline = container.pipelines.create("alice", {"name": "web", "format": "jpeg", "width": 40})
        data = images.png()
        created = container.batches.create("alice", {"pipeline_ids": [pipeline["id"]], "files": [
            {"name": "a.png", "size": len(data), "content_type": "image/png"}]})
        key = created["uploads"][0]["fields"]["key"]
        container.storage.put(key, data, "image/png")
        xray_recorder.begin_segment("process_upload")
        with container.observability.invocation("process_upload", "req-1", event_id="msg-1"):
            outcome = container.processor.process_key(key)
        xray_recorder.end_segment()
        print(json.dumps({"outcome": outcome, "batch_id": created["batch"]["id"], "entities": capture.entities}))


if __name__ == "__main__":
    main()
