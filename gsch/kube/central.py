"""The binder backend for clusters gsch reaches directly through a kubeconfig
(`mode = "central"`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from gsch.clusters.binder import Binding, BindingRefused
from gsch.eventstore.store import EventStore
from gsch.kube.applier import ApplyError
from gsch.kube.central_probe import central_probe
from gsch.kube.member import MemberCluster, running_member
from gsch.model.request import Request
from gsch.runtime.config import Config


def require_request(binding: Binding) -> Request:
    if binding.request is None:
        raise BindingRefused(f"request {binding.request_id} has no accepted request in the log")
    return binding.request


class CentralBackend:
    needs_request = True

    def __init__(self, members: dict[str, MemberCluster]) -> None:
        self.members = members

    def serves(self, cluster: str) -> bool:
        return cluster in self.members

    async def bind(self, binding: Binding) -> None:
        request = require_request(binding)
        member = self.members[binding.cluster]
        try:
            await member.apply(binding.request_id, request, binding.placements[0].node)
        except ApplyError as exc:
            raise BindingRefused(f"binding failed on {binding.cluster}: {exc}") from exc

    async def unbind(self, binding: Binding) -> None:
        if binding.request is None:
            return  # nothing was ever applied for a request the log does not know
        try:
            await self.members[binding.cluster].remove(binding.request_id, binding.request)
        except ApplyError as exc:
            raise BindingRefused(f"removal failed on {binding.cluster}: {exc}") from exc


@contextlib.asynccontextmanager
async def central_backend(config: Config, store: EventStore) -> AsyncIterator[CentralBackend]:
    """Run every central member's inventory (and latency probe, where configured); bind
    through them until the block ends."""
    async with contextlib.AsyncExitStack() as stack:
        members = {}
        for name, settings in config.kube.clusters.items():
            if settings.mode == "central":
                members[name] = await stack.enter_async_context(
                    running_member(name, settings, config, store)
                )
        await stack.enter_async_context(central_probe(config, store, members))
        yield CentralBackend(members)
