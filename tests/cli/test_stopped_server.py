"""Finding the server: `gsch serve` advertises its NATS and API addresses in its data
directory while it runs and withdraws them when it stops; a command whose server is not
there says so within seconds, naming the address and where it came from."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from gsch.runtime.embedded import free_port
from tests.support.cli import CLASS_NAME, gsch
from tests.support.waits import eventually

REQUEST = '{"policy": "GMostRequestedPriority", "select_clusters": ["c1"], "workload": {}}'


async def test_serve_advertises_its_addresses_until_a_clean_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsch", "serve", "--roles", "api", "--data-dir", str(data),
        "--api-listen", "127.0.0.1:0",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await eventually(lambda: (data / "api.url").exists(), timeout=60)
        assert (data / "nats.url").read_text().startswith("nats://127.0.0.1:")
        # The commands find both without being told: the API on its free port, NATS too.
        listed = await gsch("get", "clusters", "-o", "json", "--data-dir", str(data))
        assert listed.code == 0, listed.err
        audited = await gsch("audit", "--data-dir", str(data))
        assert audited.code == 0, audited.err
        assert audited.out.startswith("0 requests")
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(serve.wait(), 30) == 0
    assert not (data / "api.url").exists()
    assert not (data / "nats.url").exists()


async def test_commands_whose_server_is_gone_say_so_within_seconds(tmp_path: Path) -> None:
    # What a gsch killed without stopping leaves behind: addresses nobody answers at.
    data = tmp_path / "data"
    data.mkdir()
    nats_url, api_url = f"nats://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    (data / "nats.url").write_text(nats_url + "\n")
    (data / "api.url").write_text(api_url + "\n")
    request = tmp_path / "request.json"
    request.write_text(REQUEST)
    where = ("--data-dir", str(data))
    runs = await asyncio.gather(
        gsch("audit", *where),
        gsch("cancel", "req-1", *where),
        gsch("submit", str(request), *where),
        gsch("get", "requests", *where),
        gsch("explain", "req-1", *where),
    )
    for run, (url, announcement) in zip(
        runs,
        [(nats_url, "nats.url")] * 3 + [(api_url, "api.url")] * 2,
        strict=True,
    ):
        assert run.code == 1, run
        assert run.seconds < 20, run  # a retry window of 3 s, plus starting Python
        assert run.out == ""
        assert url in run.err, run.err
        assert str(data / announcement) in run.err, run.err  # where the address came from
        assert not CLASS_NAME.search(run.err), run.err


async def test_without_any_server_the_command_says_how_to_start_one(tmp_path: Path) -> None:
    run = await gsch("audit", "--data-dir", str(tmp_path))
    assert run.code == 1
    assert "no NATS server to talk to" in run.err
    assert f"gsch serve --data-dir {tmp_path}" in run.err
    flag = await gsch("audit", "--nats", f"nats://127.0.0.1:{free_port()}")
    assert flag.code == 1
    assert "came from --nats" in flag.err
    listen = f"127.0.0.1:{free_port()}"
    api = await gsch("get", "clusters", "--data-dir", str(tmp_path),
                     env={"GSCH_API__LISTEN": listen})  # fmt: skip
    assert api.code == 1
    assert f"no gsch API answers at http://{listen} (connection refused)" in api.err
    assert "came from $GSCH_API__LISTEN" in api.err
