"""Secrets an installation makes for itself: generated once into the data directory, readable
by its owner only (mode 0600), and the same for every process that shares that directory."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from gsch.runtime.config import read_secret

CONTINUE_SECRET = "continue.secret"


class SecretFileError(Exception):
    """A secret file exists but cannot serve: empty, or readable by others."""


def installation_secret(data_path: Path, name: str) -> str:
    """The secret in `data_path/name`, created on first use with 32 random bytes.

    Written to a private temporary file and hard-linked into place, which fails if the name
    exists: processes starting together on one data directory agree on one secret (whoever
    loses the race reads the winner's complete file). A file others may read is refused, not
    silently used: a leaked secret is no secret."""
    path = data_path / name
    if not path.exists():
        data_path.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=data_path, prefix=f".{name}.")  # 0600
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_hex(32) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return _existing(path)


def _existing(path: Path) -> str:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SecretFileError(
            f"{path} is readable by others (mode {mode:o}); chmod 600 it or delete it to have"
            " a new one generated"
        )
    text = read_secret(str(path))
    if not text:
        raise SecretFileError(f"{path} is empty; delete it to have a new one generated")
    return text
