"""GEdge's bracket notation for cluster levels, e.g. "[c1,[c2,c3],c4]", parsed without eval.

Grammar (whitespace allowed between tokens):
    levels := "[" [ level ( "," level )* ] "]"
    level  := name | "[" name ( "," name )* "]"
    name   := bare | "'" chars "'" | '"' chars '"'
    bare   := [A-Za-z0-9._/=&-]+    (a name, or a label selector such as tier=near-edge)
    chars  := [A-Za-z0-9._/=&()-]+  (quoted, a name may hold parentheses: GEdge's dashboard
                                     names clusters like 'mec(ilsan)'; see gsch.model.gedge)
A plain name is a level of one cluster; an inner list is a group of clusters that compete.
"""

from __future__ import annotations

import re

_BARE = re.compile(r"[A-Za-z0-9._/=&-]+")
_QUOTED = re.compile(r"[A-Za-z0-9._/=&()-]+")


class BracketError(ValueError):
    """The text is not valid bracket notation; the message says where."""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str) -> BracketError:
        found = repr(self.text[self.pos]) if self.pos < len(self.text) else "end of text"
        return BracketError(f"expected {expected} at position {self.pos}, found {found}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.fail(repr(char))
        self.pos += 1

    def name(self) -> str:
        char = self.peek()
        if char in ("'", '"'):
            end = self.text.find(char, self.pos + 1)
            if end < 0:
                raise BracketError(f"unterminated quote starting at position {self.pos}")
            value = self.text[self.pos + 1 : end]
            self.pos = end + 1
            if not _QUOTED.fullmatch(value):
                raise BracketError(f"{value!r} is not a cluster name")
            return value
        match = _BARE.match(self.text, self.pos)
        if match is None:
            raise self.fail("a cluster name")
        self.pos = match.end()
        return match.group(0)

    def group(self) -> tuple[str, ...]:
        self.expect("[")
        names = [self.name()]
        while self.peek() == ",":
            self.pos += 1
            names.append(self.name())
        self.expect("]")
        return tuple(names)

    def levels(self) -> tuple[tuple[str, ...], ...]:
        self.expect("[")
        levels: list[tuple[str, ...]] = []
        if self.peek() != "]":
            while True:
                levels.append(self.group() if self.peek() == "[" else (self.name(),))
                if self.peek() != ",":
                    break
                self.pos += 1
        self.expect("]")
        if self.peek():
            raise self.fail("end of text")
        return tuple(levels)


def parse_levels(text: str) -> tuple[tuple[str, ...], ...]:
    return _Parser(text).levels()


def format_levels(levels: tuple[tuple[str, ...], ...]) -> str:
    """The inverse of `parse_levels`; raises BracketError for what the notation cannot hold."""
    for level in levels:
        if not level:
            raise BracketError("an empty level cannot be written in bracket notation")
        for name in level:
            if not _BARE.fullmatch(name):
                raise BracketError(f"{name!r} is not a cluster name")
    parts = [level[0] if len(level) == 1 else "[" + ",".join(level) + "]" for level in levels]
    return "[" + ",".join(parts) + "]"
