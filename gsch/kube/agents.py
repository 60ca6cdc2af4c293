"""The binder backend for clusters served by agents (`mode = "agent"`): each binding and
removal is a NATS request to the cluster's agent; no answer within `agent_timeout` is a
failed binding, which the queue retries (elsewhere). While it runs, it watches the agents'
heartbeats (`liveness.py`), so a silent agent's cluster is declared not ready."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import msgspec
import nats.errors
from nats.aio.client import Client

from gsch.clusters.binder import Binding, BindingRefused
from gsch.eventstore.store import EventStore
from gsch.kube.central import require_request
from gsch.kube.envelope import (
    HCODE_BIND,
    HCODE_REMOVE,
    LCODE_REQUEST,
    BindOrder,
    Envelope,
    Outcome,
    Party,
    agent_subject,
    decode,
    encode,
    payload,
)
from gsch.kube.liveness import AgentLiveness
from gsch.runtime.config import Config


class AgentBackend:
    needs_request = True

    def __init__(self, nc: Client, config: Config, source: str = "gsch-binder") -> None:
        self.nc = nc
        self.timeout = config.kube.agent_timeout
        self.source = source
        self.clusters = {n for n, c in config.kube.clusters.items() if c.mode == "agent"}

    def serves(self, cluster: str) -> bool:
        return cluster in self.clusters

    async def _ask(self, binding: Binding, hcode: int) -> Outcome:
        order = BindOrder(
            request_id=binding.request_id, attempt=binding.attempt,
            placements=binding.placements, request=require_request(binding),
        )  # fmt: skip
        envelope = Envelope(
            source=Party("cluster", self.source), target=Party("cluster", binding.cluster),
            hcode=hcode, lcode=LCODE_REQUEST, msg=payload(order),
        )  # fmt: skip
        subject = agent_subject(binding.cluster, hcode)
        try:
            answer = await self.nc.request(subject, encode(envelope), timeout=self.timeout)
        except nats.errors.NoRespondersError as exc:
            raise BindingRefused(f"no agent of {binding.cluster} is connected") from exc
        except (TimeoutError, nats.errors.Error) as exc:
            raise BindingRefused(
                f"the agent of {binding.cluster} did not answer within {self.timeout}s"
            ) from exc
        try:
            return msgspec.convert(decode(answer.data).msg, Outcome)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise BindingRefused(f"the agent of {binding.cluster} answered {exc}") from exc

    async def bind(self, binding: Binding) -> None:
        outcome = await self._ask(binding, HCODE_BIND)
        if outcome.status != "success":
            raise BindingRefused(f"binding failed on {binding.cluster}: {outcome.error_msg}")

    async def unbind(self, binding: Binding) -> None:
        if binding.request is None:
            return
        outcome = await self._ask(binding, HCODE_REMOVE)
        if outcome.status != "success":
            raise BindingRefused(f"removal failed on {binding.cluster}: {outcome.error_msg}")


@contextlib.asynccontextmanager
async def agent_backend(
    nc: Client, config: Config, store: EventStore
) -> AsyncIterator[AgentBackend]:
    """Bind through the agents, and watch that they are alive, until the block ends."""
    backend = AgentBackend(nc, config)
    kube = config.kube
    liveness = AgentLiveness(
        nc, store, backend.clusters, kube.agent_heartbeat_seconds, kube.agent_silence_seconds
    )
    if backend.clusters:
        await liveness.start()
    try:
        yield backend
    finally:
        await liveness.stop()
