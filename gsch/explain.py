"""Explanations as a person reads them (for `gsch explain` and `gsch plan`)."""

from __future__ import annotations

from typing import Any


def format_explanation(explanation: dict[str, Any] | None) -> str:
    if not explanation:
        return "no decision recorded yet"
    levels = explanation.get("levels") or []
    lines = []
    for trace in levels:
        index = int(trace.get("index", 0)) + 1
        candidates = ", ".join(trace.get("candidates") or []) or "none"
        chosen = trace.get("chosen")
        outcome = f"chose {chosen}" if chosen else "placed nothing"
        lines.append(f"level {index} [{candidates}]: {outcome}")
        scores = trace.get("scores") or {}
        if scores:
            ranked = sorted(scores.items(), key=lambda item: -float(item[1]))
            lines.append("  scores: " + ", ".join(f"{name} {value:g}" for name, value in ranked))
        for cluster, reasons in (trace.get("rejections") or {}).items():
            lines.append(f"  {cluster}: " + "; ".join(reasons))
        for subject, note in (trace.get("notes") or {}).items():
            lines.append(f"  note ({subject}): {note}")
    lines.append(f"summary: {explanation.get('summary', '')}")
    return "\n".join(lines)
