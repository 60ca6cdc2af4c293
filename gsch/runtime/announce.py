"""What a running gsch advertises in its data directory, so that the other commands find it:
`nats.url` (the embedded nats-server) and `api.url` (the HTTP API). Each file exists only
while what it names runs: a clean stop removes it. A file left behind by a process that was
killed names an address nobody answers at, and the commands say so (naming the file).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

NATS = "nats.url"
API = "api.url"


def announcement(data_dir: Path, name: str) -> Path:
    return data_dir / name


def announced(data_dir: Path, name: str) -> str | None:
    """The address the data dir advertises under `name`, or None."""
    try:
        text = announcement(data_dir, name).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def announce(data_dir: Path, name: str, url: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = announcement(data_dir, name)
    # Written whole, then renamed: a reader never sees half an address.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(url + "\n")
    partial.replace(path)


def withdraw(data_dir: Path, name: str, url: str) -> None:
    """Remove the announcement if it still names `url` (another process may have taken the
    data dir over since; its announcement is not ours to remove)."""
    if announced(data_dir, name) == url:
        announcement(data_dir, name).unlink(missing_ok=True)


@contextlib.contextmanager
def announcing(data_dir: Path, name: str, url: str) -> Iterator[None]:
    announce(data_dir, name, url)
    try:
        yield
    finally:
        withdraw(data_dir, name, url)
