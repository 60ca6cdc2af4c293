"""The roles of the bus and exactly what each may publish and subscribe to.

This table is the one source of the permissions: `serverconf.py` renders it into the
nats-server configuration (the embedded server's and `config/nats/` for external servers),
and the README's Security section describes it. Each grant is the narrowest set that lets the
role do its job, found by running gsch against a server that enforces it:

- a JetStream publish is a request: the publisher needs its own reply inbox (every identity has
  one of its own, `_INBOX_<its public key>`, so no one reads another's replies);
- reading the log is direct gets, stream info and *ephemeral* ordered consumers. Those are
  created on `$JS.API.CONSUMER.CREATE.GSCH_EVENTS`, the legacy subject on which the server
  refuses a durable name, plus flow-control replies on `$JS.FC.GSCH_EVENTS.>`;
- a work queue is fetched on `$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>` and acknowledged
  (ack, nak, in-progress) on `$JS.ACK.<stream>.<durable>.>`, one named consumer at a time;
- appends are granted per event type, so a role can write only the events its decisions
  produce: a worker cannot declare a node, a binder cannot reserve capacity;
- workers alone tell each other what their batches are about to reserve (commit intents,
  `gsch.intents.<worker>`, core NATS): no other role may send or read them.

Only admin may create, update or delete streams and consumers. The housekeeper alone keeps
house: it writes cluster-state snapshots to the `GSCH_SNAPSHOTS` object store, purges the log
behind them and of expired requests, and records expiries. It is an identity of its own so
that purging the log, the one stream operation granted beyond admin, is held by the one or
two housekeeping processes of an installation, not by every API replica that faces users;
every service role reads snapshots, since each starts from one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gsch.eventstore.snapshots import SNAPSHOT_BUCKET
from gsch.eventstore.subjects import (
    CANCEL_SUBJECT,
    EVENTS_STREAM,
    INTAKE_STREAM,
    INTAKE_SUBJECT,
    INTENT_SUBJECTS,
    TELEMETRY_STREAM,
    token,
)

# The durable consumers of `streams/consumers/` and the one role that pulls from each.
INTAKE_CONSUMER = "gsch-intake"
CANCELS_CONSUMER = "gsch-cancels"
RETRIES_CONSUMER = "gsch-retries"
BINDER_CONSUMER = "gsch-binder"
CALLBACKS_CONSUMER = "gsch-callbacks"


class Role(enum.StrEnum):
    SUBMITTER = "submitter"  # a person or a system sending requests and cancels
    WORKER = "worker"  # intake, retries, planning, commits
    API = "api"  # projector, HTTP API (submits and cancels for its callers)
    HOUSEKEEPER = "housekeeper"  # snapshots, compaction, retention: purges the log
    BINDER = "binder"  # applies placements, declares simulated and central clusters
    NOTIFIER = "notifier"  # calls requests' callback URLs when they settle
    AGENT = "agent"  # one member cluster, from inside it
    ADMIN = "admin"  # declares streams and consumers; everything else too


# The roles gsch's own processes run as; an agent is one per cluster, submitters are people.
SERVICE_ROLES = (Role.WORKER, Role.API, Role.BINDER, Role.NOTIFIER, Role.HOUSEKEEPER)


@dataclass(frozen=True)
class Grant:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # May answer requests it received (one reply each, to the requester's inbox): the
    # agent's answers to the binder's bind and remove requests.
    responses: bool = False


def _appends(scope: str, *event_types: str) -> tuple[str, ...]:
    return tuple(f"{scope}.{event_type}" for event_type in event_types)


def _requests(*event_types: str) -> tuple[str, ...]:
    return _appends("gsch.events.req.*", *event_types)


def _nodes(*event_types: str) -> tuple[str, ...]:
    return _appends("gsch.events.cluster.*.node.*", *event_types)


def _inventory(cluster: str) -> tuple[str, ...]:
    """What describes a cluster, never what reserves it: the cluster, its nodes' inventory,
    the latency measured from its nodes and the pods they run."""
    base = f"gsch.events.cluster.{cluster}"
    reports = f"gsch.telemetry.{cluster}"  # current values, on the telemetry stream
    return (
        f"{base}.ClusterDeclared",
        f"{base}.node.*.NodeDeclared",
        f"{reports}.latency.*.LatencyReported",
        f"{reports}.pods.*.PodsReported",
    )


def _pull(stream: str, durable: str) -> tuple[str, ...]:
    return (f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}", f"$JS.ACK.{stream}.{durable}.>")


# Direct gets (last of a subject, next after a sequence) and the state of the log and of
# the telemetry stream beside it.
READ_LOG = tuple(
    subject
    for stream in (EVENTS_STREAM, TELEMETRY_STREAM)
    for subject in (
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.STREAM.INFO.{stream}",
    )
)
# Ordered consumers: ephemeral only (see the module's docstring); a follower asks what its
# consumer has sent before it subscribes again (eventstore/watch.py).
FOLLOW_LOG = tuple(
    subject
    for stream in (EVENTS_STREAM, TELEMETRY_STREAM)
    for subject in (
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.FC.{stream}.>",
    )
)
# A process checks at start that what it needs was declared (it cannot declare it itself).
CHECK_DECLARATIONS = (
    f"$JS.API.STREAM.INFO.{INTAKE_STREAM}",
    f"$JS.API.CONSUMER.INFO.{EVENTS_STREAM}.*",
    f"$JS.API.CONSUMER.INFO.{INTAKE_STREAM}.*",
)
SNAPSHOTS_STREAM = f"OBJ_{SNAPSHOT_BUCKET}"
# The cluster-state snapshots every service starts from (an object store: metadata by direct
# get of a subject's last message, chunks and listings through ephemeral ordered consumers,
# which nats-py binds by looking the stream up by subject: the names of streams, no content).
READ_SNAPSHOTS = (
    "$JS.API.STREAM.NAMES",
    f"$JS.API.STREAM.INFO.{SNAPSHOTS_STREAM}",
    f"$JS.API.DIRECT.GET.{SNAPSHOTS_STREAM}.>",
    f"$JS.API.STREAM.MSG.GET.{SNAPSHOTS_STREAM}",
    f"$JS.API.CONSUMER.CREATE.{SNAPSHOTS_STREAM}",
    f"$JS.FC.{SNAPSHOTS_STREAM}.>",
)
# Housekeeping (the housekeeper role): snapshots written (chunks, then metadata; an overwritten
# slot's old chunks purged), the log compacted behind them and trimmed of expired requests,
# each expiry recorded. Purging is the one stream operation granted beyond admin: without
# it the log only grows (DESIGN principle 8).
KEEP_HOUSE = (
    f"$O.{SNAPSHOT_BUCKET}.C.>",
    f"$O.{SNAPSHOT_BUCKET}.M.>",
    f"$JS.API.STREAM.PURGE.{SNAPSHOTS_STREAM}",
    f"$JS.API.STREAM.PURGE.{EVENTS_STREAM}",
    "gsch.events.expired.*.RequestsExpired",
)
SERVICE = READ_LOG + FOLLOW_LOG + CHECK_DECLARATIONS + READ_SNAPSHOTS

AGENT_SUBJECTS = "gsch.agent"


def grant(role: Role, inbox: str, cluster: str | None = None) -> Grant:
    """The permissions of one identity of `role` whose reply inbox prefix is `inbox`; an
    agent's are those of its `cluster`."""
    replies = (f"{inbox}.>",)
    if role is Role.SUBMITTER:
        return Grant(publish=(INTAKE_SUBJECT, CANCEL_SUBJECT), subscribe=replies)
    if role is Role.WORKER:
        publish = (
            *_requests(
                "RequestAccepted", "RequestRejected", "RequestClaimed", "PlacementCommitted",
                "RequestRequeued", "RequestFailed", "RequestCancelled", "CancelRecorded",
            ),
            "gsch.events.conflict.*.RequestIdConflict",  # an id reused with another body
            *_nodes("CapacityReserved", "CapacityReleased"),
            *_pull(INTAKE_STREAM, INTAKE_CONSUMER),
            *_pull(INTAKE_STREAM, CANCELS_CONSUMER),
            *_pull(EVENTS_STREAM, RETRIES_CONSUMER),
            f"{INTENT_SUBJECTS}.*",  # what its batches are about to reserve, for the others
            *SERVICE,
        )  # fmt: skip
        return Grant(publish=publish, subscribe=(*replies, f"{INTENT_SUBJECTS}.*"))
    if role is Role.API:
        # POST /v1/requests publishes for its caller; a cancel is appended directly.
        publish = (
            INTAKE_SUBJECT,
            *_requests("RequestCancelled", "CancelRecorded"),
            "gsch.events.tenancy.>",  # projects and workspaces declared through the API
            *_nodes("CapacityReleased"),
            *SERVICE,
        )
        return Grant(publish=publish, subscribe=replies)
    if role is Role.HOUSEKEEPER:
        # Reads what every service reads (a standalone housekeeper projects its own read
        # model to find expired requests), and keeps house; it decides nothing and
        # appends no event but the expiry records.
        return Grant(publish=(*KEEP_HOUSE, *SERVICE), subscribe=replies)
    if role is Role.BINDER:
        publish = (
            *_requests("RequestBound", "RequestRequeued", "RequestFailed", "WorkloadFinished"),
            *_nodes("CapacityReleased"),
            *_inventory("*"),  # simulated and central clusters; agents' liveness
            f"{AGENT_SUBJECTS}.*.bind",
            f"{AGENT_SUBJECTS}.*.remove",
            *_pull(EVENTS_STREAM, BINDER_CONSUMER),
            *SERVICE,
        )
        return Grant(publish=publish, subscribe=(*replies, f"{AGENT_SUBJECTS}.*.heartbeat"))
    if role is Role.NOTIFIER:
        publish = (
            "gsch.events.callback.>",  # each delivery attempt, as an event
            *_pull(EVENTS_STREAM, CALLBACKS_CONSUMER),
            *SERVICE,
        )
        return Grant(publish=publish, subscribe=replies)
    if role is Role.AGENT:
        if not cluster:
            raise ValueError("an agent's permissions are those of one cluster: name it")
        own = token(cluster)
        publish = (
            *_inventory(own),
            f"{AGENT_SUBJECTS}.{own}.heartbeat",
            # Direct gets only (its own cluster's history, other clusters' endpoints for its
            # probe), no consumers: a push consumer's deliveries can be aimed at any subject.
            *READ_LOG,
        )
        subscribe = (*replies, f"{AGENT_SUBJECTS}.{own}.bind", f"{AGENT_SUBJECTS}.{own}.remove")
        return Grant(publish=publish, subscribe=subscribe, responses=True)
    return Grant(publish=(">",), subscribe=(">",))  # admin
