"""Which profile serves which policy: the filters every profile shares, its score plugins, and
the strategy that turns a level into placements."""

from __future__ import annotations

from gsch.model.request import Policy
from gsch.policies.allocation import BALANCED_ALLOCATION, LEAST_ALLOCATED
from gsch.policies.filters import COMMON_CLUSTER_FILTERS, COMMON_NODE_FILTERS
from gsch.policies.framework import PreScore, Profile, ScorePlugin, Strategy
from gsch.policies.low_latency import prepare_low_latency
from gsch.policies.most_requested import FREE_CAPACITY
from gsch.policies.packing import FEWEST_NODES, prepare_bin_pack
from gsch.policies.strategies import (
    EveryCluster,
    ListedOrder,
    RankedByClusterRank,
    RankedByScore,
)


def _profile(
    policy: Policy,
    scorer: ScorePlugin,
    strategy: Strategy,
    prepare: PreScore | None = None,
) -> Profile:
    """Every profile filters clusters and nodes alike; they differ in scoring and strategy."""
    return Profile(
        name=policy.value,
        cluster_filters=COMMON_CLUSTER_FILTERS,
        node_filters=COMMON_NODE_FILTERS,
        scorers=(scorer,),
        strategy=strategy,
        prepare=prepare,
    )


# Ranked by their best node's score; large levels searched best bound first where the plugin
# has a bound (free capacity, least allocated).
_RANKED = RankedByScore()

PROFILES: dict[Policy, Profile] = {
    Policy.MOST_REQUESTED: _profile(Policy.MOST_REQUESTED, FREE_CAPACITY, _RANKED),
    # Fewest nodes by default; kube's MostAllocated as mode "mostallocated" (its PreScore
    # picks the scorer by mode). No cluster bound: levels are scanned whole.
    Policy.BIN_PACK: _profile(Policy.BIN_PACK, FEWEST_NODES, _RANKED, prepare_bin_pack),
    Policy.LEAST_REQUESTED: _profile(Policy.LEAST_REQUESTED, LEAST_ALLOCATED, _RANKED),
    Policy.BALANCED: _profile(Policy.BALANCED, BALANCED_ALLOCATION, _RANKED),
    # Clusters ranked by round-trip time from the source (scores: negative ms); its PreScore
    # brings the node scorer (nearest node to the source, then most free capacity).
    Policy.LOW_LATENCY: _profile(
        Policy.LOW_LATENCY, FREE_CAPACITY, RankedByClusterRank(), prepare_low_latency
    ),
    # A copy on every cluster of a level (each on the node with most free capacity), or the
    # level fails and the next is tried.
    Policy.SET_CLUSTERS: _profile(Policy.SET_CLUSTERS, FREE_CAPACITY, EveryCluster()),
    # Clusters in the user's order; inside the cluster the node with most free capacity
    # (or the pinned node in mode "node", which the node filters enforce).
    Policy.SELECTED_CLUSTER: _profile(Policy.SELECTED_CLUSTER, FREE_CAPACITY, ListedOrder()),
}


def available_policies() -> tuple[Policy, ...]:
    return tuple(PROFILES)
