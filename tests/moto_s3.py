"""moto's S3 made to answer as S3 does where the tests depend on it (mock_aws only)."""
from __future__ import annotations

import threading


def no_such_upload_as_in_s3(monkeypatch) -> None:
    """moto answers a part sent to a completed or aborted upload with a 500 (a KeyError inside),
    which botocore retries for seconds, and two concurrent completions of one upload can both get
    past its check; S3 answers NoSuchUpload, and completes an upload once. Make moto do the same."""
    from moto.s3.exceptions import NoSuchUpload
    from moto.s3.models import S3Backend
    lock = threading.RLock()

    def checked(method):
        def call(self, bucket_name, multipart_id, *args, **kwargs):
            with lock:
                if multipart_id not in self.get_bucket(bucket_name).multiparts:
                    raise NoSuchUpload(upload_id=multipart_id)
                return method(self, bucket_name, multipart_id, *args, **kwargs)
        return call
    for name in ("upload_part", "upload_part_copy", "complete_multipart_upload"):
        monkeypatch.setattr(S3Backend, name, checked(getattr(S3Backend, name)))
