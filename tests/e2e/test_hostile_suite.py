"""A hostile-input suite against real worker processes: over a thousand generated messages
(garbage, huge fields, deep nesting, many levels, odd unicode, impossible demands, ids reused
with other bodies, cancels of unknown ids) from a seeded generator, so every run sends the
same ones. Every message ends rejected with a reason, refused as a conflict, failed with a
reason, or placed on one of its clusters; no worker hangs or crashes; `gsch audit` is clean;
SIGTERM ends every worker within its lease."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from gsch.audit import AuditReport, audit
from gsch.client import publish_request
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import CANCEL_SUBJECT
from gsch.model.events import RequestIdConflict
from gsch.model.states import State
from gsch.runtime.embedded import EmbeddedNats
from tests.support.fleet import Fleet
from tests.support.pipeline import generated_levels, pod_request, wait_inventory

pytestmark = pytest.mark.slow

LEASE = 10.0
CLUSTERS = 20  # the generated topology "20x5": tiers cloud, edge, near-edge


@dataclass(frozen=True)
class Message:
    kind: str  # what the generator meant it to be
    expect: str  # "bound", "failed", "rejected", "conflict"
    body: bytes
    request_id: str | None  # sent as the de-duplication id (None: gsch mints one)
    levels: tuple[str, ...] = ()  # the clusters a placed request may land on


def _names(levels: list[Any]) -> tuple[str, ...]:
    return tuple(n for level in levels for n in ([level] if isinstance(level, str) else level))


def _with(body: bytes, **fields: Any) -> bytes:
    decoded = msgspec.json.decode(body)
    decoded.update(fields)
    return msgspec.json.encode(decoded)


class Generator:
    """Seeded: the same run of messages every time."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.valid: list[Message] = []

    def valid_request(self, index: int) -> Message:
        request_id = f"ok-{index:05d}"
        levels = generated_levels(index, CLUSTERS)
        message = Message("valid", "bound", pod_request(request_id, levels, cpu="50m"),
                          request_id, _names(levels))  # fmt: skip
        self.valid.append(message)
        return message

    def garbage(self, index: int) -> Message:
        rng = self.rng
        body = rng.choice([
            bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))),
            b"[1, 2, 3]", b"42", b'"just a string"', b"null", b"{", b"{}",
            b'{"policy": 5, "workload": []}', b'{"select_clusters": {"a": 1}}',
            "{\"policy\": \"GMostRequestedPriority\", \"workload\": \"\u202e\"}".encode(),
        ])  # fmt: skip
        return Message("garbage", "rejected", body, None)

    def huge_field(self, index: int) -> Message:
        request_id = f"huge-{index:05d}"
        base = pod_request(request_id, generated_levels(index, CLUSTERS))
        field = self.rng.choice(["user_name", "project_name", "namespace", "policy", "mode"])
        body = _with(base, **{field: "v" * self.rng.randint(70_000, 200_000)})
        if self.rng.random() < 0.3:  # an unknown field whose name is the huge part
            body = _with(base, **{"k" * 100_000: 1})
        return Message("huge field", "rejected", body, request_id)

    def deep(self, index: int) -> Message:
        request_id = f"deep-{index:05d}"
        depth = self.rng.choice([70, 500, 5000, 50_000])
        nested = b"[" * depth + b"]" * depth
        body = pod_request(request_id, ["edge-00003"]).replace(
            b'"spec":{', b'"nested":' + nested + b',"spec":{', 1
        )
        return Message("deep nesting", "rejected", body, request_id)

    def many_levels(self, index: int) -> Message:
        request_id = f"levels-{index:05d}"
        count = self.rng.choice([17, 300, 5000])
        levels: list[Any] = [f"unknown-{i:05d}" for i in range(count)]
        if self.rng.random() < 0.5:
            text = "[" + ",".join(levels) + "]"
            return Message("many levels", "rejected", pod_request(request_id, []).replace(
                b'"select_clusters":[]', b'"select_clusters":' + msgspec.json.encode(text)),
                request_id)  # fmt: skip
        return Message("many levels", "rejected", pod_request(request_id, levels), request_id)

    def odd_unicode(self, index: int) -> Message:
        rng = self.rng
        choice = rng.randrange(4)
        base = pod_request(f"uni-{index:05d}", generated_levels(index, CLUSTERS))
        if choice == 0:  # an id that is no subject token: rejected under a minted id
            return Message("odd id", "rejected", _with(base, request_id="réq-\u0000-🙂"), None)
        if choice == 1:
            user = rng.choice(["\u202eadmin", "a\x1b[2J", "zero\u200bwidth"])
            return Message("odd name", "rejected", _with(base, user_name=user), f"uni-{index:05d}")
        if choice == 2:
            levels = [["clüster-ä", "edge-00003"]]
            body = _with(base, select_clusters=levels)
            return Message("odd cluster", "rejected", body, f"uni-{index:05d}")
        body = _with(base, user_name="ユーザー-名前-über")  # printable: fine
        levels = generated_levels(index, CLUSTERS)
        return Message("unicode name", "bound", body, f"uni-{index:05d}", _names(levels))

    def impossible(self, index: int) -> Message:
        request_id = f"never-{index:05d}"
        levels = generated_levels(index, CLUSTERS)
        cpu = self.rng.choice(["1000000", "100000"])
        return Message("impossible", "failed", pod_request(request_id, levels, cpu=cpu),
                       request_id)  # fmt: skip

    def reused_id(self, index: int) -> Message:
        original = self.rng.choice(self.valid)
        assert original.request_id is not None
        body = pod_request(original.request_id, ["cloud-00000"], cpu=f"{index % 90 + 10}m")
        return Message("reused id", "conflict", body, original.request_id, ("cloud-00000",))


