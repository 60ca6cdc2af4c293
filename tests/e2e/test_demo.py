"""`gsch demo` runs to completion: embedded nats-server, competing workers, API, simulator."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_demo_runs_to_completion_and_summarises(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gsch", "demo", "--duration", "4", "--rate", "25",
         "--workers", "2", "--api-listen", "127.0.0.1:0", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "summary" in out
    published = int(re.search(r"published:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    assert published >= 50
    bound = int(re.search(r"bound:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    assert bound > published // 2
    assert re.search(r"rejected:\s+\d+", out), "the demo's invalid samples must show as rejected"
    for form in ("gedge-v2", "gedge-v4", "native"):
        assert form in out
    assert "API: http://127.0.0.1:" in out
    # The embedded server stopped with the demo: nothing of ours is left running.
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, check=False)
    assert leftover.stdout.strip() == b""
