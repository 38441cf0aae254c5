"""The browser's copies of the naming and sniffing rules against the shared vectors."""
from __future__ import annotations

import pytest

from tests.vectors.vectors import NAMING, SNIFFING, ids


@pytest.mark.parametrize("case", NAMING["cases"], ids=ids(NAMING["cases"]))
def test_naming(js, case):
    got = js("naming.js", "(m, names) => [m.customerPrefix(names), m.autoDescription(names)]", case["names"])
    assert got == [case["customer_prefix"], case["description_default"]]


def _bytes(hex_head: str) -> list[int]:
    return list(bytes.fromhex(hex_head))


@pytest.mark.parametrize("case", SNIFFING["sniff"], ids=ids(SNIFFING["sniff"]))
def test_sniffing(js, case):
    got = js("sniff.js", """(m, head) => {
        const bytes = new Uint8Array(head);
        return [m.sniffFormat(bytes), m.sniffContentType(bytes), m.refusedFormat(bytes)];
    }""", _bytes(case["head"]))
    assert got[:2] == [case["format"], case["content_type"]]
    if case["format"] is None:
        assert got[2] == case["refused"]


@pytest.mark.parametrize("case", SNIFFING["files"], ids=ids(SNIFFING["files"], "name"))
def test_choosing_files(js, case):
    head = _bytes(case["head"])
    got = js("sniff.js", """async (m, [name, head]) =>
        m.classifyFile(new File([new Uint8Array(head)], name))""", [case["name"], head])
    assert got == ({"contentType": case["content_type"]} if "content_type" in case else {"reason": case["skip"]})
