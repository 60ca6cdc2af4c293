"""gsch: a global scheduler for Kubernetes workloads across cloud, edge and near-edge clusters."""

__version__ = "0.1.0"
