"""Child processes gsch starts (the embedded nats-server, competing workers, binders): each dies
with its parent and is stopped by whoever started it, SIGTERM first."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """For a child's preexec_fn: the kernel sends it SIGTERM when its parent dies, even by
    SIGKILL, so nothing gsch starts outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


async def terminate(process: asyncio.subprocess.Process | None, grace: float) -> None:
    """SIGTERM a child we started, SIGKILL it if it has not gone after `grace` seconds."""
    if process is None or process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def kill(process: asyncio.subprocess.Process | None) -> None:
    """SIGKILL a child we started, as a crash would, and reap it."""
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.wait()


class ChildProcess:
    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gsch", *self.args,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=die_with_parent, env={**os.environ, **(self.env or {})},
            )  # fmt: skip

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def stop(self, grace: float = 15.0) -> None:
        process, self.process = self.process, None
        await terminate(process, grace)

    def kill(self) -> None:
        """SIGKILL, as a crash would (for fault tests)."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()


def serve_args(
    roles: str, nats_url: str, data_dir: Path, extra: list[str] | None = None
) -> list[str]:
    return [
        "serve",
        "--roles",
        roles,
        "--nats",
        nats_url,
        "--data-dir",
        str(data_dir),
        *(extra or []),
    ]
