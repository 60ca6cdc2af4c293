"""Query parameters: parsed strictly, every mistake a 400 that names the parameter."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from datetime import datetime

from multidict import MultiMapping

from gsch.api.http import ApiError

MIN_SEQ = "min_seq"
_MAX_INT = 2**63 - 1
_MAX_TIME = 253402300800.0  # year 10000


Query = MultiMapping[str]


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


def timestamp(query: Query, name: str) -> float | None:
    """A point in time: unix seconds (`1700000000.5`) or RFC 3339 (`2026-01-02T03:04:05Z`)."""
    text = single(query, name)
    if text is None:
        return None
    value = _unix_seconds(text)
    if value is None:
        raise ApiError(
            400, f"query parameter {name!r} must be unix seconds or RFC 3339 with a time zone"
        )
    if not math.isfinite(value) or not 0 <= value < _MAX_TIME:
        raise ApiError(400, f"query parameter {name!r} is out of range")
    return value


def _unix_seconds(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None
