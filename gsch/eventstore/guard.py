"""A process never silently starts over on an empty or shorter log.

Streams are created once, by `gsch streams apply` (or the first start of the embedded server).
A process that finds the event log missing, or behind a sequence it has already seen (its
read model's checkpoint, its snapshot), or replaced by another stream of the same name,
stops with an error that says so, instead of re-creating an empty log and wiping what it
derived. `check_declared` is the start-up check of a process that may not declare streams;
`LogGuard` keeps watching while the process runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
from collections.abc import Callable
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from gsch.eventstore.streams import Declarations, StreamMissingError, StreamsError
from gsch.eventstore.subjects import EVENTS_STREAM

log = logging.getLogger(__name__)

GUARD_INTERVAL = 2.0


class LogBehindError(Exception):
    """The event log ends before a sequence this process already derived state from."""

    def __init__(self, what: str, seen: int, last: int) -> None:
        super().__init__(
            f"the event log {EVENTS_STREAM} ends at sequence {last}, but {what} has already "
            f"seen sequence {seen}: the log was deleted and re-created, or replaced. Stopping "
            "rather than deriving state from another history. If the log was replaced on "
            "purpose, rebuild what was derived (`gsch projections rebuild`)"
        )
        self.seen = seen
        self.last = last


class LogReplacedError(Exception):
    """The event log was deleted and created again while this process was reading it."""

    def __init__(self, before: datetime.datetime, now: datetime.datetime) -> None:
        super().__init__(
            f"the event log {EVENTS_STREAM} was replaced while this process ran (created "
            f"{before.isoformat()}, now {now.isoformat()}): stopping rather than mixing two "
            "histories"
        )


async def stream_state(nc: Client, stream: str = EVENTS_STREAM) -> Any:
    """The stream's info; StreamMissingError when it does not exist."""
    try:
        return await nc.jetstream().stream_info(stream)
    except nats.js.errors.NotFoundError:
        raise StreamMissingError(stream) from None


async def check_declared(nc: Client, declarations: Declarations) -> Declarations:
    """Check, read-only, that every declared stream and consumer exists; returns the
    declarations with the lease the server's consumers actually have (their ack wait),
    which is what this process must renew within."""
    js = nc.jetstream()
    for config in declarations.streams:
        await stream_state(nc, config["name"])
    waits = set()
    for declaration in declarations.consumers:
        stream, durable = declaration["stream_name"], declaration["config"]["durable_name"]
        try:
            info = await js.consumer_info(stream, durable)
        except nats.js.errors.NotFoundError:
            raise StreamsError(
                f"consumer {stream}/{durable} does not exist: declare it with "
                "`gsch streams apply` (admin credentials)"
            ) from None
        if info.config.ack_wait:
            waits.add(float(info.config.ack_wait))
    lease = min(waits) if waits else declarations.lease_seconds
    if abs(lease - declarations.lease_seconds) > 1e-3:
        log.warning(
            "the consumers' lease on the server differs from queue.lease_seconds; "
            "using the server's (change it with `gsch streams apply`)",
            extra={"server": lease, "configured": declarations.lease_seconds},
        )
    return dataclasses.replace(declarations, lease_seconds=lease)


class LogGuard:
    """Watches the event log under a running process: it must exist, stay the stream it
    was at start, and never end before what `seen()` reports this process has derived."""

    def __init__(self, nc: Client, seen: Callable[[], int], what: str) -> None:
        self._nc = nc
        self._seen = seen
        self._what = what
        self._created: datetime.datetime | None = None

    async def check(self) -> None:
        # What was derived is read first: the log only grows while the answer is on its way,
        # so a sequence derived meanwhile is no sign of a shorter log.
        seen = self._seen()
        info = await stream_state(self._nc)
        created = info.created
        if isinstance(created, datetime.datetime):
            if self._created is None:
                self._created = created
            elif created != self._created:
                raise LogReplacedError(self._created, created)
        last = int(info.state.last_seq)
        if seen > last:
            raise LogBehindError(self._what, seen, last)

    async def run(self, stop: asyncio.Event, interval: float = GUARD_INTERVAL) -> None:
        """Check until `stop`; returns by raising when the log is gone, replaced or behind."""
        doubted = False
        while not stop.is_set():
            try:
                await self.check()
                doubted = False
            except (StreamMissingError, LogBehindError):
                if doubted:
                    raise
                # Seen twice in a row before believed: a cluster electing a leader may say
                # "not found" for a moment, and a false alarm would stop a healthy process.
                doubted = True
            except (nats.errors.Error, TimeoutError) as exc:
                # An outage is not a missing log: the connection reconnects, check again.
                log.debug("log guard check failed", extra={"error": repr(exc)})
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                continue
