"""`gsch` as a user runs it: a child process, its exit code, what it printed and how long it
took. Asynchronous, so that a gsch served by the test's own event loop keeps answering."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from dataclasses import dataclass

# An exception's class name in a message ("NatsConnectError: ...", "ClientConnectorError"):
# what a user must never have to read.
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]+(Error|Exception)\b")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str
    seconds: float


async def gsch(
    *args: str, stdin: bytes | None = None, timeout: float = 60.0, env: dict[str, str] | None = None
) -> Run:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsch", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})},
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"gsch {' '.join(args)} still running after {timeout} s") from None
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode(), time.monotonic() - started)
