"""Member clusters: the snapshot folded from cluster events, topologies, the simulator backend."""
