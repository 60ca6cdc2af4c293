"""Query parameters: parsed strictly, every mistake a 400 that names the parameter."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Collection, Mapping

import msgspec
from multidict import MultiMapping

from gsch.api.http import ApiError

MIN_SEQ = "min_seq"
_MAX_INT = 2**63 - 1

Query = MultiMapping[str]


class _Cursor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    after: int


_cursor_decoder = msgspec.json.Decoder(_Cursor)


def only(query: Query, allowed: Collection[str]) -> None:
    """Refuse parameters the route does not know (a typo must not widen a listing)."""
    for name in query:
        if name not in allowed and name != MIN_SEQ:
            known = ", ".join(sorted({*allowed, MIN_SEQ}))
            raise ApiError(400, f"unknown query parameter {name!r} (known: {known})")


def single(query: Query, name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise ApiError(400, f"query parameter {name!r} given {len(values)} times; give it once")
    return values[0] if values else None


def integer(query: Query, name: str, *, default: int, low: int, high: int = _MAX_INT) -> int:
    text = single(query, name)
    if text is None:
        return default
    try:
        value = int(text, 10)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r} must be an integer, not {text!r}") from None
    if not low <= value <= high:
        raise ApiError(400, f"query parameter {name!r} must be between {low} and {high}")
    return value


def values(query: Query, name: str) -> tuple[str, ...]:
    """Every value of a filter: repeated (`?state=a&state=b`) or comma-separated (`a,b`)."""
    found: list[str] = []
    for raw in query.getall(name, []):
        for value in raw.split(","):
            if not value:
                raise ApiError(400, f"query parameter {name!r} has an empty value")
            if value not in found:
                found.append(value)
    return tuple(found)


def choices(query: Query, name: str, allowed: Mapping[str, str]) -> tuple[str, ...]:
    """Values of a filter over a closed set; `allowed` maps every spelling to its canonical."""
    result: list[str] = []
    for value in values(query, name):
        canonical = allowed.get(value)
        if canonical is None:
            options = ", ".join(sorted(set(allowed.values())))
            raise ApiError(400, f"query parameter {name!r}: unknown value {value!r} ({options})")
        if canonical not in result:
            result.append(canonical)
    return tuple(result)


def encode_continue(after: int) -> str:
    """An opaque token for the next page: the sort key of the last item returned."""
    return base64.urlsafe_b64encode(msgspec.json.encode(_Cursor(after))).decode().rstrip("=")


def decode_continue(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        cursor = _cursor_decoder.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ApiError(400, "query parameter 'continue' is not a token this API returned") from None
    if cursor.after < 0:
        raise ApiError(400, "query parameter 'continue' is not a token this API returned")
    return cursor.after
