"""asyncio helpers that the standard library of Python 3.11 lacks."""

from __future__ import annotations

import asyncio


def reraise_swallowed_cancel() -> None:
    """Raise CancelledError if this task was cancelled but carries on.

    Python 3.11's `wait_for` (inside every NATS request) swallows a cancel that arrives just
    as its answer does (gh-86296). A loop that catches the request's errors would then run on,
    and whoever cancelled it would wait for ever; loops call this after each request."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def pause(seconds: float) -> None:
    """The pause between rounds of a background loop: first honour a swallowed cancel."""
    reraise_swallowed_cancel()
    await asyncio.sleep(seconds)
