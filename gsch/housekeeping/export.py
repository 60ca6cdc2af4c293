"""The NDJSON export of expired requests, written before their events leave the log.

One file per UTC day (`expired-YYYYMMDD.ndjson`), one line per event:
`{"request_id", "seq", "type", "state", "ended_at", "event"}` where `event` is the event as
the log stored it. Each batch is flushed and fsync'd before the events are purged, so a
crash loses nothing: at worst a request appears twice (exported again on the next pass).
`gsch expired show FILE [ID]` reads it back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from gsch.model.events import AnyEvent


class ExportedEvent(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    seq: int
    type: str
    state: str
    ended_at: float
    event: msgspec.Raw


class ExportedRequest(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    state: str
    ended_at: float
    events: list[tuple[int, str, bytes]]  # (seq, type, event as stored)


_encoder = msgspec.json.Encoder()
_line = msgspec.json.Decoder(ExportedEvent)
_event: msgspec.json.Decoder[Any] = msgspec.json.Decoder(AnyEvent)


def export_path(folder: Path, when: float) -> Path:
    return folder / f"expired-{time.strftime('%Y%m%d', time.gmtime(when))}.ndjson"


def write_export(folder: Path, requests: Sequence[ExportedRequest], when: float) -> Path:
    """Append the requests' events to the day's file and make them durable (blocking: run it
    in a thread)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = export_path(folder, when)
    with path.open("ab") as out:
        for request in requests:
            for seq, kind, body in request.events:
                line = ExportedEvent(
                    request_id=request.request_id, seq=seq, type=kind, state=request.state,
                    ended_at=request.ended_at, event=msgspec.Raw(body),
                )  # fmt: skip
                out.write(_encoder.encode(line) + b"\n")
        out.flush()
        os.fsync(out.fileno())
    return path


class ExportError(ValueError):
    """A line of an export file is not what `write_export` writes (file and line named)."""


def read_export(path: Path, request_id: str | None = None) -> Iterator[ExportedEvent]:
    """The events of an export file, each checked to decode as a gsch event."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                exported = _line.decode(line)
                _event.decode(exported.event)
            except msgspec.DecodeError as exc:
                raise ExportError(f"{path}:{number}: {exc}") from exc
            if request_id is None or exported.request_id == request_id:
                yield exported
