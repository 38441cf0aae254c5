"""The CLI's copy of the sniffing rules (imgbatch/files.py) against the shared vectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgbatch.files import ImageFile, classify, refused_format, sniff_content_type, sniff_format
from tests.vectors.vectors import SNIFFING, ids


@pytest.mark.parametrize("case", SNIFFING["sniff"], ids=ids(SNIFFING["sniff"]))
def test_sniffing(case):
    head = bytes.fromhex(case["head"])
    assert sniff_format(head) == case["format"]
    assert sniff_content_type(head) == case["content_type"]
    if case["format"] is None:
        assert refused_format(head) == case["refused"]


@pytest.mark.parametrize("case", SNIFFING["files"], ids=ids(SNIFFING["files"], "name"))
def test_choosing_files(case, tmp_path: Path):
    path = tmp_path / case["name"]
    path.write_bytes(bytes.fromhex(case["head"]))

    result = classify(path)

    if "content_type" in case:
        assert isinstance(result, ImageFile), result
        assert result.content_type == case["content_type"]
    else:
        assert result.reason == case["skip"]
