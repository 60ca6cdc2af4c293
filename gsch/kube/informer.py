"""List, then watch, one collection of a member cluster, forever.

The list is paged (`limit`/`continue`) and hands its resourceVersion to the watch; the watch
asks for bookmarks so a quiet collection still advances its version; `410 Gone` (on the watch
or on a stale continue token) means re-list; any other error backs off exponentially up to a
bound. Each answer and each failure is reported to the cluster's `Reachability`, which turns a
cluster unreachable only after a sustained outage, never on one failed call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from gsch.aio import pause
from gsch.kube.client import KubeApiError, KubeClient, KubeError

log = logging.getLogger(__name__)


class Sink(Protocol):
    def reset(self, items: list[dict[str, Any]]) -> None: ...

    def event(self, kind: str, obj: dict[str, Any]) -> None: ...


class Reachability:
    """Whether a cluster's API server answers: unreachable once every call has failed for
    `after` seconds; reachable again at the next answer."""

    def __init__(self, after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.after = after
        self._clock = clock
        self._failing_since: float | None = None

    def ok(self) -> None:
        self._failing_since = None

    def failed(self) -> None:
        if self._failing_since is None:
            self._failing_since = self._clock()

    @property
    def reachable(self) -> bool:
        since = self._failing_since
        return since is None or self._clock() - since < self.after


class _Gone(Exception):
    """The resourceVersion (or continue token) is too old: list again."""


class Informer:
    def __init__(
        self,
        client: KubeClient,
        path: str,
        sink: Sink,
        reachability: Reachability,
        *,
        page_size: int = 500,
        watch_seconds: int = 300,
        backoff: tuple[float, float] = (0.2, 10.0),
    ) -> None:
        self.client = client
        self.path = path
        self.sink = sink
        self.reachability = reachability
        self.page_size = page_size
        self.watch_seconds = watch_seconds
        self.backoff = backoff
        self.synced = asyncio.Event()  # set after the first complete list
        self.lists = 0

    async def _list(self) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = {"limit": str(self.page_size)}
            if token:
                query["continue"] = token
            try:
                page = await self.client.call("GET", self.path, query=query)
            except KubeApiError as exc:
                if exc.status == 410:
                    raise _Gone from exc
                raise
            items.extend(i for i in page.get("items") or () if isinstance(i, dict))
            metadata = page.get("metadata") or {}
            token = str(metadata.get("continue") or "")
            if not token:
                return items, str(metadata.get("resourceVersion") or "0")

    async def _watch(self, version: str) -> str:
        """Follow the watch until the server ends it; return the last version seen."""
        async with self.client.watch(self.path, version, self.watch_seconds) as events:
            self.reachability.ok()
            async for event in events:
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Gone
                    code = int(obj.get("code") or 500)
                    raise KubeApiError(code, str(obj.get("reason")), str(obj.get("message")))
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind != "BOOKMARK" and isinstance(kind, str):
                    self.sink.event(kind, obj)
        return version

    async def run(self) -> None:
        """Until cancelled."""
        delay = self.backoff[0]
        version: str | None = None
        while True:
            try:
                if version is None:
                    items, version = await self._list()
                    self.lists += 1
                    self.sink.reset(items)
                    self.reachability.ok()
                    self.synced.set()
                started = time.monotonic()
                version = await self._watch(version)
                if time.monotonic() - started < 1.0:
                    # A server that ends watches at once must not make this loop spin.
                    await pause(delay)
                    delay = min(delay * 2, self.backoff[1])
                else:
                    delay = self.backoff[0]
            except _Gone:
                log.info("resource version expired: listing again", extra={"path": self.path})
                version = None
            except KubeError as exc:
                self.reachability.failed()
                log.warning("list/watch failed", extra={"path": self.path, "error": str(exc)})
                await pause(delay)
                delay = min(delay * 2, self.backoff[1])
