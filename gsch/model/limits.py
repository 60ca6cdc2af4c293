"""How large a request may be, field by field, and how much of a bad value a reason repeats.

Every field has a bound, checked at intake with a reason that names the field and the limit,
so that nothing a sender writes can make an event, a reason or a listing grow without end:
a request's events must each fit in one message of the log (the server's max payload), and
its reasons are shown in listings and terminals. No I/O.
"""

from __future__ import annotations

import itertools
import unicodedata
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from gsch.model.events import Explanation, LevelTrace
from gsch.model.forms import Fields, Invalid
from gsch.model.request import NAME_PATTERN

# How much of a value a reason repeats, and how long a reason or a field path may be.
SHOWN_CHARS = 64
MAX_PROBLEM_CHARS = 512
MAX_FIELD_CHARS = 256  # our own paths reach ~130 (nodeAffinity terms)

# Kubernetes' own bounds: a namespace (and so `<project>-<workspace>`'s parts) is a DNS
# label of at most 63 characters; a user name is free text, held to a subdomain's length.
MAX_LABEL_CHARS = 63
MAX_USER_CHARS = 253
MAX_SELECTOR_CHARS = 512
MAX_POD_CHARS = MAX_LABEL_CHARS + 1 + 253  # namespace/name

V = TypeVar("V")
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True)
class CountLimits:
    """The configurable counts (`[intake]`): how many levels, clusters and documents."""

    max_levels: int = 16
    max_clusters_per_level: int = 128
    max_clusters: int = 256  # entries over all levels (a selector counts as one)
    max_documents: int = 32


def shown(value: object) -> str:
    """`repr(value)`, cut to a length a reason can carry."""
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}… ({len(text) - SHOWN_CHARS} more characters)"


def bounded(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def _printable(text: str) -> bool:
    # Control and format characters (category C*: escapes, bidi overrides, zero-width
    # joiners) would reach terminals and logs through listings.
    return not any(unicodedata.category(char).startswith("C") for char in text)


def _check_text(field: str, value: str | None, limit: int) -> None:
    if value is None:
        return
    if not value:
        raise Invalid(field, "must not be empty")
    if len(value) > limit:
        raise Invalid(field, f"is {len(value)} characters long, at most {limit}")
    if not _printable(value):
        raise Invalid(field, f"{shown(value)} contains control or format characters")


def check_field_limits(fields: Fields, limits: CountLimits) -> None:
    """Raise `Invalid` for the first field over its bound."""
    for field, value, limit in (
        ("user_name", fields.user_name, MAX_USER_CHARS),
        ("workspace_name", fields.workspace_name, MAX_LABEL_CHARS),
        ("workspace_uid", fields.workspace_uid, MAX_LABEL_CHARS),
        ("project_name", fields.project_name, MAX_LABEL_CHARS),
        ("namespace", fields.namespace, MAX_LABEL_CHARS),
    ):
        _check_text(field, value, limit)
    source, paths = fields.source, fields.paths
    if source is not None:
        for where, name in ((paths.source, source.cluster), (paths.source_node, source.node)):
            if name is not None and not NAME_PATTERN.match(name):
                raise Invalid(where, f"{shown(name)} is not a valid name")
        _check_text(paths.source_pod, source.pod, MAX_POD_CHARS)
    documents = len(fields.workload)
    if documents > limits.max_documents:
        raise Invalid("workload", f"has {documents} documents, at most {limits.max_documents}")


def check_level_counts(
    levels: tuple[tuple[str, ...], ...], where: str, limits: CountLimits
) -> None:
    """The number of levels, of clusters in a level and in all levels, and selector lengths."""
    if len(levels) > limits.max_levels:
        raise Invalid(where, f"has {len(levels)} levels, at most {limits.max_levels}")
    total = 0
    for index, level in enumerate(levels):
        if len(level) > limits.max_clusters_per_level:
            raise Invalid(
                f"{where}[{index}]",
                f"has {len(level)} clusters, at most {limits.max_clusters_per_level} per level",
            )
        total += len(level)
        for entry in level:
            if len(entry) > MAX_SELECTOR_CHARS:
                raise Invalid(
                    f"{where}[{index}]",
                    f"an entry is {len(entry)} characters long, at most {MAX_SELECTOR_CHARS}",
                )
    if total > limits.max_clusters:
        raise Invalid(where, f"names {total} clusters in all, at most {limits.max_clusters}")


# --- explanations ------------------------------------------------------------------------

# An explanation rides in a request's events; the planner bounds what it lists per level, but
# a fleet of thousands of clusters behind one selector still scores them all. Beyond this
# many entries it is measured, and shortened when over the budget.
MAX_EXPLANATION_BYTES = 256 * 1024
_MEASURE_OVER_ENTRIES = 512
KEPT_ENTRIES = 64  # per map of a level, when shortened
MAX_SUMMARY_CHARS = 8192


def _entries(explanation: Explanation) -> int:
    return sum(
        len(t.candidates) + len(t.rejections) + len(t.scores) + len(t.notes) + len(t.filtered)
        for t in explanation.levels
    )


def _first(mapping: dict[str, V]) -> dict[str, V]:
    return dict(itertools.islice(mapping.items(), KEPT_ENTRIES))


def _shortened(trace: LevelTrace) -> LevelTrace:
    scores = dict(sorted(trace.scores.items(), key=lambda kv: -kv[1])[:KEPT_ENTRIES])
    return msgspec.structs.replace(
        trace,
        candidates=trace.candidates[:KEPT_ENTRIES],
        rejections={k: v[:8] for k, v in _first(trace.rejections).items()},
        scores=scores,
        notes=_first(trace.notes),
        plugin_scores={k: _first(v) for k, v in _first(trace.plugin_scores).items()},
        filtered=_first(trace.filtered),
    )


def fit_explanation(explanation: Explanation, budget: int = MAX_EXPLANATION_BYTES) -> Explanation:
    """`explanation`, or a shorter one that fits in `budget` bytes: each level keeps its
    first entries (its best scores), then, if even that is too large, only the summary."""
    if _entries(explanation) <= _MEASURE_OVER_ENTRIES:
        return explanation
    if len(_encoder.encode(explanation)) <= budget:
        return explanation
    summary = bounded(explanation.summary, MAX_SUMMARY_CHARS)
    shortened = Explanation(
        tuple(_shortened(trace) for trace in explanation.levels),
        f"{summary} (explanation shortened to {KEPT_ENTRIES} entries per level)",
    )
    if len(_encoder.encode(shortened)) <= budget:
        return shortened
    return Explanation((), f"{summary} (explanation too large to record)")
