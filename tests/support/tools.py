"""Binaries of Debian's prometheus package, which CI installs and a developer may not have."""

from __future__ import annotations

import os
import shutil

import pytest


def prometheus_tool(name: str) -> str:
    """The path of `prometheus` or `promtool`: a failure in CI (.ci/run installs them), a
    skip elsewhere."""
    found = shutil.which(name)
    if found is not None:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed; .ci/run installs Debian's prometheus package")
    pytest.skip(f"{name} is not installed (apt-get install prometheus); CI installs it")
