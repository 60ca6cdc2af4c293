"""Explanations as a person reads them (for `gsch explain` and `gsch plan`).

Works on the JSON form (what the API returns), and tolerates explanations recorded before a
field existed: every field is optional. Every line is `clean`: explanations quote names and
reasons that came from users and clusters.
"""

from __future__ import annotations

from typing import Any

from gsch.cli.output import clean

# Why a request that has no explanation has none, by its state.
_WITHOUT_PLAN = {
    "rejected": "no plan was made: the request was rejected when it arrived (reason above)",
    "cancelled": "no plan was made: the request was cancelled before a worker planned it",
    "queued": "no decision recorded yet: the request waits for a worker",
    "scheduling": "no decision recorded yet: a worker is planning it",
}


def format_explanation(explanation: dict[str, Any] | None) -> str:
    if not explanation:
        return "no decision recorded yet"
    lines = []
    for trace in explanation.get("levels") or []:
        lines.extend(_level(trace))
    lines.append(f"summary: {explanation.get('summary', '')}")
    return "\n".join(clean(line) for line in lines)


def explain_request(request: dict[str, Any]) -> str:
    """The explanation of a request as the API returns it, or why it has none."""
    explanation = request.get("explanation")
    if explanation:
        return format_explanation(explanation)
    return _WITHOUT_PLAN.get(str(request.get("state")), format_explanation(None))


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
            shown = ", ".join(f"{n} {_number(v)}" for n, v in entries.items())
            lines.append(f"  {plugin}: {shown}")
    filtered = trace.get("filtered") or {}
    if filtered:
        lines.append("  filtered: " + "; ".join(f"{n}: {why}" for why, n in filtered.items()))
    for cluster, reasons in (trace.get("rejections") or {}).items():
        lines.append(f"  {cluster}: " + "; ".join(reasons))
    for subject, note in (trace.get("notes") or {}).items():
        # Notes about the request as a whole are numbered ("note 1"); others name a cluster.
        about = "" if subject.startswith("note ") else f" ({subject})"
        lines.append(f"  note{about}: {note}")
    return lines


def _number(value: float) -> str:
    return f"{value + 0.0:g}"  # + 0.0: -0.0 (0 ms, negated) reads as 0


def _ranked(scores: dict[str, float]) -> str:
    ranked = sorted(scores.items(), key=lambda item: (-float(item[1]), item[0]))
    return ", ".join(f"{name} {_number(value)}" for name, value in ranked)
