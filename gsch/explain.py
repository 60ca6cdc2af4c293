"""Explanations as a person reads them (for `gsch explain` and `gsch plan`).

Works on the JSON form (what the API returns), and tolerates explanations recorded before a
field existed: every field is optional.
"""

from __future__ import annotations

from typing import Any


def format_explanation(explanation: dict[str, Any] | None) -> str:
    if not explanation:
        return "no decision recorded yet"
    lines = []
    for trace in explanation.get("levels") or []:
        lines.extend(_level(trace))
    lines.append(f"summary: {explanation.get('summary', '')}")
    return "\n".join(lines)


def _level(trace: dict[str, Any]) -> list[str]:
    index = int(trace.get("index", 0)) + 1
    candidates = ", ".join(trace.get("candidates") or []) or "none"
    chosen = trace.get("chosen")
    outcome = f"chose {chosen}" if chosen else "placed nothing"
    used = " (level used)" if trace.get("used") else ""
    lines = [f"level {index} [{candidates}]: {outcome}{used}"]
    scores = trace.get("scores") or {}
    if scores:
        lines.append("  scores: " + _ranked(scores))
    # Per plugin, the entries come in the order the level ranked its clusters.
    for plugin, entries in (trace.get("plugin_scores") or {}).items():
        if entries:
            lines.append(f"  {plugin}: " + ", ".join(f"{n} {v:g}" for n, v in entries.items()))
    filtered = trace.get("filtered") or {}
    if filtered:
        lines.append("  filtered: " + "; ".join(f"{n}: {why}" for why, n in filtered.items()))
    for cluster, reasons in (trace.get("rejections") or {}).items():
        lines.append(f"  {cluster}: " + "; ".join(reasons))
    for subject, note in (trace.get("notes") or {}).items():
        lines.append(f"  note ({subject}): {note}")
    return lines


def _ranked(scores: dict[str, float]) -> str:
    ranked = sorted(scores.items(), key=lambda item: (-float(item[1]), item[0]))
    return ", ".join(f"{name} {value:g}" for name, value in ranked)
