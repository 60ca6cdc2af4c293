"""Kubernetes member clusters: inventory (list + watch → coalesced cluster events), binding
(server-side apply of committed placements), the in-cluster agent that does both over NATS
only, and the latency probe."""
