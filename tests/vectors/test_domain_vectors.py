"""The service's own rules (chalicelib/domain) against the shared vectors."""
from __future__ import annotations

import pytest

from chalicelib.domain import batches, imaging, naming
from tests.vectors.vectors import NAMING, SNIFFING, ids


@pytest.mark.parametrize("case", NAMING["cases"], ids=ids(NAMING["cases"]))
def test_naming(case):
    # The service makes every name safe (NFC) before it derives anything from the names.
    names = [naming.safe_file_name(n) for n in case["names"]]
    assert naming.customer_prefix(names) == case["customer_prefix"]
    assert naming.auto_description(names) == case["description_default"]


def _expected(case):
    """AVIF is processed only where Pillow was built with it; elsewhere it is refused."""
    if case["format"] == "AVIF" and "AVIF" not in imaging.ALLOWED_INPUT_FORMATS:
        return None, "AVIF"
    return case["format"], case["refused"]


@pytest.mark.parametrize("case", SNIFFING["sniff"], ids=ids(SNIFFING["sniff"]))
def test_sniffing(case):
    head = bytes.fromhex(case["head"])
    fmt, refused = _expected(case)
    assert imaging.sniff_format(head) == fmt
    if fmt is None:
        with pytest.raises(imaging.ImageError) as caught:
            imaging.render(head, [imaging.RenderSpec(format="png")])
        if refused:
            assert caught.value.code == "unsupported_format"
            assert caught.value.message.startswith(f"{refused} images are not supported")
        else:
            assert caught.value.code == "not_an_image"


ACCEPTED = [c for c in SNIFFING["sniff"] if c["content_type"]]


@pytest.mark.parametrize(
    "case",
    ACCEPTED,
    ids=ids(ACCEPTED))
def test_the_service_accepts_the_content_type_clients_declare(case):
    body = {"pipeline_ids": ["p"], "files": [{"name": "x", "size": 1, "content_type": case["content_type"]}]}
    (spec,) = batches.parse_create(body, batches.Limits()).files
    assert spec.content_type == case["content_type"]
