"""The planner processes behind POST /v1/plan: started, fed one plan at a time, bounded,
timed out and replaced by the API process (see `gsch.scheduler.planner_process`).

Bounds, so that plans can never take the API down with them: at most `plan_processes` plans
run at once and `plan_queue` more wait; any more answer 503 at once. A plan that runs longer
than `plan_timeout` answers 503 and its process is killed and replaced (its snapshot is
rebuilt from the log), so no request can hold a planner for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from gsch.runtime.config import Config
from gsch.runtime.procs import die_with_parent, kill, terminate
from gsch.scheduler.planner_process import (
    Done,
    FrameError,
    Job,
    Ready,
    Start,
    decode_from_planner,
    frame,
    read_frame,
)

log = logging.getLogger(__name__)

RESTART_FIRST_WAIT = 0.5
RESTART_MAX_WAIT = 30.0
HEALTHY_AFTER = 30.0  # a planner that lived this long was fine: restart it at once


class PlannerUnavailableError(Exception):
    """No plan now: busy, still starting, or the plan ran too long. Says when to try again."""

    def __init__(self, reason: str, retry_after: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class PlanLimits:
    processes: int = 1
    queue: int = 8
    timeout: float = 10.0
    niceness: int = 10


class _Planner:
    """One planner process: one job at a time."""

    def __init__(self, start: Start, niceness: int, on_sequence: Callable[[int], None]) -> None:
        self._start = start
        self._niceness = niceness
        self._on_sequence = on_sequence
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._pending: dict[int, asyncio.Future[Done]] = {}
        self.sequence = 0

    @property
    def ready(self) -> bool:
        return self.alive and self._ready is not None and self._ready.done()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Spawn the process and return once its snapshot has caught up with the log."""
        niceness = self._niceness

        def lower_priority_and_die_with_parent() -> None:
            die_with_parent()
            with contextlib.suppress(OSError):
                os.nice(niceness)

        process = self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gsch.scheduler.planner_process",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            preexec_fn=lower_priority_and_die_with_parent,
        )  # fmt: skip
        self._ready = asyncio.get_running_loop().create_future()
        # Its failure is also the reader's to report; never an unretrieved exception.
        self._ready.add_done_callback(lambda ready: ready.cancelled() or ready.exception())
        self._reader = asyncio.create_task(self._read(process))
        self._send(self._start)
        await asyncio.shield(self._ready)

    def submit(self, job: Job) -> asyncio.Future[Done]:
        if not self.alive:
            raise PlannerUnavailableError("the planner process exited; try again shortly")
        future: asyncio.Future[Done] = asyncio.get_running_loop().create_future()
        self._pending[job.job] = future
        self._send(job)
        return future

    def _send(self, message: Start | Job) -> None:
        if self._process is not None and self._process.stdin is not None:
            self._process.stdin.write(frame(message))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        reason = "the planner process exited"
        try:
            while process.stdout and (payload := await read_frame(process.stdout)) is not None:
                message = decode_from_planner(payload)
                if isinstance(message, Done):
                    future = self._pending.pop(message.job, None)
                    if future is not None and not future.done():
                        future.set_result(message)
                    continue
                self.sequence = message.sequence
                self._on_sequence(message.sequence)
                if isinstance(message, Ready) and self._ready and not self._ready.done():
                    self._ready.set_result(None)
        except (FrameError, msgspec.DecodeError) as exc:
            reason = f"the planner process broke its protocol: {exc}"
            log.error("planner protocol error", extra={"error": str(exc)})
            await kill(process)
        finally:
            await process.wait()
            self._fail(PlannerUnavailableError(f"{reason} (code {process.returncode})"))

    def _fail(self, error: PlannerUnavailableError) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    async def wait_exit(self) -> None:
        if self._reader is not None:
            await asyncio.shield(self._reader)

    async def kill(self) -> None:
        await kill(self._process)

    async def stop(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            self._process.stdin.close()  # end of input: the process closes and exits
        await terminate(self._process, grace=5)
        if self._reader is not None:
            await self._reader


class PlannerPool:
    """`plan(body)` from whichever planner process is free, within the limits."""

    def __init__(
        self,
        config: Config,
        url: str,
        name: str,
        limits: PlanLimits,
        on_sequence: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._start = Start(msgspec.json.encode(config), url, f"{name}-planner")
        self._limits = limits
        self._on_sequence = on_sequence
        self._idle: asyncio.Queue[_Planner] = asyncio.Queue()
        self._planners: set[_Planner] = set()
        self._supervisors: list[asyncio.Task[None]] = []
        self._admitted = 0
        self._jobs = itertools.count(1)

    def start(self) -> None:
        """Start the processes in the background: the API serves reads meanwhile, and plans
        wait (bounded) until a planner has caught up with the log."""
        self._supervisors = [
            asyncio.create_task(self._supervise(slot)) for slot in range(self._limits.processes)
        ]

    async def stop(self) -> None:
        """Stop every planner process (each supervisor stops its own on the way out)."""
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)

    async def plan(self, body: bytes) -> Done:
        limits = self._limits
        if self._admitted >= limits.processes + limits.queue:
            raise PlannerUnavailableError(
                f"the planner is busy: {limits.processes} plans running and {limits.queue}"
                " waiting (api.plan_processes, api.plan_queue); try again shortly"
            )
        self._admitted += 1
        try:
            planner = await self._free_planner()
            future = planner.submit(Job(next(self._jobs), body))
            # Back to the free ones once it has answered, even if this caller has gone.
            future.add_done_callback(lambda done: self._release(planner, done))
            try:
                return await asyncio.wait_for(asyncio.shield(future), limits.timeout)
            except TimeoutError:
                await planner.kill()  # the supervisor starts a fresh one
                raise PlannerUnavailableError(
                    f"the plan took longer than api.plan_timeout ({limits.timeout:g} s) and was"
                    " stopped",
                    retry_after=5,
                ) from None
        finally:
            self._admitted -= 1

    async def _free_planner(self) -> _Planner:
        try:
            async with asyncio.timeout(self._limits.timeout):
                while True:
                    planner = await self._idle.get()
                    if planner.alive:
                        return planner
        except TimeoutError:
            starting = not any(p.ready for p in self._planners)
            what = "still starting" if starting else "busy"
            raise PlannerUnavailableError(
                f"no planner became free within {self._limits.timeout:g} s (the planner is {what})",
                retry_after=5 if starting else 1,
            ) from None

    def _release(self, planner: _Planner, done: asyncio.Future[Done]) -> None:
        if not done.cancelled():
            done.exception()  # seen here, whether or not its caller is still waiting
        if planner.alive:
            self._idle.put_nowait(planner)

    async def _supervise(self, slot: int) -> None:
        """Keep one planner process running: start it, and replace it whenever it exits."""
        wait = RESTART_FIRST_WAIT
        loop = asyncio.get_running_loop()
        while True:
            planner = _Planner(self._start, self._limits.niceness, self._on_sequence)
            self._planners.add(planner)
            started = loop.time()
            try:
                await planner.start()
            except (PlannerUnavailableError, OSError) as exc:
                log.error("planner failed to start", extra={"slot": slot, "error": str(exc)})
            else:
                log.info("planner ready", extra={"slot": slot, "seq": planner.sequence})
                self._idle.put_nowait(planner)
                await planner.wait_exit()
                log.warning("planner exited; starting another", extra={"slot": slot})
            finally:
                await planner.stop()  # also when the pool stops: no process outlives it
                self._planners.discard(planner)
            if loop.time() - started > HEALTHY_AFTER:
                wait = RESTART_FIRST_WAIT
            await asyncio.sleep(wait)
            wait = min(wait * 2, RESTART_MAX_WAIT)
