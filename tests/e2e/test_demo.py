"""`gsch demo` runs to completion: embedded nats-server, competing workers, API, simulator.
Its summary is what `gsch audit` finds in the log; it says which failures were meant; kept
running it tells how to look around, and otherwise it leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.cli import gsch

STATES = ("bound", "failed", "cancelled", "rejected", "queued", "scheduling", "scheduled")
FAST = ("--duration", "3", "--rate", "25", "--workers", "2", "--api-listen", "127.0.0.1:0")


def summary_counts(out: str) -> dict[str, int]:
    summary = out[out.index("\nsummary\n") :]
    found = re.findall(rf"^  ({'|'.join(STATES)}):\s+(\d+)", summary, re.MULTILINE)
    return {state: int(count) for state, count in found}


def test_demo_runs_to_completion_summarises_and_cleans_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gsch", "demo", *FAST],
        capture_output=True, text=True, timeout=240, check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where its temporary data dir goes
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    published = int(re.search(r"published:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    assert published >= 50
    counts = summary_counts(out)
    assert counts["bound"] > published // 2
    assert sum(counts.values()) == published  # every request settled, each counted once
    # The failures are samples made to fail, and the summary says so.
    assert re.search(r"rejected:\s+\d+\s+\(\d+ on purpose: invalid samples", out)
    # "by form" accounts for every request, the unreadable ones included.
    by_form = re.search(r"by form:\s+(.*) \(all (\d+)\)", out)
    assert by_form is not None
    assert int(by_form.group(2)) == published
    forms = dict(pair.split("=") for pair in by_form.group(1).split(", "))
    assert {"gedge-v2", "gedge-v4", "native"} <= set(forms)
    assert sum(int(n) for n in forms.values()) == published
    assert "API: http://127.0.0.1:" in out
    assert out.count("still waiting") <= 12  # while counts stand still: every 5 s, not 1 s
    # Nothing of the demo is left: no process, no temporary directory.
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, check=False)
    assert leftover.stdout.strip() == b""
    assert list(tmp_path.iterdir()) == []


async def test_a_demo_kept_running_agrees_with_audit(tmp_path: Path) -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsch", "demo", *FAST, "--keep-running",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert demo.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(180):
            while not lines or not lines[-1].startswith("  gsch audit --data-dir "):
                line = await demo.stdout.readline()
                assert line, "the demo ended early:\n" + "".join(lines)
                lines.append(line.decode())
        out = "".join(lines)
        # Ready to paste: the commands name the demo's data dir, and they work.
        data_dir = lines[-1].split("--data-dir ", 1)[1].strip()
        assert Path(data_dir).parent == tmp_path
        audit = await gsch("audit", "--data-dir", data_dir)
        assert audit.code == 0, audit.err
        audited = dict(re.findall(r"(\w+)=(\d+)", audit.out.split(";")[0]))
        assert {k: int(v) for k, v in audited.items()} == summary_counts(out)
        explain = next(line for line in lines if line.startswith("  gsch explain "))
        explained = await gsch(*explain.split()[1:])
        assert explained.code == 0, explained.err
    finally:
        if demo.returncode is None:
            demo.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(demo.wait(), 60) == 0
    assert (tmp_path / Path(data_dir).name).is_dir()  # kept running: its data stays
