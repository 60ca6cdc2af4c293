"""Child gsch processes (competing workers, binders) for the demo and the benchmark."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from gsch.embedded import die_with_parent, terminate


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
