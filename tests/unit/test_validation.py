"""Shared input checks (domain/validation.py, naming.safe_file_name): lone surrogates and JSON nesting."""
from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain import naming, validation
from chalicelib.domain.validation import MAX_JSON_DEPTH, Invalid


@pytest.mark.parametrize("text, position", [("a\ud800", 1), ("\udfff", 0), ("ok\ud83d", 2)])
def test_lone_surrogates_are_named_with_their_position(text, position):
    problem = validation.unicode_problem(text)
    assert problem and f"U+{ord(text[position]):04X}) at position {position}" in problem
    with pytest.raises(Invalid, match=r"^what\.field is not valid Unicode text"):
        validation.string({"field": text}, "field", 100, what="what.")
    with pytest.raises(naming.NameError_, match="lone UTF-16 surrogate"):
        naming.safe_file_name(text + ".png")


def test_real_text_passes():
    for text in ("plain", "Ünïcödé ✓", "\U0001f600 emoji (a surrogate pair in UTF-16)", ""):
        assert validation.unicode_problem(text) is None
    assert naming.safe_file_name("\U0001f600.png") == "\U0001f600.png"


def nested(depth: int):
    value = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@given(st.integers(0, MAX_JSON_DEPTH * 3))
def test_nesting_is_measured_as_json_loads_would_recurse(depth):
    text = json.dumps(nested(depth))
    assert validation.nests_deeper_than(text, MAX_JSON_DEPTH) == (depth > MAX_JSON_DEPTH)
    if depth <= MAX_JSON_DEPTH:
        assert validation.parse_json(text.encode()) == nested(depth)
    else:
        with pytest.raises(Invalid, match=f"more than {MAX_JSON_DEPTH} levels deep"):
            validation.parse_json(text.encode())


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=30))
def test_brackets_and_quotes_inside_strings_never_count(value):
    def depth(v):
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        return 0
    for limit in range(0, 5):
        assert validation.nests_deeper_than(json.dumps(value), limit) == (depth(value) > limit)


@pytest.mark.parametrize("raw, fragment", [
    (b"[" * 100_000, f"more than {MAX_JSON_DEPTH} levels deep"),
    (b'"' + b'\\"' * 50_000, "not valid JSON"),     # an unterminated string of escaped quotes
    (b"\xed\xa0\x80", "not valid JSON"),              # a surrogate encoded in UTF-8
    (b"{", "not valid JSON"),
])
def test_hostile_bodies_are_invalid_not_crashes(raw, fragment):
    with pytest.raises(Invalid, match=fragment):
        validation.parse_json(raw)


def test_bodies_in_other_unicode_encodings_still_parse():
    assert validation.parse_json('{"a": "\u00e9"}'.encode("utf-16")) == {"a": "\u00e9"}
    assert validation.parse_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


def test_query_parameters_are_checked_by_name_and_value():
    assert validation.text_params({"search": "ok"}) == {"search": "ok"}
    with pytest.raises(Invalid, match=r"^query parameter 'search' is not valid Unicode text"):
        validation.text_params({"search": "a\ud800"})
    with pytest.raises(Invalid, match=r"^query parameter '\\ud800' is not valid"):
        validation.text_params({"\ud800": "x"})


def test_prefix_key_ignores_case_and_keeps_parsed_prefixes_as_they_were():
    assert naming.prefix_key("Pl_Dxb") == naming.prefix_key("PL_DXB") == naming.prefix_key("pl_dxb") == "PL_DXB"
    assert naming.prefix_key(naming.prefix_of("pl_dxb191_front.png")) == naming.prefix_of("pl_dxb191_front.png")
