"""What retention reads from the read model: requests that ended long enough ago, their
events (for the export), and the ids it removed (the API's 410)."""

from __future__ import annotations

import aiosqlite
import msgspec

from gsch.model.states import State

FINAL = (State.FAILED.value, State.CANCELLED.value, State.REJECTED.value)


class Ended(msgspec.Struct, frozen=True, kw_only=True):
    """A request that will not change any more: final, or bound with its workload finished."""

    request_id: str
    state: str
    ended_at: float


class Expired(msgspec.Struct, frozen=True, kw_only=True):
    """An id retention removed: what it ended as, and when."""

    request_id: str
    state: str
    ended_at: float
    expired_at: float


_ENDED = f"""
    SELECT id, state, updated_at FROM requests
    WHERE (state IN ({", ".join("?" for _ in FINAL)}) OR finished = 1) AND updated_at < ?
    ORDER BY updated_at LIMIT ?"""


async def ended_before(db: aiosqlite.Connection, cutoff: float, limit: int) -> list[Ended]:
    """Requests that ended before `cutoff` (unix seconds), oldest first, at most `limit`."""
    records = await db.execute_fetchall(_ENDED, (*FINAL, cutoff, limit))
    return [Ended(request_id=i, state=s, ended_at=at) for i, s, at in records]


async def event_seqs(
    db: aiosqlite.Connection, request_ids: list[str]
) -> dict[str, dict[str, list[int]]]:
    """The sequences of each request's events in the log, by event type (each type is a
    subject retention purges), ascending."""
    found: dict[str, dict[str, list[int]]] = {request_id: {} for request_id in request_ids}
    for start in range(0, len(request_ids), 500):
        chunk = request_ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        records = await db.execute_fetchall(
            f"SELECT request_id, type, seq FROM request_events WHERE request_id IN ({marks})"
            " ORDER BY seq",
            chunk,
        )
        for request_id, kind, seq in records:
            found[str(request_id)].setdefault(str(kind), []).append(int(seq))
    return found


async def events_of(db: aiosqlite.Connection, request_id: str) -> list[tuple[int, str, bytes]]:
    """A request's events as stored: (sequence, type, encoded event), in log order."""
    records = await db.execute_fetchall(
        "SELECT seq, type, body FROM request_events WHERE request_id = ? ORDER BY seq",
        (request_id,),
    )
    return [(int(seq), str(kind), bytes(body)) for seq, kind, body in records]


async def expired(db: aiosqlite.Connection, request_id: str) -> Expired | None:
    records = await db.execute_fetchall(
        "SELECT state, ended_at, expired_at FROM expired_requests WHERE id = ?", (request_id,)
    )
    for state, ended_at, expired_at in records:
        return Expired(request_id=request_id, state=state, ended_at=ended_at, expired_at=expired_at)
    return None