async def _publish(url: str, messages: list[Message], ghosts: list[str]) -> dict[int, Message]:
    """Publish everything; the intake sequence of each message (a repeated identical body is
    one message: its sequence is the first one's)."""
    nc = await nats.connect(url)
    by_seq: dict[int, Message] = {}
    try:
        js = nc.jetstream()
        for index, message in enumerate(messages):
            seq = await publish_request(nc, message.body, message.request_id)
            by_seq.setdefault(seq, message)
            if index % 40 == 0 and ghosts:
                await js.publish(CANCEL_SUBJECT, msgspec.json.encode({"request_id": ghosts.pop()}))
    finally:
        await nc.close()
    return by_seq


def _messages(gen: Generator, total: int) -> list[Message]:
    kinds: list[tuple[Callable[[int], Message], int]] = [
        (gen.valid_request, 40), (gen.garbage, 15), (gen.huge_field, 6), (gen.deep, 6),
        (gen.many_levels, 6), (gen.odd_unicode, 10), (gen.impossible, 5), (gen.reused_id, 6),
    ]  # fmt: skip
    makers = [maker for maker, weight in kinds for _ in range(weight)]
    messages = [gen.valid_request(i) for i in range(20)]  # reused ids need some first
    while len(messages) < total:
        index = len(messages)
        messages.append(gen.rng.choice(makers)(index))
        if index % 50 == 0:  # the same request again: idempotent, one intake message
            messages.append(gen.rng.choice(gen.valid))
    return messages


async def _conflicts(store: EventStore) -> dict[int, RequestIdConflict]:
    found: dict[int, RequestIdConflict] = {}
    for stored in await store.read("gsch.events.conflict.>"):
        if isinstance(stored.event, RequestIdConflict):
            found[stored.event.intake_seq] = stored.event
    return found


async def _wait_for_every_verdict(
    store: EventStore, by_seq: dict[int, Message], timeout: float
) -> tuple[AuditReport, dict[int, RequestIdConflict]]:
    deadline = time.monotonic() + timeout
    while True:
        report = await audit(store)
        conflicts = await _conflicts(store)
        decided = {s.intake_seq for s in report.requests.values()} | set(conflicts)
        if (set(by_seq) <= decided and not report.unsettled) or time.monotonic() > deadline:
            return report, conflicts
        await asyncio.sleep(1.0)


async def test_a_thousand_hostile_messages_each_end_with_a_reason_and_nothing_hangs(
    tmp_path: Path, nats_server: EmbeddedNats, store: EventStore
) -> None:
    fleet = Fleet(tmp_path, nats_server.url, {"GSCH_QUEUE__LEASE_SECONDS": str(LEASE)})
    await fleet.start_binder(f"{CLUSTERS}x5")
    workers = [await fleet.start_worker() for _ in range(2)]
    await wait_inventory(store, CLUSTERS * 5)
    gen = Generator(seed=11)
    messages = _messages(gen, 1200)
    ghosts = [f"ghost-{i:04d}" for i in range(30)]
    try:
        by_seq = await _publish(nats_server.url, messages, list(ghosts))
        assert len(by_seq) >= 1000
        report, conflicts = await _wait_for_every_verdict(store, by_seq, timeout=150)
        assert all(w.process and w.process.returncode is None for w in workers), fleet.logs()
        states = {s.intake_seq: s for s in report.requests.values()}
        outcomes: Counter[str] = Counter()
        winners: Counter[str] = Counter()  # per request id, the messages that became it
        for seq, message in by_seq.items():
            what = f"{message.kind} at intake seq {seq}"
            conflict = conflicts.get(seq)
            if conflict is not None:
                # An id two bodies claimed: whichever a worker took first is the request
                # (bound), the other is refused and leaves it untouched.
                assert message.kind in ("valid", "reused id"), what
                assert states[conflict.original_intake_seq].state is State.BOUND, what
                outcomes["conflict"] += 1
                continue
            state = states.get(seq)
            assert state is not None, f"{what}: no verdict\n{fleet.logs()}"
            expect = "bound" if message.expect == "conflict" else message.expect
            assert state.state.value == expect, (what, state.state, state.reasons)
            winners[state.request_id] += 1
            if state.state is State.BOUND:
                assert {p.cluster for p in state.placements} <= set(message.levels), what
            else:
                assert state.reasons, what
                assert state.reasons[-1], what  # a reason a person can read
                assert len(state.reasons[-1]) < 4096, what
            if state.state is State.FAILED:
                assert "even when empty" in state.reasons[-1], what
            outcomes[state.state.value] += 1
        assert max(winners.values()) == 1  # one request per id, however many bodies claimed it
        assert outcomes["conflict"] >= 30, outcomes
        print(dict(outcomes), f"{len(by_seq)} intake messages")
        assert not any(g in report.requests for g in ghosts)  # cancels of unknown ids
        assert report.ok, report.summary()
        assert outcomes["rejected"] > 300, outcomes
        assert outcomes["bound"] > 300, outcomes
        assert outcomes["failed"] >= 20, outcomes
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gsch", "audit", "--nats", nats_server.url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, out.decode()
        # SIGTERM: every worker ends, by itself, within its lease.
        for worker in workers:
            process = worker.process
            assert process is not None
            started = time.monotonic()
            await worker.stop(grace=LEASE)  # SIGKILL after the grace: a non-zero code
            assert time.monotonic() - started < LEASE
            assert process.returncode == 0, fleet.logs()
    finally:
        await fleet.stop()
