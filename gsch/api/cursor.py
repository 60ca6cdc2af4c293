"""`continue` tokens: the sort key of the last item of a page, signed, bound to its query, and
too old (410) once the log has moved on by more than a window of events.

Pages are keyset pages (`submitted_seq > key`), never offsets, so requests that arrive or
change state between two pages neither repeat nor vanish. A token is opaque to clients and
tamper-evident (HMAC-SHA256): changing its key or using it with other filters is a 400, not a
silently different listing. It ages by the log, as a Kubernetes resourceVersion does, not by
the clock: the same log gives the same tokens, so a rebuilt read model, or another API replica
with the same secret, answers byte for byte the same.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Annotated

import msgspec

from gsch.api.http import ApiError

_MAC_BYTES = 16
# Sort keys and sequences are stream sequences: what SQLite can bind and JetStream can count.
_Sequence = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class _Cursor(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    key: _Sequence  # the sort key of the last item returned
    query: str  # digest of the filters and order the token continues
    issued: _Sequence  # the stream sequence of the page that issued it


_decoder = msgspec.json.Decoder(_Cursor)
_NOT_OURS = (
    "query parameter 'continue' is not a token this API issued for this query (altered,"
    " issued for other filters, or by an API with another continue secret)"
)


class Cursors:
    def __init__(self, secret: bytes, window: int) -> None:
        if not secret:
            raise ValueError("continue tokens need a secret")
        self._secret = secret
        self._window = window

    def issue(self, key: int, query: str, sequence: int) -> str:
        payload = msgspec.json.encode(_Cursor(key, query, sequence))
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def open(self, token: str, query: str, sequence: int) -> int:
        """The key a token continues from, read at `sequence`; 400 when the token is not
        ours, 410 when the log has moved on by more than the window since it was issued."""
        payload_text, dot, mac_text = token.partition(".")
        try:
            payload, mac = _unb64(payload_text), _unb64(mac_text)
        except (binascii.Error, ValueError):
            raise ApiError(400, _NOT_OURS) from None
        if not dot or not hmac.compare_digest(mac, self._mac(payload)):
            raise ApiError(400, _NOT_OURS)
        try:
            cursor = _decoder.decode(payload)
        except msgspec.DecodeError:  # ValidationError too: a signed key out of range
            raise ApiError(400, _NOT_OURS) from None
        if cursor.query != query:
            raise ApiError(400, _NOT_OURS)
        if sequence - cursor.issued > self._window:
            raise ApiError(
                410,
                f"the continue token has expired: it was issued at sequence {cursor.issued}"
                f" and the log has moved on by more than {self._window} events since; list"
                " again from the first page",
            )
        return cursor.key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def query_digest(*parts: object) -> str:
    """A short digest of a normalised query, binding a token to it."""
    return hashlib.sha256(msgspec.json.encode(parts)).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
