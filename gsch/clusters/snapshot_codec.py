"""Cluster-state snapshots as bytes: written at a known log sequence, checked when read.

A snapshot is stored as the shortest event history that folds into the same state, not as a
dump of the in-memory structures: per cluster its declaration, per node its declaration and
one `CapacityReserved` per live reservation. Reading one folds those events through
`ClusterSnapshot.apply`, so whatever the snapshot derives from events (aggregates, label
indexes, rankings) is rebuilt exactly as a replay of the log would build it, and a new index
needs no change here. Latency and pod reports are not in it: they are current values on the
telemetry stream, which every process folds whole at start (as long as the fleet is large,
never as old as the installation).

A node's synthetic events take the sequences just below the node's own last sequence, the
last one *being* it: that is what a conditional reservation on the node is checked against,
so a worker that starts from a snapshot appends with the same expectations as one that
replayed the whole log.

Layout: `GSCHSNAP`, a 4-byte big-endian header length, the JSON header (format version,
sequence, clock, event count, body length, SHA-256 of the body), then the body:
zlib-compressed msgpack of `[[seq, event], ...]`. Any mismatch is a `SnapshotCorrupt` naming
what was wrong; the reader then falls back to an older snapshot.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator

import msgspec

from gsch.clusters.snapshot import ClusterSnapshot, NodeView
from gsch.model.events import (
    AnyEvent,
    CapacityReleased,
    CapacityReserved,
    ClusterDeclared,
    Event,
    NodeDeclared,
)

MAGIC = b"GSCHSNAP"
FORMAT_VERSION = 1
KIND = "cluster-state"
_LENGTH = struct.Struct(">I")
# A node with no declaration and no reservation left still has a position (its last
# sequence): this release of nobody carries it.
_POSITION_ONLY = ""


class SnapshotCorrupt(ValueError):
    """The bytes are not a snapshot this version can trust; the message says why."""


class SnapshotHeader(msgspec.Struct, frozen=True, kw_only=True):
    format: int
    kind: str
    seq: int  # every event up to this stream sequence is folded in
    clock: float  # the snapshot's own clock (newest `at` folded)
    created_at: float
    events: int
    body_bytes: int
    sha256: str
    clusters: int = 0
    nodes: int = 0
    reservations: int = 0


_header_decoder = msgspec.json.Decoder(SnapshotHeader)
_body_encoder = msgspec.msgpack.Encoder()
_body_decoder: msgspec.msgpack.Decoder[list[tuple[int, AnyEvent]]] = msgspec.msgpack.Decoder(
    list[tuple[int, AnyEvent]]
)


def history_of(snapshot: ClusterSnapshot) -> Iterator[tuple[int, Event]]:
    """The events, with sequences, that fold into `snapshot`'s state."""
    clock = snapshot.clock
    for cluster in sorted(snapshot.clusters.values(), key=lambda c: c.name):
        if cluster.declared:
            yield snapshot.last_seq, ClusterDeclared(
                at=clock, cluster=cluster.name, tier=cluster.tier, labels=cluster.labels,
                ready=cluster.ready,
            )  # fmt: skip
        for name in sorted(cluster.nodes):
            yield from _node_history(cluster.nodes[name], clock)


def _node_history(node: NodeView, clock: float) -> Iterator[tuple[int, Event]]:
    events: list[Event] = []
    if node.declared:
        events.append(NodeDeclared(
            at=clock, cluster=node.cluster, node=node.name, allocatable=node.allocatable,
            labels=node.labels, taints=node.taints, ready=node.ready, foreign=node.foreign,
        ))  # fmt: skip
    for request_id in sorted(node.reservations):
        events.append(CapacityReserved(
            at=clock, cluster=node.cluster, node=node.name, request_id=request_id, attempt=0,
            amount=node.reservations[request_id],
        ))  # fmt: skip
    if not events and node.last_seq > 0:
        events.append(CapacityReleased(
            at=clock, cluster=node.cluster, node=node.name, request_id=_POSITION_ONLY,
            attempt=0, reason="snapshot position",
        ))  # fmt: skip
    first = node.last_seq - len(events) + 1
    if events and first < 1:
        # Each event stands for at least one real event of the node's scope, all at or
        # below its last sequence: fewer sequences than events cannot come from a log.
        raise ValueError(f"node {node.cluster}/{node.name}: {len(events)} events below seq 1")
    for offset, event in enumerate(events):
        yield first + offset, event


def encode(snapshot: ClusterSnapshot, created_at: float) -> tuple[bytes, SnapshotHeader]:
    history = list(history_of(snapshot))
    body = zlib.compress(_body_encoder.encode(history), 6)
    nodes = [node for cluster in snapshot.clusters.values() for node in cluster.nodes.values()]
    header = SnapshotHeader(
        format=FORMAT_VERSION,
        kind=KIND,
        seq=snapshot.last_seq,
        clock=snapshot.clock,
        created_at=created_at,
        events=len(history),
        body_bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        clusters=len(snapshot.clusters),
        nodes=len(nodes),
        reservations=sum(len(node.reservations) for node in nodes),
    )
    head = msgspec.json.encode(header)
    return MAGIC + _LENGTH.pack(len(head)) + head + body, header


def read_header(blob: bytes) -> tuple[SnapshotHeader, bytes]:
    """The header and the checked body; SnapshotCorrupt when anything does not add up."""
    if not blob.startswith(MAGIC):
        raise SnapshotCorrupt("not a gsch snapshot (bad magic bytes)")
    start = len(MAGIC) + _LENGTH.size
    if len(blob) < start:
        raise SnapshotCorrupt("truncated before its header")
    (length,) = _LENGTH.unpack_from(blob, len(MAGIC))
    try:
        header = _header_decoder.decode(blob[start : start + length])
    except msgspec.DecodeError as exc:
        raise SnapshotCorrupt(f"unreadable header: {exc}") from exc
    if header.format != FORMAT_VERSION or header.kind != KIND:
        raise SnapshotCorrupt(
            f"format {header.kind} v{header.format}; this gsch reads {KIND} v{FORMAT_VERSION}"
        )
    body = blob[start + length :]
    if len(body) != header.body_bytes:
        raise SnapshotCorrupt(f"body is {len(body)} bytes, header says {header.body_bytes}")
    if hashlib.sha256(body).hexdigest() != header.sha256:
        raise SnapshotCorrupt("checksum mismatch (SHA-256 of the body)")
    return header, body


def decode(blob: bytes) -> tuple[SnapshotHeader, ClusterSnapshot]:
    """The snapshot the bytes hold, folded; SnapshotCorrupt when they cannot be trusted."""
    header, body = read_header(blob)
    try:
        history = _body_decoder.decode(zlib.decompress(body))
    except (zlib.error, msgspec.DecodeError) as exc:
        raise SnapshotCorrupt(f"undecodable body: {exc}") from exc
    if len(history) != header.events:
        raise SnapshotCorrupt(f"{len(history)} events, header says {header.events}")
    snapshot = ClusterSnapshot()
    for seq, event in history:
        if seq > header.seq:
            raise SnapshotCorrupt(f"event at seq {seq} beyond the snapshot's seq {header.seq}")
        snapshot.apply(event, seq)
    # Folded up to here, whatever the synthetic sequences were; the clock is the newest `at`
    # already (every event carries at most the snapshot's clock).
    snapshot.last_seq = header.seq
    snapshot.clock = max(snapshot.clock, header.clock)
    return header, snapshot
