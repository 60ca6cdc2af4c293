"""The pause between rounds of a background loop, honouring a swallowed cancellation.

On Python 3.11, `asyncio.wait_for` returns the result instead of raising when the awaited
future completes in the same loop iteration as the cancellation (fixed in 3.12), and nats-py
wraps every request in it. A loop cancelled during an append can therefore go on to its next
round with the cancellation spent, and whoever awaits it after `cancel()` waits forever. The
task still counts the request (`cancelling()`), so the pause raises it.
"""

from __future__ import annotations

import asyncio


async def pause(seconds: float) -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    await asyncio.sleep(seconds)
