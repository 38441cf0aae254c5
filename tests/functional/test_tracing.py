"""X-Ray: with tracing on, one upload's processing is a trace whose subsegments are the
invocation, the render, and every S3 and DynamoDB call (botocore patched by Powertools' Tracer,
PynamoDB's calls included); annotations make a batch searchable. Off locally by default."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).with_name("tracing_probe.py")


def subsegments(entity: dict):
    for sub in entity.get("subsegments", []):
        yield sub
        yield from subsegments(sub)


def test_processing_is_traced_with_render_s3_and_dynamodb_subsegments():
    result = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True, timeout=180,
                            cwd=PROBE.parents[2])
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["outcome"] == "completed"
    # the segment, and subsegments streamed on their own, with everything nested in them
    subs = [s for e in report["entities"] for s in [e, *subsegments(e)]]
    names = [s["name"] for s in subs]
    handler = next(s for s in subs if s["name"] == "## process_upload")
    assert handler["annotations"] == {"event_id": "msg-1", "request_id": "req-1"}
    render = next(s for s in subs if s["name"] == "render")
    assert render["annotations"]["batch_id"] == report["batch_id"]
    assert render["end_time"] > render["start_time"]
    s3 = {s["aws"]["operation"] for s in subs if s["name"] == "s3"}
    assert {"GetObject", "PutObject"} <= s3, names
    dynamo = {s["aws"]["operation"] for s in subs if s["name"] == "dynamodb"}
    assert {"GetItem", "TransactWriteItems"} <= dynamo, names


def test_tracing_is_off_unless_lambda_runs_the_code():
    from chalicelib import wiring
    from chalicelib.settings import Settings
    assert Settings.from_env({}).tracing is False
    assert wiring.Container(Settings()).observability.tracer is None
