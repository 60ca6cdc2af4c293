"""Cancelling a request: one conditional append, whatever state it had reached.

`RequestCancelled` is conditional on the request's history being what was just read, so it
and any worker's commit or binder's report exclude each other: whichever lands first wins and
the other re-reads. Capacity the request held is released in the same atomic batch, and the
event lists the placements it held so binders remove what they applied. Cancelling a final
request changes nothing and says so. For an id the log does not know yet (still in the
intake) the cancel is recorded (`CancelRecorded`, never listed as a request), unless the caller
asks only for known requests: the request is cancelled on arrival if it was published within
`queue.cancel_before_arrival_seconds`.
"""

from __future__ import annotations

import time

import msgspec

from gsch.eventstore.appends import ConflictError
from gsch.eventstore.store import EventStore
from gsch.model.decisions import cancel
from gsch.model.request import REQUEST_ID_PATTERN
from gsch.model.states import State


class CancelOutcome(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    previous_state: str
    state: str
    cancelled: bool
    message: str
    seq: int = 0  # the RequestCancelled event's stream sequence (0: nothing appended)


class CancelCommand(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a client publishes on `gsch.cancel`."""

    request_id: str
    reason: str = "cancelled by the user"
    # Also for an id the log does not know yet (recorded, applied if it arrives in time).
    before_arrival: bool = True


class InvalidCancel(ValueError):
    """A cancel command that cannot be acted on (the message says which field and why)."""


def decode_cancel(data: bytes) -> CancelCommand:
    try:
        command = msgspec.json.decode(data, type=CancelCommand)
    except msgspec.DecodeError as exc:
        raise InvalidCancel(f"not a cancel command: {exc}") from None
    if not REQUEST_ID_PATTERN.match(command.request_id):
        raise InvalidCancel(f"request_id: {command.request_id[:80]!r} is not a request id")
    if len(command.reason) > 1024:
        raise InvalidCancel("reason: longer than 1024 characters")
    return command


async def cancel_request(
    store: EventStore,
    request_id: str,
    reason: str,
    *,
    before_arrival: bool = True,
    max_conflicts: int = 50,
) -> CancelOutcome:
    """Cancel `request_id` unless it is final; retried while its history keeps moving.
    `before_arrival`: an id the log does not know yet is cancelled in advance (recorded, and
    applied if it arrives within the configured time); else nothing is recorded for it, and
    the outcome says so."""
    for _ in range(max_conflicts):
        state = await store.load_request(request_id)
        if state.state is State.NEW and not before_arrival:
            return CancelOutcome(
                request_id=request_id,
                previous_state=state.state.value,
                state=state.state.value,
                cancelled=False,
                message="no such request (yet): nothing was cancelled",
            )
        change = cancel(state, reason, time.time())
        if change is None:
            return CancelOutcome(
                request_id=request_id,
                previous_state=state.state.value,
                state=state.state.value,
                cancelled=False,
                message=f"already {state.state.value}: nothing to cancel",
            )
        try:
            sequences = await store.append_change(change)
        except ConflictError:
            continue  # a worker or binder moved it meanwhile: read again
        message = (
            "not known yet: recorded, so it is cancelled if it arrives soon"
            if state.state is State.NEW
            else f"cancelled (was {state.state.value})"
        )
        return CancelOutcome(
            request_id=request_id,
            previous_state=state.state.value,
            state=State.CANCELLED.value,
            cancelled=True,
            message=message,
            seq=sequences[0],
        )
    raise ConflictError(f"{request_id}: its history kept changing; cancel again")
