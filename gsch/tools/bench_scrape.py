"""What a benchmark reads from the workers' `/metrics` around a load: commit conflicts by
scope, and what their group committers did (batches sent, decisions per batch, how long a
decision waited to be sent and a batch for its answer). Counters and histograms are summed
over the workers and taken as the difference between two scrapes."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

# One sample: its name and its labels, sorted.
Key = tuple[str, tuple[tuple[str, str], ...]]
Samples = dict[Key, float]

_CONFLICTS = "gsch_placement_conflicts_total"
_BATCHES = "gsch_group_commit_batches_total"
_DECISIONS = "gsch_group_commit_decisions"
_ROUND_TRIP = "gsch_group_commit_round_trip_seconds"
_WAIT = "gsch_group_commit_wait_seconds"
_HELD = "gsch_commit_held_total"
_INTENTS_SENT = "gsch_commit_intents_sent_total"
_INTENTS_SETTLED = "gsch_commit_intents_settled_total"


async def scrape(ports: list[int]) -> Samples:
    """Every sample of the processes on `ports`, summed by name and labels (a process that
    does not answer counts as nothing)."""
    totals: Samples = {}
    async with aiohttp.ClientSession() as session:
        for port in ports:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    text = await response.text()
                for family in text_string_to_metric_families(text):
                    for sample in family.samples:
                        key = (sample.name, tuple(sorted(sample.labels.items())))
                        totals[key] = totals.get(key, 0.0) + float(sample.value)
    return totals


def between(before: Samples, after: Samples) -> Samples:
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def conflicts(samples: Samples) -> dict[str, int]:
    """Commit conflicts by scope (request, node, node_seen)."""
    return {
        dict(labels)["scope"]: int(value)
        for (name, labels), value in samples.items()
        if name == _CONFLICTS
    }


def group_commits(samples: Samples, seconds: float) -> dict[str, Any]:
    """Batches per second over `seconds`, decisions per batch (mean and p50/p99 by bucket
    bounds) and the waits, mean and p99 (the bucket's upper bound, in ms)."""
    batches = _value(samples, _BATCHES)
    decisions = _value(samples, _DECISIONS + "_sum")
    return {
        "batches": int(batches),
        "decisions": int(decisions),
        "batches_per_second": round(batches / seconds, 1) if seconds > 0 else None,
        "decisions_per_batch": round(decisions / batches, 2) if batches else None,
        "decisions_per_batch_p50": _quantile(samples, _DECISIONS, 0.5),
        "decisions_per_batch_p99": _quantile(samples, _DECISIONS, 0.99),
        "wait_ms": _mean_ms(samples, _WAIT),
        "wait_p99_ms": _ms(_quantile(samples, _WAIT, 0.99)),
        "round_trip_ms": _mean_ms(samples, _ROUND_TRIP),
        "round_trip_p99_ms": _ms(_quantile(samples, _ROUND_TRIP, 0.99)),
        # Commit intents: messages sent (intents and answers), decisions held back for
        # another worker's batch in flight, others' reservations that expired unanswered.
        "intent_messages": int(_value(samples, _INTENTS_SENT)),
        "held": int(_value(samples, _HELD)),
        "intents_expired": int(_labelled(samples, _INTENTS_SETTLED, "how", "expired")),
    }


def _value(samples: Samples, name: str) -> float:
    return sum(value for (found, _), value in samples.items() if found == name)


def _labelled(samples: Samples, name: str, label: str, value: str) -> float:
    return sum(
        found
        for (n, labels), found in samples.items()
        if n == name and dict(labels).get(label) == value
    )


def _mean_ms(samples: Samples, histogram: str) -> float | None:
    count = _value(samples, histogram + "_count")
    return round(1000 * _value(samples, histogram + "_sum") / count, 2) if count else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 2)


def _quantile(samples: Samples, histogram: str, share: float) -> float | None:
    """The upper bound of the bucket holding the `share` quantile (None: no observations;
    inf: beyond the last bucket)."""
    buckets = _buckets(samples, histogram)
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    for bound, count in buckets:
        if count >= share * total:
            return bound
    return math.inf


def _buckets(samples: Mapping[Key, float], histogram: str) -> list[tuple[float, float]]:
    found = [
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == histogram + "_bucket"
    ]
    return sorted(found)
