"""Message ids for appends: unique per writer, cheap to make.

An id only has to let a writer recognise *its own* append when it reads back after a timeout;
an id shared between writers would let JetStream answer "duplicate" to a competitor and make
it believe it had won. A random per-process prefix and a counter give that without a system
call per event (uuid4 reads the OS's random source every time).
"""

from __future__ import annotations

import itertools
import secrets

from gsch.model.events import Event

_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count(1)


def new_msg_id(key: str, event: Event) -> str:
    return f"{key}:{type(event).__name__}:{_PREFIX}{next(_COUNTER):x}"
