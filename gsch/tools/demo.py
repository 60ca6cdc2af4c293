"""`gsch demo`: the whole system on one machine, under a stream of sample requests.

Embedded nats-server, the API/projector and the simulated clusters in this process, competing
workers in child processes; requests of every form and policy (a few invalid on purpose) at
`--rate` for `--duration`, live progress, and a summary with the API URL at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gsch.bus.roles import Role
from gsch.client import publish_request
from gsch.clusters.topology import load_topology
from gsch.logs import setup_logging
from gsch.model.states import SETTLED_STATES, State
from gsch.runtime.config import load_config
from gsch.runtime.connection import connect
from gsch.runtime.procs import ChildProcess, serve_args
from gsch.runtime.service import Running, default_topology_path, parse_listen, serve
from gsch.scheduler.cancel import cancel_request
from gsch.tools.observe import RequestTracker
from gsch.tools.samples import SampleRequests, declared_request_id, encode

CANCEL_EVERY = 40  # one request in forty is cancelled shortly after it was published
# Progress lines: every state a published request can be in, in lifecycle order. The summary
# leads with the settled states (the outcome), then whatever has not settled.
STATES = tuple(state for state in State if state is not State.NEW)
SUMMARY_ORDER = (
    *(state for state in STATES if state in SETTLED_STATES),
    *(state for state in STATES if state not in SETTLED_STATES),
)


def say(text: str) -> None:
    print(text, flush=True)


def _listen_or_free(listen: str) -> str:
    """The requested address, or a free port on the same host when it is taken (a demo
    should not fail because something else already serves 8080)."""
    host, port = parse_listen(listen)
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            say(f"{listen} is in use; the API takes a free port instead")
            return f"{host}:0"
    return listen


async def run_demo(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="gsch-demo-"))
    api_listen = _listen_or_free(args.api_listen)
    topology_path = default_topology_path()
    config = load_config(
        None,
        {
            "data_dir": str(data_dir),
            "log_level": "WARNING",
            "api": {"listen": api_listen},
            "simulator": {
                "topology": str(topology_path),
                "bind_delay": 0.05,
                "bind_failure_rate": 0.05,
                "workload_lifetime": max(5.0, args.duration / 2),
                "seed": 42,
            },
            "queue": {"backoff_base": 0.2, "backoff_max": 2.0},
        },
        environ={},
    )
    setup_logging(config.log_level)
    topology = load_topology(topology_path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    started: asyncio.Future[Running] = loop.create_future()
    say(f"gsch demo: data in {data_dir}")
    server = asyncio.create_task(serve(config, {"api", "binder"}, stop, started=started))
    first: list[asyncio.Future[Any]] = [server, started]
    done, _ = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    if server in done:
        server.result()  # raises the start-up error
        return 1
    running = started.result()
    say(f"embedded nats-server at {running.nats_url}; API at {running.api_url}")
    workers = [
        ChildProcess(serve_args("worker", running.nats_url, data_dir), data_dir / f"worker-{i}.log")
        for i in range(args.workers)
    ]
    for worker in workers:
        await worker.start()
    say(f"{args.workers} competing worker processes: pids {[w.pid for w in workers]}")
    tracker = RequestTracker(running.store)
    await tracker.start()
    # The sample load comes as a user's would: with the submitter's credentials.
    nc = await connect(config, running.nats_url, "gsch-demo", role=Role.SUBMITTER)
    samples = SampleRequests(topology)
    submitted: set[str] = set()
    cancelling: list[str] = []
    published = 0
    try:
        begin = time.monotonic()
        next_report = begin + 1.0
        interval = 1.0 / max(args.rate, 0.1)
        while not stop.is_set() and time.monotonic() - begin < args.duration:
            request = samples.make(published)
            request_id = declared_request_id(request)
            await publish_request(nc, encode(request), request_id)
            published += 1
            if request_id:
                submitted.add(request_id)
                cancelling.append(request_id)
            if published % CANCEL_EVERY == 0 and cancelling:
                # A user changing their mind about a request published a moment ago,
                # whatever state it has reached by now.
                await cancel_request(running.store, cancelling[-3], "demo: cancelled by the user")
            if time.monotonic() >= next_report:
                _progress(tracker, published, time.monotonic() - begin)
                next_report += 1.0
            await asyncio.sleep(max(0.0, begin + published * interval - time.monotonic()))
        say(f"published {published} requests; waiting for them to settle")
        deadline = time.monotonic() + 60.0
        while not stop.is_set() and time.monotonic() < deadline:
            if len(tracker.requests) >= published and tracker.settled(set(tracker.requests)) >= len(
                tracker.requests
            ):
                break
            _progress(tracker, published, time.monotonic() - begin)
            await asyncio.sleep(1.0)
        _summary(tracker, published, running.api_url)
        if not args.keep_running:
            say("  (the API stops with the demo; add --keep-running to keep it up)")
        if args.keep_running and not stop.is_set():
            say("serving until Ctrl-C")
            await stop.wait()
    finally:
        await nc.close()
        await tracker.stop()
        for worker in workers:
            await worker.stop()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    unsettled = len(tracker.requests) - tracker.settled(set(tracker.requests))
    return 0 if unsettled == 0 else 1


def _progress(tracker: RequestTracker, published: int, elapsed: float) -> None:
    counts = tracker.counts()
    parts = " ".join(f"{state}={counts.get(state, 0)}" for state in STATES)
    say(f"t={elapsed:5.1f}s published={published} {parts}")


def _summary(tracker: RequestTracker, published: int, api_url: str | None) -> None:
    counts = tracker.counts()
    latencies = sorted(
        p.bound_at - p.scheduled_at
        for p in tracker.requests.values()
        if p.bound_at is not None and p.scheduled_at is not None
    )
    say("")
    say("summary")
    say(f"  published:  {published} (requests in the log: {len(tracker.requests)})")
    for state in SUMMARY_ORDER:
        if counts.get(state):
            say(f"  {state + ':':11} {counts[state]}")
    by_policy: dict[str, int] = {}
    by_form: dict[str, int] = {}
    for progress in tracker.requests.values():
        if progress.policy:
            by_policy[progress.policy] = by_policy.get(progress.policy, 0) + 1
        if progress.form:
            by_form[progress.form] = by_form.get(progress.form, 0) + 1
    say("  by policy:  " + ", ".join(f"{k}={v}" for k, v in sorted(by_policy.items())))
    say("  by form:    " + ", ".join(f"{k}={v}" for k, v in sorted(by_form.items())))
    if latencies:
        say(f"  scheduled->bound median {statistics.median(latencies) * 1000:.0f} ms")
    if api_url:
        say(f"  API: {api_url}/v1/requests  {api_url}/v1/clusters  {api_url}/metrics")
    sys.stdout.flush()
