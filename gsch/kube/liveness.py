"""Agent liveness: an agent announces itself on core NATS; the binder declares the cluster of a
silent agent not ready, and ready again when it speaks.

An agent's own inventory publisher declares its cluster not ready when the API server stops
answering, but an agent that dies, or whose NATS link (leaf node) is cut, says nothing. So each
agent publishes a `Heartbeat` every `kube.agent_heartbeat_seconds`, and the binder's agent
backend watches them: after `kube.agent_silence_seconds` without one from any agent of a
cluster (several beats, so one lost beat changes nothing) it declares the cluster not ready,
keeping tier, labels and endpoint as last declared, and the planner's ready filter sends
placements elsewhere. When beats come back saying the agent's cluster is ready, it undoes its
own declaration; a not-ready the agent declared itself (API unreachable) stays the agent's.

A declaration is appended only when the log's current `ClusterDeclared` differs, and only on
condition that it is still the current one, so several binders watching the same agents add
one event per change between them; the losers' conflicts are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client

from gsch.aio import pause
from gsch.eventstore.store import (
    ConflictError,
    EventStore,
    StoredEvent,
    StoreError,
    StoreUnavailableError,
    Write,
)
from gsch.eventstore.subjects import ClusterKey
from gsch.kube.envelope import (
    HCODE_HEARTBEAT,
    HEARTBEATS,
    LCODE_NOTICE,
    Envelope,
    Heartbeat,
    Party,
    decode,
    encode,
    heartbeat_subject,
    payload,
)
from gsch.metrics import AGENT_LAST_HEARTBEAT
from gsch.model.events import ClusterDeclared

log = logging.getLogger(__name__)


async def beat(
    nc: Client, cluster: str, node: str, interval: float, ready: Callable[[], bool | None]
) -> None:
    """Announce this agent every `interval` seconds until cancelled."""
    source, target = Party("cluster", cluster), Party("cluster", "gsch-binder")
    subject = heartbeat_subject(cluster)
    while True:
        heartbeat = Heartbeat(node=node, ready=ready())
        notice = Envelope(source=source, target=target, hcode=HCODE_HEARTBEAT,
                          lcode=LCODE_NOTICE, msg=payload(heartbeat))  # fmt: skip
        try:
            await nc.publish(subject, encode(notice))
        except nats.errors.Error as exc:  # the link is down: silence is the message
            log.warning("heartbeat not sent", extra={"cluster": cluster, "error": str(exc)})
        await pause(interval)


def _silence_key(cluster: str) -> str:
    return f"agent-silence.{cluster}"


def declared_for_silence(stored: StoredEvent) -> bool:
    """Whether this ClusterDeclared is one the liveness watch appended."""
    key = _silence_key(getattr(stored.event, "cluster", ""))
    return (stored.msg_id or "").startswith(f"{key}:")


class AgentLiveness:
    """Watches the heartbeats of the agents of `clusters` and declares their readiness."""

    def __init__(
        self, nc: Client, store: EventStore, clusters: set[str], interval: float, silence: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.nc = nc
        self.store = store
        self.interval = interval
        self.silence = silence
        self.clock = clock
        # Last heard from, and what it said. A binder that just started has heard nobody yet:
        # every agent gets the silence period from now before it counts as gone.
        started = clock()
        self.heard: dict[str, tuple[float, bool | None]] = {c: (started, None) for c in clusters}
        for cluster in clusters:
            AGENT_LAST_HEARTBEAT.labels(member_cluster=cluster).set_to_current_time()
        self._subscription: Any = None
        self._task: asyncio.Task[None] | None = None

    async def _on_beat(self, msg: Any) -> None:
        try:
            envelope = decode(msg.data)
            heartbeat = msgspec.convert(envelope.msg, Heartbeat)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return  # not a heartbeat: it proves nothing about anyone
        cluster = envelope.source.object
        if cluster in self.heard and envelope.hcode == HCODE_HEARTBEAT:
            self.heard[cluster] = (self.clock(), heartbeat.ready)
            AGENT_LAST_HEARTBEAT.labels(member_cluster=cluster).set_to_current_time()

    async def start(self) -> None:
        self._subscription = await self.nc.subscribe(HEARTBEATS, cb=self._on_beat)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()

    async def _run(self) -> None:
        while True:
            await pause(self.interval)
            for cluster in sorted(self.heard):
                try:
                    await self.settle(cluster)
                except (StoreError, StoreUnavailableError, nats.errors.Error) as exc:
                    # The next round tries again: the watch must outlive a log outage.
                    log.warning("agent liveness not checked",
                                extra={"cluster": cluster, "error": str(exc)})  # fmt: skip

    def wanted(self, cluster: str, current: StoredEvent) -> bool | None:
        """The readiness to declare for `cluster`, given its current declaration; None: none."""
        heard_at, says = self.heard[cluster]
        declared = current.event
        assert isinstance(declared, ClusterDeclared)
        if self.clock() - heard_at > self.silence:
            return False if declared.ready else None
        if says is True and not declared.ready and declared_for_silence(current):
            return True
        return None

    async def settle(self, cluster: str) -> bool | None:
        """Declare `cluster`'s readiness if it changed; return what was declared."""
        key = ClusterKey(cluster)
        current = await self.store.last(key.subject("ClusterDeclared"))
        if current is None or not isinstance(current.event, ClusterDeclared):
            return None  # never declared: no tier or labels to keep, nothing to withdraw
        ready = self.wanted(cluster, current)
        if ready is None:
            return None
        event = msgspec.structs.replace(current.event, at=time.time(), ready=ready)
        # Conditional on the declaration it judged; signed, so the watch knows its own.
        write = Write(key, (event,), expect=current.seq, origin=_silence_key(cluster))
        try:
            await self.store.append(write)
        except ConflictError:
            return None  # another binder (or the agent) declared first; judged again next round
        log.warning(
            "agent silent: cluster not ready" if not ready else "agent back: cluster ready",
            extra={"cluster": cluster},
        )
        return ready
