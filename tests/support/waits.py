"""Bounded waits for state that another task or process brings about: the one way tests poll."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Check = Callable[[], bool] | Callable[[], Awaitable[bool]]


async def eventually(check: Check, timeout: float = 30.0, interval: float = 0.05) -> None:
    """Wait until `check()` (plain or async) holds; TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not await _holds(check):
            await asyncio.sleep(interval)


async def _holds(check: Check) -> bool:
    result = check()
    return bool(await result) if inspect.isawaitable(result) else bool(result)


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    """For synchronous tests watching other processes: whether `predicate()` came to hold
    within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
