"""The embedded nats-server starts with gsch and never outlives it; external auth works."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gsch.bus.roles import Role
from gsch.runtime.config import load_config
from gsch.runtime.connection import (
    RECONNECT_FIRST_WAIT,
    RECONNECT_MAX_WAIT,
    NatsConnectError,
    connect,
)
from gsch.runtime.embedded import EmbeddedNats, free_port
from tests.support.waits import wait_until


def nats_server_pids(store_dir: Path) -> list[int]:
    found = subprocess.run(
        ["pgrep", "-f", f"nats-server.*{store_dir}"], capture_output=True, text=True, check=False
    )
    return [int(pid) for pid in found.stdout.split()]


async def test_embedded_server_serves_jetstream_and_stops(tmp_path: Path) -> None:
    embedded = EmbeddedNats(tmp_path)
    url = await embedded.start()
    assert url.startswith("nats://127.0.0.1:")
    assert (tmp_path / "nats.url").read_text().strip() == url
    config = load_config(None, {"data_dir": str(tmp_path)}, environ={})
    nc = await connect(config, url, "test", role=Role.ADMIN)
    info = await nc.jetstream().account_info()
    assert info is not None
    await nc.close()
    pid = embedded.pid
    await embedded.stop()
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # no such process any more


async def test_embedded_server_keeps_its_port_across_restarts(tmp_path: Path) -> None:
    first = EmbeddedNats(tmp_path)
    url = await first.start()
    await first.stop()
    second = EmbeddedNats(tmp_path)
    assert await second.start() == url
    await second.stop()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_no_orphan_server_whatever_ends_gsch(tmp_path: Path, how: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "gsch", "serve", "--roles", "api", "--data-dir", str(tmp_path),
         "--api-listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert wait_until(lambda: bool(nats_server_pids(tmp_path))), "embedded server never started"
        assert wait_until(lambda: (tmp_path / "readmodel.sqlite").exists())
        os.kill(process.pid, how)
        process.wait(timeout=30)
        assert wait_until(lambda: not nats_server_pids(tmp_path), timeout=15), (
            f"nats-server outlived gsch after {how.name}"
        )
    finally:
        if process.poll() is None:
            process.kill()
        for pid in nats_server_pids(tmp_path):
            os.kill(pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def _server(tmp_path: Path, *auth: str) -> AsyncIterator[str]:
    """A server gsch did not start, as an operator would run it: asking for credentials."""
    server = EmbeddedNats(tmp_path / "external", extra_args=auth)
    try:
        yield await server.start()
    finally:
        await server.stop()


async def test_external_server_with_user_and_password_file(tmp_path: Path) -> None:
    async with _server(tmp_path, "--user", "gsch", "--pass", "s3cret") as url:
        secret = tmp_path / "password"
        secret.write_text("s3cret\n")
        config = load_config(
            None, {"nats": {"url": url, "user": "gsch", "password_file": str(secret)}}, environ={}
        )
        nc = await connect(config, url, "test", role=Role.ADMIN)
        await nc.flush()
        await nc.close()
        secret.write_text("wrong\n")
        with pytest.raises(NatsConnectError, match="refused the credentials"):
            await asyncio.wait_for(connect(config, url, "test", role=Role.ADMIN), 10)


async def test_external_server_with_token_file(tmp_path: Path) -> None:
    async with _server(tmp_path, "--auth", "tok-123") as url:
        token = tmp_path / "token"
        token.write_text("tok-123")
        config = load_config(None, {"nats": {"url": url, "token_file": str(token)}}, environ={})
        nc = await connect(config, url, "test", role=Role.ADMIN)
        await nc.flush()
        await nc.close()


async def test_reconnect_waits_longer_after_each_failure_and_recovers(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    config = load_config(None, {"nats": {"url": nats_server.url}}, environ={})
    nc = await connect(config, nats_server.url, "test", role=Role.ADMIN)
    try:
        assert nc.options["reconnect_time_wait"] == RECONNECT_FIRST_WAIT
        await nats_server.stop()
        await asyncio.sleep(4.0)
        assert nc.options["reconnect_time_wait"] > RECONNECT_FIRST_WAIT  # backing off
        assert nc.options["reconnect_time_wait"] <= RECONNECT_MAX_WAIT
        assert not nc.is_closed  # and never giving up
        await nats_server.start()
        async with asyncio.timeout(15):
            while not nc.is_connected:
                await asyncio.sleep(0.1)
        assert nc.options["reconnect_time_wait"] == RECONNECT_FIRST_WAIT
        await nc.flush()
    finally:
        await nc.close()


async def test_a_list_of_urls_reaches_the_server_that_is_up(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    down = f"nats://127.0.0.1:{free_port()}"
    urls = f"{down}, {nats_server.url}"
    config = load_config(None, {"nats": {"url": urls}}, environ={})
    nc = await connect(config, urls, "test", role=Role.ADMIN, patience=20)
    try:
        await nc.flush()
        assert nc.connected_url is not None
        assert nc.connected_url.port == nats_server.port
    finally:
        await nc.close()
