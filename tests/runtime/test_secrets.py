"""Secrets an installation generates for itself: private, stable, shared by its processes."""

from __future__ import annotations

import asyncio
import re
import stat
import sys
from pathlib import Path

import pytest

from gsch.runtime.secrets import SecretFileError, installation_secret


def test_generated_once_private_and_then_the_same(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = installation_secret(data, "continue.secret")
    assert len(first) == 64
    assert stat.S_IMODE((data / "continue.secret").stat().st_mode) == 0o600
    assert installation_secret(data, "continue.secret") == first
    assert installation_secret(tmp_path / "other", "continue.secret") != first
    assert sorted(p.name for p in data.iterdir()) == ["continue.secret"]  # no leftovers


async def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from gsch.runtime.secrets import"
        " installation_secret; print(installation_secret(Path(sys.argv[1]), 's'))"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, str(tmp_path), stdout=asyncio.subprocess.PIPE
        )
        for _ in range(6)
    ]
    outputs = {(await p.communicate())[0] for p in processes}
    assert len(outputs) == 1
    assert outputs.pop().strip() == (tmp_path / "s").read_text().strip().encode()


@pytest.mark.parametrize(("mode", "text", "words"), [
    (0o644, "x\n", "readable by others (mode 644)"),
    (0o600, "\n", "is empty"),
])  # fmt: skip
def test_a_secret_file_that_cannot_serve_is_refused(
    tmp_path: Path, mode: int, text: str, words: str
) -> None:
    path = tmp_path / "continue.secret"
    path.write_text(text)
    path.chmod(mode)
    with pytest.raises(SecretFileError, match=re.escape(words)):
        installation_secret(tmp_path, "continue.secret")
