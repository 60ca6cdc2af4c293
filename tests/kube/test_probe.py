"""The latency probe's arithmetic and its TCP round trips (loopback only)."""

from __future__ import annotations

import asyncio
import socket

from gsch.kube.probe import LatencyProbe, Series, Targets, connect_rtt
from gsch.runtime.config import ProbeConfig


def test_ewma_and_p95() -> None:
    series = Series(window=20)
    series.add([10.0] * 19 + [100.0], alpha=0.5, now=1.0)
    assert series.ewma == 55.0  # the last sample weighs half
    assert series.p95 == 10.0  # 19 of 20 samples are 10: the p95 is 10
    series.add([100.0], alpha=0.5, now=2.0)
    assert series.p95 == 100.0  # the window keeps 20: now two of them are 100
    assert len(series.samples) == 20


async def test_connect_rtt_measures_listening_and_refusing_ports() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        listening = await connect_rtt(("127.0.0.1", port), 1.0)
    finally:
        server.close()
        await server.wait_closed()
    with socket.socket() as sock:  # a port nobody listens on: the refusal is a round trip
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    refused = await connect_rtt(("127.0.0.1", closed), 1.0)
    assert listening is not None
    assert listening >= 0
    assert refused is not None


async def test_stale_targets_leave_the_report() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    address = ("127.0.0.1", server.sockets[0].getsockname()[1])
    now = [0.0]
    targets = Targets(clusters={"far": address, "home": address}, nodes={"n2": address})
    settings = ProbeConfig(samples=2, timeout=1.0, stale_after=30.0)
    probe = LatencyProbe(None, "home", "n1", settings, lambda: targets, clock=lambda: now[0])  # type: ignore[arg-type]
    try:
        await probe.measure()
        report = probe.report()
        assert set(report.to_clusters) == {"far"}  # not itself
        assert set(report.to_nodes) == {"n1", "n2"}
        assert report.to_nodes["n1"] == 0.0
        # "far" is gone from the targets; after stale_after it leaves the report.
        targets = Targets(nodes={"n2": address})
        now[0] = 20.0
        await probe.measure()
        assert "far" in probe.report().to_clusters
        now[0] = 40.0
        await probe.measure()
        report = probe.report()
        assert report.to_clusters == {}
        assert "n2" in report.to_nodes
    finally:
        server.close()
        await server.wait_closed()
