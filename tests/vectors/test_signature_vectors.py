"""Webhook signatures: the service's rule (chalicelib/domain/webhooks.py) and the CLI receiver's
copy (imgbatch/signatures.py) against one list of cases."""
from __future__ import annotations

import pytest

from chalicelib.domain import webhooks as service
from imgbatch import signatures as cli
from tests.vectors.vectors import SIGNATURES, ids


@pytest.mark.parametrize("make", [service.signature, cli.sign], ids=["service", "cli"])
@pytest.mark.parametrize("case", SIGNATURES["sign"], ids=ids(SIGNATURES["sign"]))
def test_sign(case, make):
    assert make(case["secret"], case["timestamp"], case["body"].encode()) == case["header"]


@pytest.mark.parametrize("check", [service.verify, cli.verify], ids=["service", "cli"])
@pytest.mark.parametrize("case", SIGNATURES["verify"], ids=ids(SIGNATURES["verify"]))
def test_verify(case, check):
    assert check(case["secret"], case["header"], case["body"].encode(), case["now"]) is case["valid"]
