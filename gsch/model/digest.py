"""The digest of a request body: what tells a second publication of a request id apart from
a re-send of the same request. No I/O."""

from __future__ import annotations

import hashlib

import msgspec

_canonical = msgspec.json.Encoder(order="sorted")


def body_digest(data: bytes) -> str:
    """A digest of the body as JSON means it: key order and whitespace do not count, so the
    same request written out again is the same request. A body that is not JSON is digested
    byte for byte."""
    try:
        canonical = _canonical.encode(msgspec.json.decode(data))
    except (msgspec.DecodeError, RecursionError):
        canonical = data
    return hashlib.sha256(canonical).hexdigest()[:32]
