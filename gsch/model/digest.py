"""The digest of a request body: what tells a second publication of a request id apart from
a re-send of the same request. No I/O."""

from __future__ import annotations

import hashlib

import msgspec

from gsch.model.documents import DocumentError, load_request_body

_canonical = msgspec.json.Encoder(order="sorted")


def body_digest(data: bytes) -> str:
    """A digest of the body as it means: key order, whitespace and spelling (JSON or YAML,
    one document or a request and its manifests) do not count, so the same request written
    out again is the same request. A body that cannot be read is digested byte for byte."""
    try:
        canonical = _canonical.encode(load_request_body(data))
    except (DocumentError, RecursionError):
        canonical = data
    return hashlib.sha256(canonical).hexdigest()[:32]
