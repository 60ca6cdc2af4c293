"""`gsch agent --cluster NAME`: serves one member cluster from inside it, over NATS only.

It publishes the cluster's inventory and its latency measurements to the event log, answers
binding and removal requests addressed to it (`gsch.agent.<cluster>.bind|remove`, gsch's
envelope, see `envelope.py`), and announces itself (`.heartbeat`, see `liveness.py`).
Everything goes through one NATS connection, so an edge site behind a NATS leaf node works
although the centre cannot reach its API server. Several agents of one cluster share the
work through a queue group.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import nats.errors

from gsch.eventstore.store import EventStore, StoredEvent
from gsch.eventstore.subjects import cluster_events_of_type, token
from gsch.kube.applier import ApplyError
from gsch.kube.envelope import (
    HCODE_BIND,
    HCODE_ERROR,
    HCODE_REMOVE,
    LCODE_REQUEST,
    SUBJECT_OF,
    BindOrder,
    Envelope,
    Outcome,
    Party,
    agent_subject,
    decode,
    encode,
    reply,
)
from gsch.kube.liveness import beat
from gsch.kube.member import MemberCluster, running_member
from gsch.kube.probe import Address, LatencyProbe, Targets
from gsch.model.events import ClusterDeclared
from gsch.runtime.config import Config, MemberConfig

log = logging.getLogger(__name__)


class AgentResponder:
    """Answers the envelopes addressed to one cluster by applying through its member."""

    def __init__(self, member: MemberCluster) -> None:
        self.member = member
        self.me = Party("cluster", member.name)

    async def answer(self, data: bytes) -> Envelope:
        try:
            envelope = decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            unknown = Party("none", "")
            return Envelope(source=self.me, target=unknown, hcode=HCODE_ERROR, lcode=2,
                            msg=_error(f"not an envelope: {exc}"))  # fmt: skip
        problem = None
        if envelope.target != self.me:
            problem = f"addressed to {envelope.target.object}, this is {self.me.object}"
        elif envelope.lcode != LCODE_REQUEST or envelope.hcode not in (HCODE_BIND, HCODE_REMOVE):
            problem = f"unknown hcode {envelope.hcode} / lcode {envelope.lcode}"
        if problem is not None:
            return reply(envelope, Outcome(status="error", error_msg=problem), HCODE_ERROR)
        try:
            order = msgspec.convert(envelope.msg, BindOrder)
        except msgspec.ValidationError as exc:
            outcome = Outcome(status="error", error_msg=f"msg: {exc}")
            return reply(envelope, outcome, HCODE_ERROR)
        return reply(envelope, await self._carry_out(envelope.hcode, order))

    async def _carry_out(self, hcode: int, order: BindOrder) -> Outcome:
        try:
            if hcode == HCODE_BIND:
                node = order.placements[0].node if order.placements else ""
                await self.member.apply(order.request_id, order.request, node)
            else:
                await self.member.remove(order.request_id, order.request)
        except ApplyError as exc:
            return Outcome(request_id=order.request_id, status="fail", error_msg=str(exc))
        return Outcome(request_id=order.request_id, status="success")


def _error(message: str) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(Outcome(status="error", error_msg=message))
    return result


class Endpoints:
    """Every cluster's API endpoint, as the log declares them (the probe's cluster targets).

    Read with direct gets, from where the last read stopped, before each probe round: an
    agent may not create consumers on the log (a push consumer's deliveries could be aimed
    at any subject), and endpoints change rarely."""

    def __init__(self, store: EventStore) -> None:
        self.known: dict[str, Address] = {}
        self._store = store
        self._seq = 0

    async def refresh(self) -> None:
        scope = cluster_events_of_type("ClusterDeclared")
        for stored in await self._store.read(scope, after=self._seq):
            self._apply(stored)
            self._seq = stored.seq

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.refresh()
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("cluster endpoints not refreshed", extra={"error": repr(exc)})
            await asyncio.sleep(interval)

    def _apply(self, stored: StoredEvent) -> None:
        event = stored.event
        if isinstance(event, ClusterDeclared) and event.endpoint:
            host, _, port = event.endpoint.rpartition(":")
            if host and port.isdigit():
                self.known[event.cluster] = (host, int(port))


def probe_targets(member: MemberCluster, endpoints: Endpoints, node_port: int) -> Targets:
    return Targets(clusters=dict(endpoints.known), nodes=member.node_addresses(node_port))


async def serve_agent(
    config: Config, nc: Any, store: EventStore, cluster: str, node: str | None,
    stop: asyncio.Event,
) -> None:  # fmt: skip
    """Run the agent of `cluster` on an open NATS connection until `stop` is set."""
    settings = config.kube.clusters.get(cluster) or MemberConfig(mode="agent")
    tasks: list[asyncio.Task[None]] = []
    async with running_member(cluster, settings, config, store) as member:
        responder = AgentResponder(member)
        running: set[asyncio.Task[None]] = set()

        async def on_message(msg: Any) -> None:
            async def handle() -> None:
                answer = await responder.answer(msg.data)
                await msg.respond(encode(answer))

            task = asyncio.create_task(handle())
            running.add(task)
            task.add_done_callback(running.discard)

        subscriptions = [
            await nc.subscribe(
                agent_subject(cluster, hcode), queue=f"gsch-agent-{token(cluster)}", cb=on_message
            )
            for hcode in SUBJECT_OF
        ]
        interval = config.kube.agent_heartbeat_seconds
        tasks.append(
            asyncio.create_task(beat(nc, cluster, node or "", interval, member.publisher.judgement))
        )
        endpoints = Endpoints(store)
        probe_settings = config.kube.probe
        if probe_settings.enabled and node:
            await endpoints.refresh()
            tasks.append(asyncio.create_task(endpoints.run(probe_settings.interval)))
            probe = LatencyProbe(
                store, cluster, node, probe_settings,
                lambda: probe_targets(member, endpoints, probe_settings.node_port),
            )  # fmt: skip
            tasks.append(asyncio.create_task(probe.run()))
        log.info("agent serving", extra={"cluster": cluster, "node": node})
        try:
            await stop.wait()
        finally:
            for subscription in subscriptions:
                await subscription.unsubscribe()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, *running, return_exceptions=True)
