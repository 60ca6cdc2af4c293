"""`continue` tokens: the sort key of the last item of a page, signed and with an expiry.

Pages are keyset pages (`submitted_seq > key`), never offsets, so requests that arrive or
change state between two pages neither repeat nor vanish. The token is opaque to clients but
not secret: it is tamper-evident (HMAC-SHA256), bound to the query it continues (changing a
filter between pages is a 400, not a silently different listing) and expires (410), as
Kubernetes' continue tokens do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import msgspec

from gsch.api.http import ApiError

_MAC_BYTES = 16


class _Cursor(msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True):
    key: int  # the sort key of the last item returned
    query: str  # digest of the filters and order the token continues
    expires: float  # unix time


_decoder = msgspec.json.Decoder(_Cursor)
_NOT_OURS = (
    "query parameter 'continue' is not a token this API issued for this query (altered,"
    " issued for other filters, or by an API process with another continue secret)"
)


class Cursors:
    def __init__(
        self, secret: bytes | None, ttl: float, clock: Callable[[], float] = time.time
    ) -> None:
        # A per-process secret is fine for one API process; replicas behind one address
        # must share `api.continue_secret_file`.
        self._secret = secret or secrets.token_bytes(32)
        self._ttl = ttl
        self._clock = clock

    def issue(self, key: int, query: str) -> str:
        payload = msgspec.json.encode(_Cursor(key, query, round(self._clock() + self._ttl, 3)))
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def open(self, token: str, query: str) -> int:
        """The key a token continues from; 400 when it is not ours, 410 when it expired."""
        payload_text, dot, mac_text = token.partition(".")
        try:
            payload, mac = _unb64(payload_text), _unb64(mac_text)
        except (binascii.Error, ValueError):
            raise ApiError(400, _NOT_OURS) from None
        if not dot or not hmac.compare_digest(mac, self._mac(payload)):
            raise ApiError(400, _NOT_OURS)
        try:
            cursor = _decoder.decode(payload)
        except msgspec.DecodeError:
            raise ApiError(400, _NOT_OURS) from None
        if cursor.query != query:
            raise ApiError(400, _NOT_OURS)
        if cursor.expires < self._clock():
            raise ApiError(
                410,
                "the continue token has expired; list again from the first page"
                f" (tokens are valid for {self._ttl:g} s)",
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
