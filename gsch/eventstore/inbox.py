"""One subscription to `<inbox>.*` of a connection: the answers to the requests a process
sends with reply subjects of its own (pull requests, the messages of atomic batches), each
told apart by the last token of its reply subject."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import nats.errors
from nats.aio.client import Client


class Inbox:
    def __init__(self, nc: Client, on_message: Callable[[Any], Awaitable[None]]) -> None:
        self._nc = nc
        self._prefix = nc.new_inbox()
        self._on_message = on_message
        self._subscription: Any = None

    def subject(self, token: str) -> str:
        """The reply subject whose answers come back tagged with `token`."""
        return f"{self._prefix}.{token}"

    async def open(self) -> None:
        self._subscription = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_message)

    async def close(self) -> None:
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()
