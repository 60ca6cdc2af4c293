"""The request row of the read model: folded from the request's events, and its columns.

The row takes its state and the facts every fold shares (attempts, placements, the last
reason, explanation, backoff, blocked, finished) from `gsch.model.states.step`, the rule the
aggregate folds by too, so the API and `gsch audit` agree by construction. It adds only what
the API shows besides: who asked, how, at which queue level, and when. No I/O.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gsch.model.events import (
    REQUEST_EVENTS,
    AnyEvent,
    Explanation,
    Placement,
    RequestAccepted,
    RequestRejected,
    RequestRequeued,
)
from gsch.model.states import State, step


class RequestRow(msgspec.Struct, kw_only=True):
    id: str
    submitted_seq: int  # the first event of the request: the stable sort key of listings
    state: str = State.NEW.value
    finished: bool = False
    policy: str | None = None
    mode: str | None = None
    form: str | None = None
    level: str | None = None
    blocked: bool = False  # requeued with nothing to hold it: parked until capacity appears
    project: str | None = None
    workspace: str | None = None
    user: str | None = None
    fast: bool = False
    attempts: int = 0
    placements: tuple[Placement, ...] = ()
    reason: str | None = None
    reason_field: str | None = None
    explanation: Explanation | None = None
    not_before: float | None = None
    submitted_at: float | None = None
    updated_at: float = 0.0
    last_seq: int = 0


def apply_request_event(
    row: RequestRow | None, request_id: str, event: AnyEvent, seq: int
) -> RequestRow:
    """Fold one event of `request_id` into its row; an event at or below `last_seq` is a no-op."""
    if row is None:
        row = RequestRow(id=request_id, submitted_seq=seq)
    elif seq <= row.last_seq:
        return row
    if not isinstance(event, REQUEST_EVENTS):
        return row  # a cluster event on a request subject is not part of its history
    change = step(State(row.state), event)
    if change is not None:
        row.state = change.state.value
        row.blocked = change.blocked
        if change.attempt is not None:
            row.attempts = change.attempt
        if change.placements is not None:
            row.placements = change.placements
        if change.reason is not None:
            row.reason, row.reason_field = change.reason, change.reason_field
        if change.explanation is not None:
            row.explanation = change.explanation
        if change.not_before is not None:
            row.not_before = change.not_before
        row.finished = row.finished or change.finished
        _apply_own_columns(row, event)
    row.updated_at = event.at
    row.last_seq = seq
    return row


def _apply_own_columns(row: RequestRow, event: AnyEvent) -> None:
    """The columns only the API shows: who asked, how, at which level, and when."""
    match event:
        case RequestAccepted():
            request = event.request
            row.policy, row.mode, row.form = request.policy.value, request.mode, request.form
            row.level = event.level.value
            row.project, row.workspace = request.project_name, request.workspace_name
            row.user, row.fast = request.user_name, request.fast
            row.submitted_at = event.at
        case RequestRejected():
            if event.form is not None:
                row.form = event.form
            if row.submitted_at is None:
                row.submitted_at = event.at
        case RequestRequeued():
            row.level = event.level.value  # First after K* failures; the fast flag survives
        case _:
            pass


# --- columns of the requests table ------------------------------------------------------

COLUMNS = (
    "id", "submitted_seq", "state", "finished", "policy", "mode", "form", "level", "blocked",
    "project_name", "workspace_name", "user_name", "fast", "attempts", "placements", "reason",
    "reason_field", "explanation", "not_before", "submitted_at", "updated_at", "last_seq",
)  # fmt: skip


_encoder = msgspec.json.Encoder()
_placements = msgspec.json.Decoder(tuple[Placement, ...])
_explanation = msgspec.json.Decoder(Explanation)


def _json(value: object) -> str:
    return _encoder.encode(value).decode()


def to_params(row: RequestRow) -> tuple[Any, ...]:
    """The values of `COLUMNS` for one row."""
    return (
        row.id, row.submitted_seq, row.state, row.finished, row.policy, row.mode, row.form,
        row.level, row.blocked, row.project, row.workspace, row.user, row.fast, row.attempts,
        _json(row.placements), row.reason, row.reason_field,
        _json(row.explanation) if row.explanation is not None else None,
        row.not_before, row.submitted_at, row.updated_at, row.last_seq,
    )  # fmt: skip


def from_record(record: Any) -> RequestRow:
    """A row from the values of `COLUMNS` as SQLite returns them."""
    (
        request_id, submitted_seq, state, finished, policy, mode, form, level, blocked, project,
        workspace, user, fast, attempts, placements, reason, reason_field, explanation,
        not_before, submitted_at, updated_at, last_seq,
    ) = record  # fmt: skip
    return RequestRow(
        id=request_id,
        submitted_seq=submitted_seq,
        state=state,
        finished=bool(finished),
        policy=policy,
        mode=mode,
        form=form,
        level=level,
        blocked=bool(blocked),
        project=project,
        workspace=workspace,
        user=user,
        fast=bool(fast),
        attempts=attempts,
        placements=_placements.decode(placements),
        reason=reason,
        reason_field=reason_field,
        explanation=_explanation.decode(explanation) if explanation is not None else None,
        not_before=not_before,
        submitted_at=submitted_at,
        updated_at=updated_at,
        last_seq=last_seq,
    )
