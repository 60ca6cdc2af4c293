"""`gsch demo`: the whole system on one machine, under a stream of sample requests.

Embedded nats-server, the API/projector and the simulated clusters in this process, competing
workers in child processes; requests of every form and policy (a few invalid or unplaceable
on purpose) at `--rate` for `--duration`, live progress, and a summary with the API URL at
the end. Its temporary data directory goes with it, unless it is kept running (then the
summary says how to look around) or something went wrong (then it keeps the logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from gsch.bus.roles import Role
from gsch.client import publish_request
from gsch.clusters.topology import load_topology
from gsch.logs import setup_logging
from gsch.model.states import State
from gsch.runtime.config import load_config
from gsch.runtime.connection import connect
from gsch.runtime.procs import ChildProcess, serve_args
from gsch.runtime.service import Running, default_topology_path, parse_listen, serve
from gsch.scheduler.cancel import cancel_request
from gsch.tools.demo_report import ProgressLines, Published, next_steps, summary
from gsch.tools.observe import RequestTracker
from gsch.tools.samples import Sample, SampleRequests, encode

CANCEL_EVERY = 40  # one request in forty is cancelled shortly after it was published
SETTLE_SECONDS = 60.0  # after the load, how long the demo waits for every request to settle
WORKERS_START_SECONDS = 60.0  # how long the first request may wait for a worker


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
    temporary = args.data_dir is None
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="gsch-demo-"))
    say(f"gsch demo: data in {data_dir}")
    try:
        healthy = await _run(args, data_dir)
    except BaseException:
        if temporary:
            say(f"data and worker logs kept in {data_dir}")
        raise
    if temporary and healthy and not args.keep_running:
        shutil.rmtree(data_dir, ignore_errors=True)
    elif temporary:
        say(f"data and worker logs kept in {data_dir} (remove it when done)")
    return 0 if healthy else 1


async def _run(args: argparse.Namespace, data_dir: Path) -> bool:
    """The demo in `data_dir`; whether every request settled."""
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
    server = asyncio.create_task(
        serve(config, {"api", "binder", "housekeeper"}, stop, started=started)
    )
    first: list[asyncio.Future[Any]] = [server, started]
    done, _ = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    if server in done:
        server.result()  # raises the start-up error
        return False
    running = started.result()
    say(f"embedded nats-server at {running.nats_url}; API at {running.api_url}")
    # The workers decide retries: they wait out the demo's short backoff, not the default.
    queue = {f"GSCH_QUEUE__{key.upper()}": str(getattr(config.queue, key))
             for key in ("backoff_base", "backoff_max")}  # fmt: skip
    workers = [
        ChildProcess(
            serve_args("worker", running.nats_url, data_dir), data_dir / f"worker-{i}.log", queue
        )
        for i in range(args.workers)
    ]
    for worker in workers:
        await worker.start()
    say(f"{args.workers} competing worker processes: pids {[w.pid for w in workers]}")
    tracker = RequestTracker(running.store)
    await tracker.start()
    # The sample load comes as a user's would: with the submitter's credentials.
    nc = await connect(config, running.nats_url, "gsch-demo", role=Role.SUBMITTER)
    try:
        published = await _load(args, running, nc, tracker, SampleRequests(topology), stop)
        for line in summary(tracker, published, running.api_url):
            say(line)
        if args.keep_running and not stop.is_set():
            for line in next_steps(data_dir, running.api_url, _examples(tracker)):
                say(line)
            await stop.wait()
        elif not args.keep_running:
            say("  (the API stops with the demo; add --keep-running to keep it up and look"
                " around with gsch get, explain and audit)")  # fmt: skip
    finally:
        await nc.close()
        await tracker.stop()
        for worker in workers:
            await worker.stop()
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    return tracker.settled(set(tracker.requests)) == len(tracker.requests)


async def _load(
    args: argparse.Namespace,
    running: Running,
    nc: Client,
    tracker: RequestTracker,
    samples: SampleRequests,
    stop: asyncio.Event,
) -> Published:
    """Publish samples at `--rate` for `--duration`, then wait for them to settle."""
    published = Published()
    progress = ProgressLines(say, tracker)
    recent: list[str] = []
    await _first_request(nc, tracker, samples.make(0), published, stop)
    begin = time.monotonic()
    next_report = begin + 1.0
    interval = 1.0 / max(args.rate, 0.1)
    while not stop.is_set() and time.monotonic() - begin < args.duration:
        sample = samples.make(published.count)
        await publish_request(nc, encode(sample.body), sample.request_id)
        published.add(sample.request_id, sample.purpose)
        recent.append(sample.request_id)
        if published.count % CANCEL_EVERY == 0:
            # A user changing their mind about a request published a moment ago,
            # whatever state it has reached by now.
            await cancel_request(running.store, recent[-3], "demo: cancelled by the user")
            published.cancelled += 1
        if time.monotonic() >= next_report:
            progress.tick(published.count, time.monotonic() - begin)
            next_report += 1.0
        await asyncio.sleep(max(0.0, begin + published.count * interval - time.monotonic()))
    say(f"published {published.count} requests; waiting for them to settle")
    deadline = time.monotonic() + SETTLE_SECONDS
    while not stop.is_set() and time.monotonic() < deadline:
        known = set(tracker.requests)
        if len(known) >= published.count and tracker.settled(known) >= len(known):
            break
        progress.tick(published.count, time.monotonic() - begin)
        await asyncio.sleep(1.0)
    return published


async def _first_request(
    nc: Client,
    tracker: RequestTracker,
    sample: Sample,
    published: Published,
    stop: asyncio.Event,
) -> None:
    """Publish the first sample alone and wait until a worker has taken it: the load starts
    once the workers are up, not while they are still starting."""
    started = time.monotonic()
    await publish_request(nc, encode(sample.body), sample.request_id)
    published.add(sample.request_id, sample.purpose)
    while sample.request_id not in tracker.requests and not stop.is_set():
        if time.monotonic() - started > WORKERS_START_SECONDS:
            raise RuntimeError(
                f"no worker took a request within {WORKERS_START_SECONDS:g} s; see the"
                " worker-*.log files in the data directory"
            )
        await asyncio.sleep(0.05)
    say(f"workers are up: the first request was taken after {time.monotonic() - started:.1f} s")


def _examples(tracker: RequestTracker) -> list[str]:
    """Requests worth explaining: a placement by latency, and one that failed."""
    wanted = (
        (State.BOUND, "GLowLatencyPriority"), (State.FAILED, None), (State.BOUND, None),
    )  # fmt: skip
    found: list[str] = []
    for state, policy in wanted:
        for request_id, progress in tracker.requests.items():
            if progress.state is state and policy in (None, progress.policy):
                if request_id not in found:
                    found.append(request_id)
                break
    return found[:2]
