"""Which profile serves which policy."""

from __future__ import annotations

from gsch.model.request import Policy
from gsch.policies.allocation import (
    balanced_allocation_score,
    least_allocated_score,
    most_allocated_score,
)
from gsch.policies.filters import COMMON_CLUSTER_FILTERS, COMMON_NODE_FILTERS
from gsch.policies.framework import Profile
from gsch.policies.low_latency import prepare_low_latency
from gsch.policies.most_requested import free_capacity_bound, free_capacity_score

PROFILES: dict[Policy, Profile] = {
    Policy.MOST_REQUESTED: Profile(
        name="GMostRequestedPriority",
        cluster_filters=COMMON_CLUSTER_FILTERS,
        node_filters=COMMON_NODE_FILTERS,
        node_scorer=free_capacity_score,
        cluster_bound=free_capacity_bound,
    ),
    # Clusters in the user's order; inside the cluster the node with most free capacity
    # (or the pinned node in mode "node", which the node filters enforce).
    Policy.BIN_PACK: Profile(
        name="GBinPackPriority",
        cluster_filters=COMMON_CLUSTER_FILTERS,
        node_filters=COMMON_NODE_FILTERS,
        node_scorer=most_allocated_score,
    ),
    Policy.LEAST_REQUESTED: Profile(
        name="GLeastRequestedPriority",
        cluster_filters=COMMON_CLUSTER_FILTERS,
        node_filters=COMMON_NODE_FILTERS,
        node_scorer=least_allocated_score,
    ),
    Policy.BALANCED: Profile(
        name="GBalancedPriority",
        cluster_filters=COMMON_CLUSTER_FILTERS,
        node_filters=COMMON_NODE_FILTERS,
        node_scorer=balanced_allocation_score,
    ),
    # Scores below are negative round-trip times in ms (higher is nearer).
    Policy.LOW_LATENCY: Profile(
        name="GLowLatencyPriority",
        cluster_filters=COMMON_CLUSTER_FILTERS,
        node_filters=COMMON_NODE_FILTERS,
        node_scorer=free_capacity_score,
        prepare=prepare_low_latency,
    ),
    # A copy on every cluster of a level (each on the node with most free capacity), or the
    # level fails and the next is tried.
    Policy.SET_CLUSTERS: Profile(
        name="GSetClusters",
        cluster_filters=COMMON_CLUSTER_FILTERS,
        node_filters=COMMON_NODE_FILTERS,
        node_scorer=free_capacity_score,
        keep_listed_order=True,
        every_cluster=True,
    ),
    Policy.SELECTED_CLUSTER: Profile(
        name="GSelectedCluster",
        cluster_filters=COMMON_CLUSTER_FILTERS,
        node_filters=COMMON_NODE_FILTERS,
        node_scorer=free_capacity_score,
        keep_listed_order=True,
    ),
}


def available_policies() -> tuple[Policy, ...]:
    return tuple(PROFILES)
