"""The benchmark's message counts: what each process sent and was delivered, per placement,
read from a real server's monitoring endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats

from gsch.runtime.embedded import EmbeddedNats, free_port
from gsch.tools.bench_traffic import TrafficMeter, pid_of


def test_a_connection_is_attributed_by_the_pid_ending_its_name() -> None:
    assert pid_of("gsch-worker-host-a-4242:worker") == 4242
    assert pid_of("gsch-api+binder+worker-h-17") == 17
    assert pid_of("gsch-bench-99") == 99
    assert pid_of("someone-else") is None
    assert pid_of("") is None


async def test_messages_per_placement_count_what_each_process_sent_and_received(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = EmbeddedNats(tmp_path, extra_args=["--http_port", str(port)])
    await server.start()
    clients = []
    try:
        sender = await nats.connect(server.url, name="gsch-worker-host-111:worker")
        receiver = await nats.connect(server.url, name="gsch-binder-host-222:binder")
        other = await nats.connect(server.url, name="not-ours")
        clients = [sender, receiver, other]
        got = 0

        async def count(_: object) -> None:
            nonlocal got
            got += 1

        await receiver.subscribe("work", cb=count)
        await receiver.flush()
        meter = TrafficMeter(f"http://127.0.0.1:{port}", {"worker-0": 111, "binder": 222})
        await meter.start()
        for _ in range(30):
            await sender.publish("work", b"x")
        await sender.flush()
        async with asyncio.timeout(10):
            while got < 30:
                await asyncio.sleep(0.01)
        report = await meter.report(placements=10)
    finally:
        for client in clients:
            await client.close()
        await server.stop()
    assert report is not None
    assert report["by_process"] == {
        "worker-0": {"sent": 3.0, "received": 0.0},
        "binder": {"sent": 0.0, "received": 3.0},
    }
    # The server's totals hold every connection's (a flush's ping is not a message).
    assert report["server_received"] >= 3.0
    assert report["server_delivered"] >= 3.0


async def test_without_a_monitoring_endpoint_nothing_is_reported() -> None:
    meter = TrafficMeter(None, {"worker-0": 1})
    await meter.start()
    assert await meter.report(placements=5) is None
