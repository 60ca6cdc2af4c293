"""Which profile serves which policy."""

from __future__ import annotations

from typing import Any

from gsch.model.request import Policy
from gsch.policies.allocation import (
    balanced_allocation_score,
    least_allocated_bound,
    least_allocated_score,
    least_allocated_variant,
    most_allocated_score,
)
from gsch.policies.filters import COMMON_CLUSTER_FILTERS, COMMON_NODE_FILTERS
from gsch.policies.framework import Profile, ScorePlugin
from gsch.policies.low_latency import prepare_low_latency
from gsch.policies.most_requested import (
    free_capacity_bound,
    free_capacity_score,
    free_capacity_variant,
)

FREE_CAPACITY = ScorePlugin("free capacity (GEdge)", free_capacity_score)


def _profile(policy: Policy, *scorers: ScorePlugin, **options: Any) -> Profile:
    """Every profile filters clusters and nodes alike; they differ in scoring and ranking."""
    return Profile(
        name=policy.value,
        cluster_filters=COMMON_CLUSTER_FILTERS,
        node_filters=COMMON_NODE_FILTERS,
        scorers=scorers,
        **options,
    )


PROFILES: dict[Policy, Profile] = {
    Policy.MOST_REQUESTED: _profile(
        Policy.MOST_REQUESTED,
        FREE_CAPACITY,
        cluster_bound=free_capacity_bound,
        bound_variant=free_capacity_variant,
    ),
    Policy.BIN_PACK: _profile(Policy.BIN_PACK, ScorePlugin("most allocated", most_allocated_score)),
    Policy.LEAST_REQUESTED: _profile(
        Policy.LEAST_REQUESTED,
        ScorePlugin("least allocated", least_allocated_score),
        cluster_bound=least_allocated_bound,
        bound_variant=least_allocated_variant,
    ),
    Policy.BALANCED: _profile(
        Policy.BALANCED, ScorePlugin("balanced allocation", balanced_allocation_score)
    ),
    # Clusters ranked by round-trip time from the source (scores: negative ms); the ranking
    # brings its own node scorer (nearest node to the source).
    Policy.LOW_LATENCY: _profile(Policy.LOW_LATENCY, FREE_CAPACITY, prepare=prepare_low_latency),
    # A copy on every cluster of a level (each on the node with most free capacity), or the
    # level fails and the next is tried.
    Policy.SET_CLUSTERS: _profile(
        Policy.SET_CLUSTERS, FREE_CAPACITY, keep_listed_order=True, every_cluster=True
    ),
    # Clusters in the user's order; inside the cluster the node with most free capacity
    # (or the pinned node in mode "node", which the node filters enforce).
    Policy.SELECTED_CLUSTER: _profile(
        Policy.SELECTED_CLUSTER, FREE_CAPACITY, keep_listed_order=True
    ),
}


def available_policies() -> tuple[Policy, ...]:
    return tuple(PROFILES)
