"""How commands print: the `-o/--output` flag, JSON documents, and the text forms of a
request, a table and a quantity.

Everything printed comes from users somewhere (ids, reasons, names, cancel reasons, errors
relayed from clusters), so text goes through `clean`: control characters and bidirectional
overrides are shown escaped (`\\x1b`), never sent to the terminal, where they could move the
cursor, recolour or rewrite what was printed before. JSON output escapes every non-ASCII
character, so it is as safe in a terminal as it is for `jq`.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

# C0 and C1 controls, DEL, and the bidirectional embeddings, overrides and isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(value: object) -> str:
    """`value` as text that is safe to print: every unsafe character escaped."""
    return _UNSAFE.sub(_escaped, str(value))


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def add_output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="output format (default: %(default)s)",
    )


def print_json(value: Any) -> None:
    """One JSON document on stdout (ASCII only: escapes cannot reach the terminal raw)."""
    print(json.dumps(value, indent=2, ensure_ascii=True))


def one_line(request: dict[str, Any]) -> str:
    """A request as the API returns it, in one line: id, state, placement and reason."""
    placements = request.get("placements") or (
        [request["placement"]] if request.get("placement") else []
    )
    where = ", ".join(f"{p.get('cluster')}/{p.get('node')}" for p in placements)
    where = f" on {where}" if where else ""
    reason = f" ({request['reason']})" if request.get("reason") else ""
    return clean(f"{request.get('id')}: {request.get('state')}{where}{reason}")


def table(rows: list[list[str]]) -> str:
    """Rows (the first is the header) as left-aligned columns two spaces apart; the last
    column is not padded (it may be long: a reason)."""
    cells = [[clean(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_BINARY_UNITS = (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))


def bytes_text(amount: int) -> str:
    """A memory amount as Kubernetes writes quantities: `64Gi`, `1.5Gi`, `512Mi`, `100`."""
    for unit, size in _BINARY_UNITS:
        if abs(amount) >= size:
            return f"{amount / size:.1f}".removesuffix(".0") + unit
    return str(amount)
