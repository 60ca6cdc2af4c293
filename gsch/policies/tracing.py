"""What a level's explanation says, built from what its scan collected: scores per plugin,
the node filters' reasons over the level, and reasons per cluster, bounded so that a level
over thousands of clusters still makes a small event."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from gsch.model.events import LevelTrace
from gsch.model.request import Request
from gsch.policies.framework import MAX_LISTED, Candidate, ScorePlugin, Tiered
from gsch.policies.search import LevelScan

TOP = 5  # entries shown per score plugin


def level_trace(
    index: int,
    candidates: tuple[str, ...],
    scan: LevelScan,
    scores: dict[str, float],
    plugin_scores: dict[str, dict[str, float]],
    chosen: str | None,
) -> LevelTrace:
    return LevelTrace(
        index=index,
        candidates=candidates,
        rejections=_capped(scan.rejections, scan.notes),
        scores=scores,
        chosen=chosen,
        notes=scan.notes,
        used=chosen is not None,
        plugin_scores=plugin_scores,
        filtered={
            reason: f"{count}/{scan.nodes} nodes" for reason, count in scan.filtered.most_common()
        },
    )


def node_plugin_scores(
    request: Request, candidates: Sequence[Candidate], plugins: Sequence[ScorePlugin]
) -> dict[str, dict[str, float]]:
    """Each node score plugin's own score of the best few clusters' chosen nodes. A tiered
    plugin's two tiers are listed apart, each in its own units."""
    top = candidates[:TOP]
    scores: dict[str, dict[str, float]] = {}
    for plugin in plugins:
        for c in top:
            label, value = plugin.label, plugin.score(request, c.node)
            if isinstance(plugin.score, Tiered):
                measured, value = plugin.score.shown(request, c.node)
                label = label if measured else f"{label}, {plugin.score.fallback_label}"
            # + 0.0: a score of -0.0 (0 ms, negated) reads as 0.
            scores.setdefault(label, {})[f"{c.cluster}/{c.node.name}"] = round(value, 3) + 0.0
    return scores


def _capped(rejections: dict[str, list[str]], notes: dict[str, str]) -> dict[str, list[str]]:
    """At most MAX_LISTED clusters' reasons in an event; the rest summarised in a note."""
    if len(rejections) <= MAX_LISTED:
        return rejections
    names = list(rejections)
    kept = {name: rejections[name] for name in names[:MAX_LISTED]}
    rest = Counter("; ".join(rejections[name]) for name in names[MAX_LISTED:])
    common = "; ".join(f"{reason} ({count})" for reason, count in rest.most_common(3))
    notes["more rejected"] = f"{len(names) - MAX_LISTED} more clusters rejected: {common}"
    return kept
