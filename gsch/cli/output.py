"""How commands print: the `-o/--output` flag and the text forms of a request and a table."""

from __future__ import annotations

import argparse
from typing import Any


def add_output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="output format (default: %(default)s)",
    )


def one_line(request: dict[str, Any]) -> str:
    """A request as the API returns it, in one line: id, state, placement and reason."""
    placement = request.get("placement") or {}
    where = f" on {placement.get('cluster')}/{placement.get('node')}" if placement else ""
    reason = f" ({request['reason']})" if request.get("reason") else ""
    return f"{request.get('id')}: {request.get('state')}{where}{reason}"


def table(rows: list[list[str]]) -> str:
    """Rows (the first is the header) as left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )
