"""A three-node NATS cluster with JetStream on loopback ports, for R3 fault tests."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import nats

from gsch.embedded import find_binary, free_port
from gsch.eventstore.streams import StreamsError, apply_declarations, load_declarations
from tests.conftest import wait_for_port


class ClusterNode:
    def __init__(self, root: Path, name: str, port: int, route_port: int) -> None:
        self.root = root
        self.name = name
        self.port = port
        self.route_port = route_port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, routes: list[str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                find_binary(), "--jetstream", "--store_dir", str(self.root / "store"),
                "--server_name", self.name, "--addr", "127.0.0.1", "--port", str(self.port),
                "--cluster_name", "gsch-test",
                "--cluster", f"nats://127.0.0.1:{self.route_port}",
                "--routes", ",".join(routes), "--log", str(self.root / "server.log"),
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


class NatsCluster:
    def __init__(self, root: Path, size: int = 3) -> None:
        self.nodes = [
            ClusterNode(root / f"n{index}", f"n{index}", free_port(), free_port())
            for index in range(size)
        ]

    @property
    def urls(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def routes(self) -> list[str]:
        return [f"nats://127.0.0.1:{node.route_port}" for node in self.nodes]

    def start(self) -> None:
        for node in self.nodes:
            node.start(self.routes())

    def restart(self, node: ClusterNode) -> None:
        node.start(self.routes())

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    async def declare_r3(self, lease_seconds: float, timeout: float = 60.0) -> None:
        """Apply the declarations with three replicas once JetStream has a meta leader."""
        nc = await nats.connect(self.urls.split(","))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        declarations = load_declarations(replicas=3, lease_seconds=lease_seconds)
                        await apply_declarations(nc, declarations)
                        return
                    except (StreamsError, nats.errors.Error):
                        await asyncio.sleep(0.5)  # no meta leader elected yet
        finally:
            await nc.close()
