"""Where a delivered JetStream message sits in its stream, read from its reply subject.

Every message a consumer delivers carries its position in the reply subject it is acknowledged
on: `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>`, or
with a domain and account hash after `ACK` (and a random token at the end) on newer servers.
nats-py's `msg.metadata` reads the same tokens but builds a datetime and two dataclasses for
every message; every follower of the log (each worker's snapshot, the projector, the planners)
reads a position per event, so this reads only the numbers it needs.
"""

from __future__ import annotations

from typing import NamedTuple

_V1_TOKENS = 9  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>
_V2_TOKENS = 11  # ... with <domain>.<account hash> after ACK (and maybe a trailing token)


class Position(NamedTuple):
    seq: int  # the stream sequence
    deliveries: int  # how many times this message was delivered, this time included
    stored_at: float  # when the server stored it, seconds since the epoch (its clock)
    pending: int  # messages the consumer had still to deliver after this one


class NotJetStreamError(ValueError):
    """A message that did not come from a JetStream consumer."""


def position_of(reply: str | None) -> Position:
    """The position a consumer's reply subject tells; NotJetStreamError for any other."""
    tokens = reply.split(".") if reply else []
    count = len(tokens)
    if count < _V1_TOKENS or tokens[0] != "$JS" or tokens[1] != "ACK":
        raise NotJetStreamError(f"not a JetStream delivery: reply {reply!r}")
    first = 4 if count == _V1_TOKENS else 6 if count >= _V2_TOKENS else -1
    if first < 0:
        raise NotJetStreamError(f"not a JetStream delivery: reply {reply!r}")
    try:
        delivered, seq, _, stamp, pending = (int(token) for token in tokens[first : first + 5])
    except ValueError:
        raise NotJetStreamError(f"not a JetStream delivery: reply {reply!r}") from None
    return Position(seq, delivered, stamp / 1e9, pending)
