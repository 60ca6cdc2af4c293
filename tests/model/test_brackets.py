"""GEdge's bracket notation for cluster levels: parsing, formatting, errors."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsch.model.brackets import BracketError, format_levels, parse_levels

names = st.text(alphabet="abcxyzABZ019._-", min_size=1, max_size=8)
levels_strategy = st.lists(st.lists(names, min_size=1, max_size=4).map(tuple), max_size=6).map(
    tuple
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]", ()),
        ("[c1]", (("c1",),)),
        ("[c1,c2]", (("c1",), ("c2",))),
        ("[c1,[c2,c3],c4]", (("c1",), ("c2", "c3"), ("c4",))),
        ("[[c1,c2,c3],c4]", (("c1", "c2", "c3"), ("c4",))),
        ("[[c1]]", (("c1",),)),
        ("['c1',\"c2\"]", (("c1",), ("c2",))),
        ("[['edge.a', \"edge_b\"], cloud-1]", (("edge.a", "edge_b"), ("cloud-1",))),
        ("  [ c1 ,\t[ c2 ,c3 ] ,\n c4 ]  ", (("c1",), ("c2", "c3"), ("c4",))),
    ],
)
def test_parse_levels(text: str, expected: tuple[tuple[str, ...], ...]) -> None:
    assert parse_levels(text) == expected


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("[c1,[c2", 7, "']'"),
        ("[c1]]", 4, "end of text"),
        ("c1", 0, "'['"),
        ("", 0, "'['"),
        ("[c1,,c2]", 4, "a cluster name"),
        ("[c1,]", 4, "a cluster name"),
        ("[c1 c2]", 4, "']'"),
        ("[[c1,[c2]]]", 5, "a cluster name"),
        ("[[]]", 2, "a cluster name"),
        ("[c1]x", 4, "end of text"),
        ("__import__('os')", 0, "'['"),
        ("[__import__('os')]", 11, "']'"),
    ],
)
def test_errors_say_what_was_expected_and_where(text: str, position: int, expected: str) -> None:
    with pytest.raises(BracketError) as info:
        parse_levels(text)
    message = str(info.value)
    assert f"expected {expected} at position {position}" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("['c1]", "unterminated quote starting at position 1"),
        ("['c 1']", "'c 1' is not a cluster name"),
        ("['']", "'' is not a cluster name"),
        ("[\"c1']", "unterminated quote"),
    ],
)
def test_quoted_name_errors(text: str, problem: str) -> None:
    with pytest.raises(BracketError, match=re.escape(problem)):
        parse_levels(text)


def test_code_is_never_evaluated(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*_args: object) -> None:
        raise AssertionError("bracket notation must not be evaluated")

    monkeypatch.setattr("builtins.eval", forbidden)
    monkeypatch.setattr("builtins.exec", forbidden)
    for text in ("__import__('os').system('true')", "[c1]+[c2]", "[c1,(c2)]", "{'a': 1}"):
        with pytest.raises(BracketError):
            parse_levels(text)


@settings(max_examples=100)
@given(levels_strategy)
def test_format_then_parse_round_trips(levels: tuple[tuple[str, ...], ...]) -> None:
    assert parse_levels(format_levels(levels)) == levels


@settings(max_examples=60)
@given(levels_strategy, st.data())
def test_whitespace_and_quotes_do_not_change_the_meaning(
    levels: tuple[tuple[str, ...], ...], data: st.DataObject
) -> None:
    """Decorate the canonical text with whitespace between tokens and quotes around names."""
    space = st.sampled_from(["", " ", "  ", "\t", "\n"])

    def name(text: str) -> str:
        quote = data.draw(st.sampled_from(["", "'", '"']))
        return f"{data.draw(space)}{quote}{text}{quote}{data.draw(space)}"

    def level(items: tuple[str, ...]) -> str:
        if len(items) == 1 and data.draw(st.booleans()):
            return name(items[0])
        return data.draw(space) + "[" + ",".join(name(n) for n in items) + "]" + data.draw(space)

    text = data.draw(space) + "[" + ",".join(level(lv) for lv in levels) + "]" + data.draw(space)
    assert parse_levels(text) == levels
    # Formatting the parsed result gives the canonical text back.
    assert format_levels(parse_levels(text)) == format_levels(levels)


@settings(max_examples=300)
@given(st.text(alphabet="[],'\" c1._-x(", max_size=20))
def test_parse_either_succeeds_or_raises_bracket_error(text: str) -> None:
    try:
        levels = parse_levels(text)
    except BracketError as exc:
        message = str(exc)
    else:
        assert all(level for level in levels)
        assert parse_levels(format_levels(levels)) == levels
        return
    assert "position" in message or "not a cluster name" in message


def test_format_levels_examples() -> None:
    assert format_levels((("c1",), ("c2", "c3"), ("c4",))) == "[c1,[c2,c3],c4]"
    assert format_levels(()) == "[]"


@pytest.mark.parametrize("levels", [((),), (("c1",), ()), (("a b",),), (("c1", "x]"),)])
def test_format_refuses_what_the_notation_cannot_hold(levels: tuple[tuple[str, ...], ...]) -> None:
    with pytest.raises(BracketError):
        format_levels(levels)
