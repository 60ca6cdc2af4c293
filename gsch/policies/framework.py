"""The placement framework, after kube-scheduler's (`framework/interface.go`): what a plugin
is, what a profile composes, and the loop over a request's levels.

- Filters (`NodeFilter`, `ClusterFilter`) return None to pass or a `Status`: the reason a
  person reads, the plugin that said it, and a code: `UNSCHEDULABLE` when a change of cluster
  state could lift it (capacity, readiness) or `UNRESOLVABLE` when it could not (taints,
  selectors, names). What a request does next is decided from the codes, never the text.
- Score plugins (`ScorePlugin`) rank the nodes that pass; each declares how its scores map
  onto a common 0..100 scale (`Scale`), so a profile can weigh plugins of different ranges.
- PreScore: the state one plan needs beyond single nodes (`PlanState`: the per-request
  cluster bound, low latency's measurements from the source) is computed once per plan, in
  `Profile.pre_score`, and read by everything after it.
- A `Strategy` turns one level into placements: which clusters it scans, how it orders the
  candidates (each cluster's best node) and which of them it places on.

Two stages, as in GEdge's competition flow: inside one level each competing cluster is
filtered, its nodes filtered and scored; the cluster's best node stands for the cluster; the
strategy ranks the clusters and places. The first level that places is used.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from gsch.clusters.snapshot import ClusterSnapshot, ClusterView, NodeView
from gsch.model.events import Explanation, LevelTrace, Placement
from gsch.model.request import Request
from gsch.model.resources import Resources
from gsch.policies.rules import DEFAULT_RULES, PlannerRules

# --- filters --------------------------------------------------------------------------------


class Code(enum.Enum):
    # Could pass once cluster state changes (capacity freed, a node or cluster ready again):
    # a request refused only for such reasons waits for capacity instead of being retried.
    UNSCHEDULABLE = "unschedulable"
    # Nothing the clusters report can lift it (a taint, a selector, a name that is not there).
    UNRESOLVABLE = "unresolvable"


class Status(msgspec.Struct, frozen=True):
    """Why a filter rejected a node or a cluster. `reason` is what explanations show."""

    code: Code
    reason: str
    plugin: str

    @property
    def unschedulable(self) -> bool:
        return self.code is Code.UNSCHEDULABLE


def unschedulable(reason: str, plugin: str) -> Status:
    return Status(Code.UNSCHEDULABLE, reason, plugin)


def unresolvable(reason: str, plugin: str) -> Status:
    return Status(Code.UNRESOLVABLE, reason, plugin)


NodeFilter = Callable[[Request, NodeView], Status | None]
ClusterFilter = Callable[[Request, ClusterView | None, PlannerRules], Status | None]

# --- scores ---------------------------------------------------------------------------------

NodeScorer = Callable[[Request, NodeView], float]
# The ready nodes of a cluster that score highest in whole points, when its aggregates tell
# (None when they cannot).
TopNodes = Callable[[Request, ClusterView], tuple[str, ...] | None]
Variant = TypeVar("Variant", bound=Hashable)


@dataclass(frozen=True)
class Scale:
    """Where a plugin's own scores fall: `low` maps to 0 and `high` to 100 on the common
    scale, linearly; scores outside are clamped (the map never reverses an order)."""

    low: float
    high: float

    def normalised(self, raw: float) -> float:
        share = (raw - self.low) / (self.high - self.low)
        return 100.0 * min(1.0, max(0.0, share))


PERCENT = Scale(0.0, 100.0)


@dataclass(frozen=True)
class BoundSide:
    """One way of ordering clusters by what their best node could score, and the bound that
    order gives a request. `rank` places a cluster (its group and its value there, higher
    first) from its aggregates and the request's variant only, so requests alike there share
    one standing ranking; `limit` turns a group and value into an upper bound of any node's
    score for this request (non-decreasing in the value, so the ranking's order within a group
    is the bound's); `ceiling` is the limit over every request of the variant."""

    rank: Callable[[Any, ClusterView], tuple[Hashable, float]]
    limit: Callable[[Request, Hashable, float], float]
    ceiling: Callable[[Hashable, float], float]


@dataclass(frozen=True)
class ClusterBound(Generic[Variant]):
    """An upper bound of what any node of a cluster can score: the least of its sides' limits
    (most plugins have one side; a score that falls away on both sides of a best value, as
    balance does, has two). `variant`: the part of the request the rankings depend on."""

    variant: Callable[[Request], Variant]
    sides: tuple[BoundSide, ...]


def exact(_: Request, group: Hashable, value: float) -> float:
    """A side whose value is already the bound, whatever the request (see `BoundSide`)."""
    return value


def ceiling_is_value(_: Hashable, value: float) -> float:
    return value


@dataclass(frozen=True)
class ScorePlugin:
    """A named node scorer, with its scale and, when it has one, a cluster bound."""

    name: str
    score: NodeScorer
    weight: float = 1.0
    scale: Scale = PERCENT
    bound: ClusterBound[Any] | None = None
    # The nodes that score highest in whole points in a cluster, when the cluster's
    # aggregates tell: a visit scores only them unless the filters reject them all. One
    # alone is the only node a visit looks at, unless a filter rejects it.
    top_nodes: TopNodes | None = None

    @property
    def label(self) -> str:
        return self.name if self.weight == 1.0 else f"{self.name} x{self.weight:g}"


def combined(plugins: Sequence[ScorePlugin]) -> NodeScorer:
    """A profile's node score: the weighted sum of its plugins' normalised scores.

    Normalisation is needed only to add scores of different ranges; a plugin alone is
    scored in its own units. That is deliberate: the planner compares node scores in whole
    points (ties broken by a hash, see `search`), and a plugin's point is the resolution its
    author chose (1% free capacity, 0.01 ms of latency). Rescaling a lone plugin to 0..100
    would merge or split ties and choose other nodes than before, while any increasing map
    of one score ranks alike. So: one plugin -> its raw score (and the explanation shows
    it); several -> sum of weight x normalised, compared in whole points of the 0..100 scale.
    """
    if len(plugins) == 1:
        return plugins[0].score
    parts = tuple((p.weight, p.scale.normalised, p.score) for p in plugins)

    def total(request: Request, node: NodeView) -> float:
        return sum(weight * norm(score(request, node)) for weight, norm, score in parts)

    return total


@dataclass(frozen=True)
class Tiered:
    """A node score in two tiers: nodes `measured` can score rank above every node it
    cannot (it returns None: e.g. no latency known); those rank among themselves by
    `fallback`. Encoded as one float, so the inner loop compares plain numbers: the lower
    tier sits LOWER_TIER below zero, far below any measured score and wider apart than any
    fallback score can span. Explanations show the tiers apart (`shown`), never that offset:
    the lower tier's nodes under `fallback_label`."""

    measured: Callable[[Request, NodeView], float | None]
    fallback: NodeScorer
    fallback_label: str = "unmeasured nodes by the fallback score"

    def __call__(self, request: Request, node: NodeView) -> float:
        found = self.measured(request, node)
        return found if found is not None else LOWER_TIER + self.fallback(request, node)

    def shown(self, request: Request, node: NodeView) -> tuple[bool, float]:
        """(whether the node was measured, its score in that tier) as an explanation says it."""
        found = self.measured(request, node)
        return (True, found) if found is not None else (False, self.fallback(request, node))


def tiered(
    measured: Callable[[Request, NodeView], float | None],
    fallback: NodeScorer,
    fallback_label: str | None = None,
) -> Tiered:
    if fallback_label is None:
        return Tiered(measured, fallback)
    return Tiered(measured, fallback, fallback_label)


LOWER_TIER = -1e9


class Candidate(msgspec.Struct, frozen=True):
    cluster: str
    node: NodeView
    score: float


# Clusters compete on their best node's score in millionths of a point: finer than anything
# a person reads, and coarse enough that a cluster bound computed another way than the score
# (a few float roundings apart) still compares exactly, so a search that stops on bounds
# chooses what a full scan chooses. Equal there, the request's hash of the cluster decides
# (`search.order_of`).
MICRO = 1_000_000.0
BOUND_SLACK = 1e-9  # points: far above float rounding, far below a millionth


def micro(score: float) -> int:
    return round(score * MICRO)


# --- pre-score: the state of one plan -------------------------------------------------------


@dataclass(frozen=True)
class ClusterRanking:
    """Clusters ranked by a per-plan measurement instead of their best node's score."""

    # Higher is better; None when there is no measurement: such clusters rank last.
    rank: Callable[[str], float | None]
    plugin: str  # what the explanation calls the ranking
    unmeasured: str  # what the explanation says about a cluster without a measurement
    shown: Callable[[float], float] = float  # a rank as the explanation shows it
    # The clusters a selector selects that have a rank, as (-rank, name), best first (e.g.
    # the snapshot's standing latency order from the source), so a large level is walked,
    # not sorted.
    order: Callable[[tuple[tuple[str, str], ...]], Iterable[tuple[float, str]]] = (
        lambda requirements: ()
    )


@dataclass(frozen=True)
class SearchSide:
    """A bound side with the request fixed: `key` names its standing rankings in the snapshot
    (the same key always comes with the same `rank`)."""

    key: Hashable
    rank: Callable[[ClusterView], tuple[Hashable, float]]
    limit: Callable[[Hashable, float], float]


@dataclass(frozen=True)
class BoundSearch:
    """The node score's cluster bound for one plan: its sides, and the bound itself."""

    sides: tuple[SearchSide, ...]

    def bound(self, cluster: ClusterView) -> float:
        return min(side.limit(*side.rank(cluster)) for side in self.sides)


class PlanState(msgspec.Struct, frozen=True):
    """What PreScore computed once for a plan (kube's CycleState): every level reads it."""

    plugins: tuple[ScorePlugin, ...]  # how nodes are scored
    scorer: NodeScorer  # the same, as one function for the inner loop
    # The node score's cluster bound, the request fixed; None when the plugins have none.
    search: BoundSearch | None = None
    top_nodes: TopNodes | None = None  # the plugin's, when it is scored alone
    ranking: ClusterRanking | None = None
    notes: tuple[str, ...] = ()  # said once per level (e.g. a source that could not be found)
    # When set, nothing can be placed (e.g. the source pod is unknown): every cluster of every
    # level is rejected with this reason (UNRESOLVABLE: no capacity change lifts it; the
    # request is retried, not parked for capacity).
    blocked: str | None = None


# A profile's own PreScore step, for state beyond what its plugins declare.
PreScore = Callable[[Request, ClusterSnapshot, PlannerRules], PlanState]


# --- strategies -----------------------------------------------------------------------------


class LevelResult(msgspec.Struct, frozen=True):
    placements: tuple[Placement, ...]
    trace: LevelTrace
    unschedulable: bool  # some cluster of the level was refused for capacity or readiness


class LevelContext(msgspec.Struct, frozen=True):
    profile: Profile
    state: PlanState
    request: Request
    snapshot: ClusterSnapshot
    rules: PlannerRules
    index: int


class Strategy(Protocol):
    """How a level becomes placements (kube has one; GEdge's policies differ right here)."""

    @property
    def keeps_listed_order(self) -> bool:
        """The request's order of clusters is the preference (not their scores)."""
        ...

    @property
    def level_is_a_set(self) -> bool:
        """A level places on every cluster it names or on none: it cannot be cut down."""
        ...

    def place(self, context: LevelContext, listed: tuple[str, ...]) -> LevelResult: ...


# --- profiles and the plan ------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    name: str
    cluster_filters: Sequence[ClusterFilter]
    node_filters: Sequence[NodeFilter]
    scorers: tuple[ScorePlugin, ...]
    strategy: Strategy
    # Replaces the default PreScore (the profile's plugins and their bound) when set.
    prepare: PreScore | None = None
    node_scorer: NodeScorer = field(init=False)
    # The node score's cluster bound as a function of the request (None: no bound).
    bound_for: RequestBound | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_scorer", combined(self.scorers))
        object.__setattr__(self, "bound_for", combined_bound(self.name, self.scorers))

    @property
    def keep_listed_order(self) -> bool:
        return self.strategy.keeps_listed_order

    def pre_score(
        self, request: Request, snapshot: ClusterSnapshot, rules: PlannerRules
    ) -> PlanState:
        """PreScore, the one place per-plan state is computed."""
        if self.prepare is not None:
            return self.prepare(request, snapshot, rules)
        search = self.bound_for(request) if self.bound_for is not None else None
        top_nodes = self.scorers[0].top_nodes if len(self.scorers) == 1 else None
        return PlanState(self.scorers, self.node_scorer, search, top_nodes)


# The node score's cluster bound for a request.
RequestBound = Callable[[Request], BoundSearch]


def combined_bound(name: str, plugins: Sequence[ScorePlugin]) -> RequestBound | None:
    """The node score's cluster bound (see `combined`): the plugin's own when it is alone;
    for several, the weighted sum of their normalised ceilings, one side ranked by exactly
    that (normalising never reverses an order, so it is still a bound). None when some plugin
    has none."""
    bounds = [p.bound for p in plugins if p.bound is not None]
    if not bounds or len(bounds) < len(plugins):
        return None
    if len(bounds) == 1:
        (only,) = bounds

        def alone(request: Request) -> BoundSearch:
            variant = only.variant(request)
            return BoundSearch(
                tuple(
                    SearchSide(
                        (name, variant, index),
                        partial(side.rank, variant),
                        partial(side.limit, request),
                    )
                    for index, side in enumerate(only.sides)
                )
            )

        return alone
    weighed = [(p.weight, p.scale.normalised, b) for p, b in zip(plugins, bounds, strict=True)]

    def several(request: Request) -> BoundSearch:
        variants = tuple(b.variant(request) for _, _, b in weighed)
        parts = [(w, norm, b.sides, v) for (w, norm, b), v in zip(weighed, variants, strict=True)]

        def rank(cluster: ClusterView) -> tuple[Hashable, float]:
            total = 0.0
            for weight, norm, sides, variant in parts:
                ceiling = min(s.ceiling(*s.rank(variant, cluster)) for s in sides)
                total += weight * norm(ceiling)
            return None, total

        return BoundSearch((SearchSide((name, variants), rank, ceiling_is_value),))

    return several


class Decision(msgspec.Struct, frozen=True):
    placements: tuple[Placement, ...]
    level_index: int
    explanation: Explanation
    # Collected from the filters' codes while the levels were scanned.
    unschedulable: bool = False

    @property
    def placed(self) -> bool:
        return bool(self.placements)

    @property
    def waits_for_capacity(self) -> bool:
        """Whether some candidate was refused for want of capacity or readiness (a filter
        said UNSCHEDULABLE), so the request should wait for cluster state to change rather
        than be retried blindly."""
        return self.unschedulable


def plan(
    profile: Profile,
    request: Request,
    snapshot: ClusterSnapshot,
    rules: PlannerRules = DEFAULT_RULES,
) -> Decision:
    state = profile.pre_score(request, snapshot, rules)
    traces: list[LevelTrace] = []
    unschedulable = False
    for index, listed in enumerate(request.levels):
        context = LevelContext(profile, state, request, snapshot, rules, index)
        level = profile.strategy.place(context, listed)
        traces.append(level.trace)
        unschedulable = unschedulable or level.unschedulable
        if level.placements:
            summary = f"level {index + 1} of {len(request.levels)}: {level.trace.chosen}"
            explanation = Explanation(tuple(traces), f"{summary} ({profile.name})")
            return Decision(level.placements, index, explanation, unschedulable)
    explanation = Explanation(tuple(traces), unplaced_summary(traces))
    return Decision((), -1, explanation, unschedulable)


# Levels of up to this many clusters list every cluster's reasons; beyond, the rest is counted.
MAX_LISTED = 64


def unplaced_summary(traces: Sequence[LevelTrace]) -> str:
    """Why nothing was placed: each cluster's reasons, level by level (bounded)."""
    reasons = [
        f"{cluster}: {', '.join(why)}"
        for trace in traces
        for cluster, why in trace.rejections.items()
    ]
    return "no level could place the request: " + "; ".join(reasons[:MAX_LISTED])


def plan_avoiding(
    profile: Profile,
    request: Request,
    snapshot: ClusterSnapshot,
    rules: PlannerRules,
    avoid: tuple[str, ...],
) -> Decision:
    """Plan without the clusters that refused the last binding (by name), falling back
    to all of them when nothing else fits: better the same cluster again than nothing.
    A level that is a set (GSetClusters places on every cluster it names) is not cut
    down to a smaller set: it is skipped whole."""
    if avoid:
        if profile.strategy.level_is_a_set:
            kept = (lvl if not set(lvl) & set(avoid) else () for lvl in request.levels)
        else:
            kept = (tuple(c for c in level if c not in avoid) for level in request.levels)
        levels = tuple(level for level in kept if level)
        if levels:  # an empty list would mean "every cluster"
            elsewhere = msgspec.structs.replace(request, levels=levels)
            decision = plan(profile, elsewhere, snapshot, rules)
            if decision.placed:
                return decision
    return plan(profile, request, snapshot, rules)


def fits_now(profile: Profile, request: Request, node: NodeView, amount: Resources) -> bool:
    """Whether `node` can still take `amount` for `request` on the log's own numbers
    (confirmed capacity, not what this process has pending): the re-check made just before a
    commit goes out."""
    if not amount.fits_in(node.confirmed_free):
        return False
    from gsch.policies.filters import resource_fit  # the filters import this module

    checks = [f for f in profile.node_filters if f is not resource_fit]
    return all(check(request, node) is None for check in checks)
