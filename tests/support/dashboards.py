"""The shipped Grafana dashboards as data, for the structure tests and the live query test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def shipped(repo_root: Path) -> dict[str, dict[str, Any]]:
    folder = repo_root / "config" / "grafana" / "dashboards"
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def exprs(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]
