"""Who may use a read model file: any number of API processes at once (each keeps it up to
date from the log), or one rebuild alone.

A rebuild deletes the file and writes a new one. An API that had it open would go on serving
the deleted file while the new one on disk fell behind, so the two exclude each other: an API
holds a shared lock on `<database>.lock` for as long as it runs, a rebuild an exclusive one,
and neither waits for the other: the one that comes second refuses with what to do instead.
The kernel drops the lock with its process, so a crashed API never blocks a rebuild.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class ReadModelBusy(Exception):
    """The read model is in use by a process that excludes the caller."""


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


@contextlib.contextmanager
def _locked(db_path: Path, mode: int) -> Iterator[bool]:
    """Try to take the lock in `mode` (shared or exclusive) without waiting; yields whether
    it was taken, and holds it until the block ends."""
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def serving(db_path: Path) -> Iterator[None]:
    """Held by an API process while it projects into and reads from `db_path`."""
    with _locked(db_path, fcntl.LOCK_SH) as taken:
        if not taken:
            raise ReadModelBusy(
                f"the read model {db_path} is being rebuilt (`gsch projections rebuild`);"
                " start the API once the rebuild has finished"
            )
        yield


@contextlib.contextmanager
def rebuilding(db_path: Path, serving_api: str | None = None) -> Iterator[None]:
    """Held by `gsch projections rebuild` while it replaces `db_path`. `serving_api`: the
    address a running API announced, named in the refusal."""
    with _locked(db_path, fcntl.LOCK_EX) as taken:
        if not taken:
            who = f" ({serving_api})" if serving_api else ""
            raise ReadModelBusy(
                f"the read model {db_path} is in use by a running gsch API{who}: stop the"
                " API first, then rebuild (an API that starts without the file replays the"
                " log into a new one by itself)"
            )
        yield
