"""What the operator configures for planning, as one value every plan receives: the clusters
each project may use, and how old a latency measurement may be before it stops ranking.

Both come from the configuration file (`[projects.<name>]`, `[planner]`), not from the log:
they are policy an operator writes down and reviews, like the intake's allowed kinds, and
every worker and the dry run are started from the same file, so they plan under the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gsch.model.request import selector_requirements


@dataclass(frozen=True)
class ProjectClusters:
    """The clusters a project may use: named ones, and those matching any of the selectors."""

    names: frozenset[str] = frozenset()
    selectors: tuple[tuple[tuple[str, str], ...], ...] = ()

    @classmethod
    def of(cls, names: list[str], selectors: list[str]) -> ProjectClusters:
        return cls(frozenset(names), tuple(selector_requirements(s) for s in selectors))

    def allows(self, name: str, labels: Mapping[str, str]) -> bool:
        if name in self.names:
            return True
        return any(all(labels.get(k) == v for k, v in wanted) for wanted in self.selectors)


@dataclass(frozen=True)
class PlannerRules:
    # Seconds; a latency report older than this (against the snapshot's clock) does not rank.
    # None: measurements never expire (a simulated topology's latencies are constant).
    max_latency_age: float | None = None
    # Empty: no project restricts its clusters. Otherwise a request naming a project is
    # placed only on that project's clusters, and a project not listed has none.
    projects: Mapping[str, ProjectClusters] = field(default_factory=dict)


DEFAULT_RULES = PlannerRules()
