"""A planner process: the dry run (`DryRun`) on a cluster snapshot of its own, serving plans to
the API process that started it over its stdin and stdout.

Planning is CPU work. On the API's event loop it stalls every read for as long as it runs,
and in a thread it would race the snapshot the loop folds events into (and hold the GIL the
loop needs). Here the snapshot is folded and read on one loop, in another process, at a
lower CPU priority: reads stay fast while plans flood, and the API bounds how many wait.

Frames, both ways: a 4-byte big-endian length, then a msgpack message. The API sends `Start`
once, then `Job`s one at a time; the process answers `Ready` once its snapshot has caught up
with the log, `Done` per job, and `Progress` when its snapshot has moved on.

Run as `python -m gsch.scheduler.planner_process` by `gsch.api.planners`, never by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from typing import BinaryIO

import msgspec

from gsch.bus.roles import Role
from gsch.clusters.feed import SnapshotFeed
from gsch.eventstore.snapshots import SnapshotStore
from gsch.eventstore.store import EventStore
from gsch.logs import setup_logging
from gsch.model.intake import Rejection
from gsch.runtime.config import Config
from gsch.runtime.connection import connect
from gsch.runtime.tenancy import TenancyFeed
from gsch.scheduler.dryrun import DryRun
from gsch.scheduler.rules import intake_rules, planner_rules

log = logging.getLogger(__name__)

HEADER_BYTES = 4
MAX_FRAME = 64 * 1024 * 1024  # an explanation of a huge fleet is large, but not this large
PROGRESS_INTERVAL = 1.0


class Start(msgspec.Struct, frozen=True, tag=True):
    config: bytes  # the API's Config as JSON: the same rules, the same NATS credentials
    url: str
    name: str


class Job(msgspec.Struct, frozen=True, tag=True):
    job: int
    body: bytes


class Ready(msgspec.Struct, frozen=True, tag=True):
    sequence: int  # the last cluster event the snapshot has folded


class Progress(msgspec.Struct, frozen=True, tag=True):
    sequence: int


class Done(msgspec.Struct, frozen=True, tag=True):
    job: int
    sequence: int
    answer: bytes = b""  # the PlanAnswer as JSON, when the request was admitted
    field: str = ""  # why it would be rejected, otherwise
    problem: str = ""

    @property
    def rejected(self) -> bool:
        return bool(self.field)


ToPlanner = Start | Job
FromPlanner = Ready | Progress | Done

_encoder = msgspec.msgpack.Encoder()
_to_planner = msgspec.msgpack.Decoder(ToPlanner)
_from_planner = msgspec.msgpack.Decoder(FromPlanner)
_json = msgspec.json.Encoder()


class FrameError(Exception):
    """The other side sent something that is not a frame of this protocol."""


def frame(message: ToPlanner | FromPlanner) -> bytes:
    payload = _encoder.encode(message)
    return len(payload).to_bytes(HEADER_BYTES, "big") + payload


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame's payload; None at the end of the stream."""
    try:
        header = await reader.readexactly(HEADER_BYTES)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("the stream ended inside a frame header") from None
        return None
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME:
        raise FrameError(f"a frame of {size} bytes is over the limit of {MAX_FRAME}")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise FrameError("the stream ended inside a frame") from None


def decode_from_planner(payload: bytes) -> FromPlanner:
    return _from_planner.decode(payload)


def plan_one(dry_run: DryRun, job: Job) -> Done:
    answer = dry_run.plan(job.body)
    if isinstance(answer, Rejection):
        return Done(job.job, dry_run.snapshot.last_seq, field=answer.field, problem=answer.problem)
    return Done(job.job, answer.sequence, answer=_json.encode(answer))


async def _pipes(out: BinaryIO) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out)
    return reader, asyncio.StreamWriter(transport, protocol, None, loop)


async def _report_progress(feed: SnapshotFeed, writer: asyncio.StreamWriter) -> None:
    reported = feed.snapshot.last_seq
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL)
        if feed.snapshot.last_seq != reported:
            reported = feed.snapshot.last_seq
            writer.write(frame(Progress(reported)))


async def serve(out: BinaryIO) -> None:
    reader, writer = await _pipes(out)
    first = await read_frame(reader)
    if first is None:
        return  # the API went away before it said anything
    start = _to_planner.decode(first)
    if not isinstance(start, Start):
        raise FrameError("the first frame must be Start")
    config = msgspec.json.decode(start.config, type=Config)
    setup_logging(config.log_level)
    dry_run_rules = intake_rules(config), planner_rules(config)
    # Its own pid ends the connection's name, as every gsch process's does (see bench_traffic).
    nc = await connect(config, start.url, f"{start.name}-{os.getpid()}", role=Role.API)
    store = EventStore(nc, request_timeout=config.nats.request_timeout)
    # From the newest stored snapshot, as workers start: on a compacted log the cluster
    # events behind it are gone.
    snapshots = SnapshotStore(nc, keep=config.snapshots.keep, timeout=config.snapshots.load_timeout)
    feed = SnapshotFeed(store, snapshots)
    tenancy = TenancyFeed(store)  # projects and workspaces declared as data, as workers see them
    progress: asyncio.Task[None] | None = None
    try:
        snapshot = await feed.start()
        await tenancy.start()
        dry_run = DryRun(snapshot, *dry_run_rules)
        tenancy.listen(
            lambda declared: dry_run.use_rules(planner_rules(config, declared), declared)
        )
        writer.write(frame(Ready(snapshot.last_seq)))
        progress = asyncio.create_task(_report_progress(feed, writer))
        while (payload := await read_frame(reader)) is not None:
            job = _to_planner.decode(payload)
            if not isinstance(job, Job):
                raise FrameError("after Start, only Job frames")
            # Synchronous: the snapshot cannot move while it is planned on.
            writer.write(frame(plan_one(dry_run, job)))
            await writer.drain()
    finally:
        if progress is not None:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
        await tenancy.stop()
        await feed.stop()
        await store.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.close(), 5)


def main() -> None:
    # Frames own the real stdout; anything else printed goes to stderr, with the logs.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    asyncio.run(serve(out))


if __name__ == "__main__":
    main()
