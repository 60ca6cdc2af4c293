"""Seed the read model's cluster tables from a cluster-state snapshot.

Needed when the read model's checkpoint is behind the compaction watermark (a rebuild, a new
API process, one that fell that far behind): the cluster events between its checkpoint and
the watermark are gone from the log, so its clusters, nodes and reservations come from the
newest good snapshot instead, and the cluster events at or below that snapshot's sequence
still in the log (each subject's last message) are not applied again. Request rows are not
touched: request histories are never compacted, only removed whole by retention.
"""

from __future__ import annotations

import msgspec
from aiosqlite import Connection

from gsch.clusters.snapshot import ClusterSnapshot

_encoder = msgspec.json.Encoder()

_CLUSTER = (
    "INSERT INTO clusters (name, declared, tier, labels, ready, last_seq) VALUES (?, ?, ?, ?, ?, ?)"
)
_NODE = """
    INSERT INTO nodes (cluster, name, declared, ready, alloc_cpu_m, alloc_memory, alloc_gpu,
        alloc_pods, foreign_cpu_m, foreign_memory, foreign_gpu, foreign_pods, labels, taints,
        last_seq)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_RESERVATION = """
    INSERT INTO reservations (cluster, node, request_id, attempt, cpu_m, memory, gpu, pods,
        active, last_seq)
    VALUES (?, ?, ?, 0, ?, ?, ?, ?, 1, ?)"""
_SEED = """
    INSERT INTO cluster_seed (stream, seq) VALUES (?, ?)
    ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq"""


def _json(value: object) -> str:
    return _encoder.encode(value).decode()


async def read_cluster_seed(db: Connection, stream: str) -> int:
    async with db.execute("SELECT seq FROM cluster_seed WHERE stream = ?", (stream,)) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def seed_clusters(db: Connection, stream: str, snapshot: ClusterSnapshot, seq: int) -> None:
    """Replace the cluster tables with `snapshot` (taken at `seq`), in one transaction."""
    clusters, nodes, reservations = [], [], []
    for cluster in snapshot.clusters.values():
        clusters.append((
            cluster.name, cluster.declared, cluster.tier if cluster.declared else None,
            _json(cluster.labels), cluster.ready, seq if cluster.declared else 0,
        ))  # fmt: skip
        for node in cluster.nodes.values():
            a, f = node.allocatable, node.foreign
            nodes.append((
                cluster.name, node.name, node.declared, node.ready,
                a.cpu_m, a.memory, a.gpu, a.pods, f.cpu_m, f.memory, f.gpu, f.pods,
                _json(node.labels), _json(node.taints), node.last_seq,
            ))  # fmt: skip
            for request_id, amount in node.reservations.items():
                reservations.append((
                    cluster.name, node.name, request_id,
                    amount.cpu_m, amount.memory, amount.gpu, amount.pods, node.last_seq,
                ))  # fmt: skip
    await db.execute("BEGIN IMMEDIATE")
    try:
        for table in ("reservations", "nodes", "clusters"):
            await db.execute(f"DELETE FROM {table}")
        for sql, rows in ((_CLUSTER, clusters), (_NODE, nodes), (_RESERVATION, reservations)):
            if rows:
                await db.executemany(sql, rows)
        await db.execute(_SEED, (stream, seq))
        await db.execute("COMMIT")
    except BaseException:
        await db.rollback()
        raise
