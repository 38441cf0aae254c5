"""docs/drop-folder-policy.json, the IAM policy a studio's principal gets in AWS, judged by the
same evaluator as the functions' roles (iam_calls.py): everything `aws s3 cp` / `aws s3 sync`
does to write a drop folder of its own owner (boto3's transfer manager, recorded under mock_aws:
single PUTs and multipart uploads alike) is allowed; the same calls in another owner's prefix, or
anywhere else in the bucket, are not. This is how "a marker in another owner's prefix" is refused
in AWS; locally nothing enforces IAM."""
from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from moto import mock_aws

from iam_calls import Arns, Need, Recorder, needs_for, statements

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "imgbatch-prod-uploads-123456789012-us-east-1"
ARNS = Arns("us-east-1", "123456789012")
MIB = 1024 * 1024


def policy_for(owner: str):
    text = (ROOT / "docs" / "drop-folder-policy.json").read_text()
    return statements(json.loads(text.replace("BUCKET", BUCKET).replace("OWNER", owner)))


def allowed(granted, need: Need) -> bool:
    return any(s.allows(need) for s in granted)


def copy_folder(tmp_path: Path, prefix: str) -> set[Need]:
    """What the AWS CLI does for `aws s3 cp --recursive ./shoot s3://bucket/{prefix}` plus the marker
    (boto3's transfer manager, as the CLI uses it), and `aws s3 ls` of the folder, as IAM needs."""
    (tmp_path / "small.jpg").write_bytes(b"\xff\xd8\xff" + b"x" * 1000)
    (tmp_path / "big.tif").write_bytes(b"II*\x00" + b"y" * (12 * MIB))
    recorder = Recorder()
    with mock_aws(), recorder.installed():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        with recorder.function("studio"):
            config = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB)
            for name in ("small.jpg", "big.tif"):
                s3.upload_file(str(tmp_path / name), BUCKET, f"{prefix}{name}", Config=config)
            s3.put_object(Bucket=BUCKET, Key=f"{prefix}_READY", Body=b'{"pipeline_ids": ["..."]}')
            s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    calls = [c for c in recorder.calls if c.function == "studio"]
    assert {c.operation for c in calls} >= {"PutObject", "CreateMultipartUpload", "UploadPart",
                                            "CompleteMultipartUpload", "ListObjectsV2"}
    return {n for c in calls for n in needs_for(c, ARNS)}


def test_a_studio_may_write_and_list_its_own_drop_folders(tmp_path):
    granted = policy_for("studio")
    needs = copy_folder(tmp_path, "drop/studio/spring-shoot/")
    assert [n for n in needs if not allowed(granted, n)] == []
    assert allowed(granted, Need("s3:AbortMultipartUpload", ARNS.object(BUCKET, "drop/studio/x/big.tif")))


@pytest.mark.parametrize("prefix", ["drop/other/spring-shoot/", "drop/studio-x/spring-shoot/", "uploads/b/j/",
                                    "outputs/b/j/"])
def test_a_studio_may_not_write_anywhere_else(tmp_path, prefix):
    granted = policy_for("studio")
    needs = copy_folder(tmp_path, prefix)
    assert needs and not [n for n in needs if allowed(granted, n)]


def test_a_studio_reads_and_deletes_nothing_and_lists_only_its_own_prefix():
    granted = policy_for("studio")
    for action in ("s3:GetObject", "s3:DeleteObject"):
        assert not allowed(granted, Need(action, ARNS.object(BUCKET, "drop/studio/shoot/a.png")))
    for prefix in ("", "drop/", "drop/other/", "uploads/", None):
        assert not allowed(granted, Need("s3:ListBucket", ARNS.bucket(BUCKET), prefix=prefix)), prefix
