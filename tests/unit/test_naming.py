"""Naming rules (API.md): customer prefix, directory name, description, safe file names."""
from __future__ import annotations

import string
import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chalicelib.domain import naming

letters = st.text(alphabet=string.ascii_letters, min_size=1, max_size=6)
tail = st.text(alphabet=string.digits + "_" + string.ascii_letters, max_size=12)


@pytest.mark.parametrize("name, prefix", [
    ("PL_DXB191_Front.png", "PL_DXB"), ("pl_dxb191_front.png", "PL_DXB"), ("AB_CD.png", "AB_CD"),
    ("A_B_C.png", "A_B"), ("PL191_Front.png", None), ("_PL_DXB.png", None), ("photo.jpg", None),
    ("PL-DXB_1.png", None), ("ÄB_CD.png", None),
])
def test_prefix_of(name, prefix):
    assert naming.prefix_of(name) == prefix


@given(a=letters, b=letters, rest=tail)
def test_prefix_is_the_leading_letters_pair(a, b, rest):
    assume(not rest[:1].isalpha())  # letters would extend the second group
    assert naming.prefix_of(f"{a}_{b}{rest}.png") == f"{a}_{b}".upper()


@given(st.lists(st.text(max_size=20), max_size=20))
def test_customer_prefix_is_always_a_found_prefix_or_misc(names):
    prefix = naming.customer_prefix(names)
    found = [naming.prefix_of(n) for n in names]
    assert prefix in found or (prefix == "MISC" and not any(found))


@given(st.lists(st.sampled_from(["AA_BB1.png", "CC_DD2.png", "EE_FF3.png", "plain.png"]), min_size=1, max_size=30))
def test_most_common_prefix_wins_ties_go_to_first_seen(names):
    found = [naming.prefix_of(n) for n in names if naming.prefix_of(n)]
    prefix = naming.customer_prefix(names)
    if not found:
        assert prefix == "MISC"
        return
    best = max(found.count(p) for p in found)
    assert found.count(prefix) == best
    assert prefix == next(p for p in found if found.count(p) == best)


def test_tie_goes_to_the_first_file():
    assert naming.customer_prefix(["BB_CC1.png", "AA_DD1.png"]) == "BB_CC"
    assert naming.customer_prefix(["x.png", "AA_DD1.png", "BB_CC1.png", "BB_CC2.png"]) == "BB_CC"


@given(prefix=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True), counter=st.integers(1, 10_000))
def test_directory_name(prefix, counter):
    assert naming.directory_name(prefix, "2025-11-05", counter) == f"{prefix}_2025-11-05_batch-{counter}"


@given(stem=st.lists(st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=5), min_size=1,
                     max_size=3),
       views=st.lists(st.text(alphabet=string.ascii_letters, min_size=1, max_size=6), min_size=2, max_size=8,
                      unique_by=str.casefold))
def test_views_of_one_stem_are_an_n_view_render(stem, views):
    names = ["_".join(stem + [v]) + ".png" for v in views]
    assert naming.auto_description(names) == f"{len(names)}-view Render"


@pytest.mark.parametrize("names, description", [
    (["PL_DXB191_Front.png", "PL_DXB191_Back.png", "PL_DXB191_Side.png"], "3-view Render"),
    (["PL_DXB191_Front.png", "PL_DXB192_Back.png"], "2 files"),
    (["a.png", "b.png"], "2 files"),
    (["PL_DXB191_Front.png", "PL_DXB191_Front.jpg"], "2 files"),
    (["PL_DXB191_Front.png"], "1 file"),
])
def test_auto_description(names, description):
    assert naming.auto_description(names) == description


@given(st.text(min_size=1, max_size=80))
def test_safe_file_name_accepts_only_harmless_names(name):
    try:
        safe = naming.safe_file_name(name)
    except naming.NameError_ as exc:
        assert str(exc)  # always says why
        return
    assert safe == unicodedata.normalize("NFC", safe)
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".")
    assert all(unicodedata.category(c) not in ("Cc", "Cf") for c in safe)
    assert len(safe.encode()) <= 255 and safe == safe.strip()


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30))
def test_normalisation_twins_collide(name):
    nfc, nfd = unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)
    try:
        a, b = naming.safe_file_name(nfc), naming.safe_file_name(nfd)
    except naming.NameError_:
        return
    assert naming.duplicate_key(a) == naming.duplicate_key(b)


@pytest.mark.parametrize("name, reason", [
    ("../x.png", "path parts"), ("a/b.png", "path parts"), ("a\\b.png", "path parts"),
    ("a\x1fb.png", "control character"), ("a\u202eb.png", "control character"), ("x" * 256, "255 bytes"),
    (".env", "start with '.'"), ("", "empty"), (" a.png", "whitespace"),
])
def test_hostile_names_are_refused_with_a_reason(name, reason):
    with pytest.raises(naming.NameError_, match=reason):
        naming.safe_file_name(name)
