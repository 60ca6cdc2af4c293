"""The notifier role: when a request settles, POST its result to the request's callback URL.

It reads the log, not the scheduler: a durable consumer (`gsch-callbacks`, declared in
`streams/`) hands it every settling event (`RequestBound`, `RequestFailed`, `RequestRejected`,
`RequestCancelled`), so scheduling never waits for a callback and a notifier that dies or
restarts loses nothing. Delivery is at least once: the message is acknowledged only after the
receiver answered 2xx (or the notifier gave up), so a receiver may see a result twice and
should key on `request_id` + `event_sequence`. A failed call is retried with exponential
backoff (`nak` with a delay, not a sleep) up to `[callbacks] max_attempts`. Every attempt is
an event on `gsch.events.callback.<id>` (`CallbackDelivered`, `CallbackFailed`), listed with
the request's events in the API. The allow-list is checked again before each call, under
this process's configuration; redirects are never followed.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import msgspec

from gsch.eventstore.consumers import WorkItem, consume
from gsch.eventstore.store import EventStore, Write
from gsch.eventstore.subjects import EVENTS_STREAM, CallbackKey
from gsch.metrics import CALLBACKS
from gsch.model.admission.namespaces import namespace_of
from gsch.model.callbacks import CallbackResult, callback_problem, settled_result
from gsch.model.events import (
    CallbackDelivered,
    CallbackFailed,
    Event,
    RequestRejected,
    decode_event,
)
from gsch.runtime.config import CallbacksConfig

log = logging.getLogger(__name__)

CALLBACK_CONSUMER = "gsch-callbacks"
USER_AGENT = "gsch-notifier"


class CallbackRefused(Exception):
    """The receiver did not take the result; the message says how."""


class Notifier:
    def __init__(self, store: EventStore, config: CallbacksConfig) -> None:
        self.store = store
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        async with aiohttp.ClientSession(
            timeout=timeout, headers={"User-Agent": USER_AGENT}
        ) as session:
            self._session = session
            await consume(
                self.store, EVENTS_STREAM, CALLBACK_CONSUMER, self.handle, stop,
                max_in_flight=self.config.max_in_flight, batch=self.config.max_in_flight,
            )  # fmt: skip

    async def handle(self, item: WorkItem) -> None:
        request_id = item.request_id
        try:
            event = decode_event(item.data)
        except msgspec.DecodeError:
            await item.ack()
            return
        if request_id is None or settled_result(request_id, event, item.seq) is None:
            await item.ack()  # settles nothing
            return
        url, namespace = await self._callback_of(request_id, event)
        result = settled_result(request_id, event, item.seq, namespace)
        if result is None or url is None:
            await item.ack()  # nobody to tell
            return
        attempt = item.deliveries
        problem = callback_problem(url, self.config.allowed_hosts)
        if problem is not None:
            await self._record(result, url, CallbackFailed, attempt, error=problem, final=True)
            CALLBACKS.labels(result="not_allowed").inc()
            await item.ack()
            return
        try:
            status = await self._send(url, result)
        except CallbackRefused as exc:
            final = attempt >= self.config.max_attempts
            delay = 0.0 if final else self._backoff(attempt)
            await self._record(result, url, CallbackFailed, attempt, error=str(exc),
                               final=final, retry_after=delay)  # fmt: skip
            log.warning(
                "callback failed",
                extra={"request_id": result.request_id, "attempt": attempt, "error": str(exc)},
            )
            CALLBACKS.labels(result="gave_up" if final else "failed").inc()
            if final:
                await item.ack()
            else:
                await item.nak(delay=delay)
            return
        await self._record(result, url, CallbackDelivered, attempt, status=status)
        CALLBACKS.labels(result="delivered").inc()
        await item.ack()

    async def _callback_of(self, request_id: str, event: Event) -> tuple[str | None, str | None]:
        """The callback URL the request named, and the namespace it was applied in."""
        if isinstance(event, RequestRejected):
            return event.callback_url, None
        request = (await self.store.load_request(request_id)).request
        if request is None:
            return None, None
        namespace = namespace_of(request.project_name, request.workspace_name, request.namespace)
        return request.callback_url, namespace

    async def _send(self, url: str, result: CallbackResult) -> int:
        assert self._session is not None, "run() opens the session"
        try:
            async with self._session.request(
                self.config.method, url, data=msgspec.json.encode(result),
                headers={"Content-Type": "application/json"}, allow_redirects=False,
            ) as response:  # fmt: skip
                await response.read()
                if not 200 <= response.status < 300:
                    raise CallbackRefused(f"the receiver answered {response.status}")
                return response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise CallbackRefused(f"could not reach the receiver: {exc!r}") from None

    def _backoff(self, attempt: int) -> float:
        return float(min(self.config.backoff_max, self.config.backoff_base * 2 ** (attempt - 1)))

    async def _record(
        self,
        result: CallbackResult,
        url: str,
        kind: type[CallbackDelivered] | type[CallbackFailed],
        attempt: int,
        **details: object,
    ) -> None:
        event = kind(
            at=time.time(), request_id=result.request_id, settled_seq=result.event_sequence,
            state=result.state, url=url, attempt=attempt, **details,  # type: ignore[arg-type]
        )  # fmt: skip
        # One id per settling event and attempt: a redelivery of the same attempt (the
        # notifier died after appending) records it once.
        msg_id = f"{result.request_id}:callback:{result.event_sequence}:{attempt}"
        await self.store.append(Write(CallbackKey(result.request_id), (event,), msg_ids=(msg_id,)))
