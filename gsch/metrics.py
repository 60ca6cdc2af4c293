"""Every Prometheus metric of gsch, in one place. Names mirror kube-scheduler's under `gsch_`.

Labels take values from closed sets (results, policies, queue levels, event types, route
templates) or from the fleet (`member_cluster`, bounded by the number of member clusters);
never request ids, node names or raw paths. Member clusters are `member_cluster`, never
`cluster`, which Prometheus setups reserve for where gsch itself runs.
"""

from __future__ import annotations

import platform
from collections.abc import Collection, Iterable

from prometheus_client import Counter, Gauge, Histogram, Info

from gsch import __version__

# kube-scheduler's ExponentialBuckets(0.001, 2, 15): 1 ms … 16.384 s.
ATTEMPT_BUCKETS = tuple(0.001 * 2**i for i in range(15))
# Submit → scheduled/bound crosses retries with backoff and edge links: 5 ms … 1 h.
E2E_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
               1800, 3600)  # fmt: skip
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

BUILD_INFO = Info("gsch_build", "Version of the running gsch")
BUILD_INFO.info({"version": __version__, "python": platform.python_version()})

SCHEDULE_ATTEMPTS = Counter(
    "gsch_schedule_attempts_total",
    "Scheduling attempts by result (scheduled, unschedulable, error) and policy",
    ["result", "policy"],
)
ATTEMPT_DURATION = Histogram(
    "gsch_scheduling_attempt_duration_seconds",
    "Time from claim to committed placement or to giving up on the attempt",
    ["result", "policy"],
    buckets=ATTEMPT_BUCKETS,
)
E2E_DURATION = Histogram(
    "gsch_e2e_scheduling_duration_seconds",
    "Time from acceptance of a request to a stage (scheduled, bound, finished)",
    ["stage"],
    buckets=E2E_BUCKETS,
)
COMMIT_CONFLICTS = Counter(
    "gsch_placement_conflicts_total",
    "Conditional appends that lost a race and were re-planned",
    ["scope"],
)
REQUESTS_REJECTED = Counter(
    "gsch_requests_rejected_total", "Requests rejected at intake, by field", ["field"]
)
DUPLICATE_SUBMISSIONS = Counter(
    "gsch_duplicate_submissions_total", "Publications of a request id that was already known"
)
CANCELS = Counter(
    "gsch_cancel_commands_total",
    "Cancel commands taken from gsch.cancel, by result (cancelled, noop, invalid)",
    ["result"],
)
RETRIES = Counter("gsch_request_retries_total", "Requeued attempts by reason", ["reason"])
CALLBACK_RESULTS = ("delivered", "failed", "gave_up", "not_allowed")
CALLBACKS = Counter(
    "gsch_callbacks_total",
    "Calls to requests' callback URLs by result (delivered, failed, gave_up, not_allowed)",
    ["result"],
)
EVENT_APPENDS = Counter("gsch_event_appends_total", "Events appended by type", ["type"])
# Group commit (eventstore/group.py): on a file stream of one replica every atomic batch
# costs the server a staging store with its own fsyncs, so batches per second, decisions per
# batch and how long a decision waits to be sent are what tell whether the stream is the limit.
GROUP_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256)
GROUP_COMMIT_BATCHES = Counter(
    "gsch_group_commit_batches_total", "Atomic batches sent by the group committer"
)
GROUP_COMMIT_DECISIONS = Histogram(
    "gsch_group_commit_decisions",
    "Decisions (atomic appends of one writer) per batch sent",
    buckets=GROUP_BATCH_BUCKETS,
)
GROUP_COMMIT_ROUND_TRIP = Histogram(
    "gsch_group_commit_round_trip_seconds",
    "Time from sending a batch to the server's answer",
    buckets=ATTEMPT_BUCKETS,
)
GROUP_COMMIT_GAP = Gauge(
    "gsch_group_commit_gap_seconds",
    "Least time between two batches of the group committer: grows while batches queue at "
    "the server, 0 while they do not",
)
GROUP_COMMIT_WAIT = Histogram(
    "gsch_group_commit_wait_seconds",
    "Time a decision waited in the group committer before its batch was sent",
    buckets=ATTEMPT_BUCKETS,
)
# Commit intents (scheduler/intents.py, intent_bus.py): what competing workers tell each
# other about their batches in flight, so that one worker's decision does not go out into a
# certain refusal (and take its whole batch with it) behind another's.
INTENT_KINDS = ("intent", "done")
INTENTS_SENT = Counter(
    "gsch_commit_intents_sent_total",
    "Messages telling the other workers what a batch is about to reserve (intent) and "
    "whether it landed (done)",
    ["kind"],
)
INTENTS_RECEIVED = Counter(
    "gsch_commit_intents_received_total",
    "Other workers' intent and done messages taken into account",
    ["kind"],
)
INTENT_IGNORED_REASONS = ("malformed", "too_large", "too_many")
INTENTS_IGNORED = Counter(
    "gsch_commit_intents_ignored_total",
    "Other workers' intent messages ignored: malformed, too large, or beyond the live bound",
    ["reason"],
)
INTENT_SETTLED_HOW = ("folded", "refused", "expired", "replaced", "closed")
INTENTS_SETTLED = Counter(
    "gsch_commit_intents_settled_total",
    "Other workers' announced reservations that stopped counting as pending here, by how "
    "(folded from the log, batch refused, expired without an answer...)",
    ["how"],
)
INTENTS_LIVE = Gauge(
    "gsch_commit_intents_live", "Other workers' announced reservations counted as pending now"
)
COMMITS_HELD = Counter(
    "gsch_commit_held_total",
    "Decisions held back from a batch because another worker's batch in flight reserves "
    "on one of their nodes (sent once it is settled, instead of into a refusal)",
)
BINDING_DURATION = Histogram(
    "gsch_binding_duration_seconds",
    "Time to apply a placement on a member cluster",
    ["member_cluster", "result"],
    buckets=ATTEMPT_BUCKETS,
)
PROJECTION_LAST_SEQ = Gauge(
    "gsch_projection_last_applied_sequence", "Last event stream sequence in the read model"
)
PROJECTION_LAG = Gauge(
    "gsch_projection_lag_events", "Events in the stream not yet applied to the read model"
)
SNAPSHOT_LAST_SEQ = Gauge(
    "gsch_snapshot_last_applied_sequence", "Last cluster event folded into the worker snapshot"
)
AGENT_LAST_HEARTBEAT = Gauge(
    "gsch_agent_last_heartbeat_timestamp_seconds",
    "When the binder last heard an agent of the member cluster (its start, before the first)",
    ["member_cluster"],
)
# --- bounded history: snapshots, compaction, retention, start-up --------------------------
SNAPSHOT_NEWEST_SEQ = Gauge(
    "gsch_snapshot_newest_sequence",
    "Event-log sequence of the newest cluster-state snapshot in the snapshot store",
)
SNAPSHOT_NEWEST_TIME = Gauge(
    "gsch_snapshot_newest_timestamp_seconds",
    "When the newest cluster-state snapshot was written (unix time; its age is time() - this)",
)
SNAPSHOT_BYTES = Gauge("gsch_snapshot_bytes", "Size of the last snapshot this process wrote")
SNAPSHOT_WRITES = Counter(
    "gsch_snapshot_writes_total", "Cluster-state snapshots written, by result", ["result"]
)
SNAPSHOT_LOADED_SEQ = Gauge(
    "gsch_snapshot_loaded_sequence",
    "Sequence of the snapshot this process started from (0: it replayed the log)",
)
SNAPSHOT_LOAD_FAILURES = Counter(
    "gsch_snapshot_load_failures_total",
    "Snapshots skipped at start because a check failed (corrupt, unreadable, behind the"
    " compaction watermark)",
    ["reason"],
)
STARTUP_DURATION = Gauge(
    "gsch_startup_duration_seconds",
    "Seconds the cluster state took to be ready at start, by phase (snapshot, replay, total)",
    ["phase"],
)
EVENT_LOG_OUTDATED = Gauge(
    "gsch_event_log_outdated",
    "1 while the event log's declaration is older than this version's: housekeeping cannot"
    " purge it until the operator runs `gsch streams <action>` (apply: in place; migrate: the"
    " server cannot change it in place)",
    ["action"],
)
EVENT_LOG_ACTIONS = ("apply", "migrate")
STARTUP_REPLAYED = Gauge(
    "gsch_startup_replayed_events", "Cluster events folded at start after the snapshot"
)
COMPACTION_RUNS = Counter(
    "gsch_compaction_runs_total",
    "Compaction passes, by result (ok; full: read the whole log; skipped; error)",
    ["result"],
)
COMPACTION_PURGED = Counter(
    "gsch_compaction_purged_events_total",
    "Events removed from the log: cluster (behind a snapshot), request (retention), expiry",
    ["kind"],
)
COMPACTION_WATERMARK = Gauge(
    "gsch_compaction_watermark_sequence",
    "Cluster events at or below this sequence may have been compacted away",
)
REQUESTS_EXPIRED = Counter("gsch_requests_expired_total", "Finished requests removed by retention")
STREAM_BYTES = Gauge("gsch_event_stream_bytes", "Bytes the event log stream holds")
STREAM_MESSAGES = Gauge("gsch_event_stream_messages", "Messages the event log stream holds")
NATS_ERRORS = Counter("gsch_nats_errors_total", "Errors reported by the NATS client", ["kind"])
HTTP_REQUESTS = Counter(
    "gsch_http_requests_total",
    "HTTP requests by route template, method and code",
    ["route", "method", "code"],
)
HTTP_DURATION = Histogram(
    "gsch_http_request_duration_seconds",
    "Time to answer an HTTP request (change feeds, which stream, are not timed)",
    ["route", "method"],
    buckets=HTTP_BUCKETS,
)

# --- from the read model (API processes) -------------------------------------------------
PENDING_REQUESTS = Gauge(
    "gsch_pending_requests",
    "Requests waiting or being scheduled per queue level (first, fast, base), and those"
    " parked until capacity appears (blocked)",
    ["queue"],
)
CLUSTER_READY = Gauge(
    "gsch_cluster_ready", "1 when the member cluster is ready", ["member_cluster", "tier"]
)
CLUSTER_ALLOCATABLE = Gauge(
    "gsch_cluster_allocatable",
    "Allocatable resources of a member cluster's nodes (cpu in cores, memory in bytes)",
    ["member_cluster", "tier", "resource", "unit"],
)
CLUSTER_RESERVED = Gauge(
    "gsch_cluster_reserved",
    "Resources of a member cluster reserved by gsch placements (cpu in cores, memory in bytes)",
    ["member_cluster", "tier", "resource", "unit"],
)

# The closed label sets, so that every series exists (at 0) from the start: a rate over a
# series that is missing is no data, not zero, and a dashboard cannot tell it from breakage.
ATTEMPT_RESULTS = ("scheduled", "unschedulable", "error")
CONFLICT_SCOPES = ("request", "node", "node_seen")
RETRY_REASONS = ("unschedulable", "commit_conflicts", "binding_failed")
E2E_STAGES = ("scheduled", "bound", "finished")
SNAPSHOT_LOAD_REASONS = ("corrupt", "unreadable", "behind_watermark")
STARTUP_PHASES = ("snapshot", "replay", "total")


def initialise_labels(policies: Iterable[str], roles: Collection[str]) -> None:
    """Create the series of the closed label sets for what a process of `roles` does."""
    if "worker" in roles:
        for policy in policies:
            for result in ATTEMPT_RESULTS:
                SCHEDULE_ATTEMPTS.labels(result=result, policy=policy)
            for result in ATTEMPT_RESULTS[:2]:
                ATTEMPT_DURATION.labels(result, policy)
        for scope in CONFLICT_SCOPES:
            COMMIT_CONFLICTS.labels(scope=scope)
        for result in ("cancelled", "noop", "invalid"):
            CANCELS.labels(result=result)
        for kind in INTENT_KINDS:
            INTENTS_SENT.labels(kind=kind)
            INTENTS_RECEIVED.labels(kind=kind)
        for reason in INTENT_IGNORED_REASONS:
            INTENTS_IGNORED.labels(reason=reason)
        for how in INTENT_SETTLED_HOW:
            INTENTS_SETTLED.labels(how=how)
    if "notifier" in roles:
        for result in CALLBACK_RESULTS:
            CALLBACKS.labels(result=result)
    if {"worker", "binder"} & set(roles):
        for reason in RETRY_REASONS:
            RETRIES.labels(reason=reason)
    if {"worker", "binder", "api"} & set(roles):
        for stage in E2E_STAGES:
            E2E_DURATION.labels(stage=stage)
        for reason in SNAPSHOT_LOAD_REASONS:
            SNAPSHOT_LOAD_FAILURES.labels(reason=reason)
        for phase in STARTUP_PHASES:
            STARTUP_DURATION.labels(phase=phase)
    for action in EVENT_LOG_ACTIONS:  # every process checks the log's declaration at start
        EVENT_LOG_OUTDATED.labels(action=action)
    if "housekeeper" in roles:
        for result in ("ok", "error"):
            SNAPSHOT_WRITES.labels(result=result)
        for result in ("ok", "full", "skipped", "error"):
            COMPACTION_RUNS.labels(result=result)
        for kind in ("cluster", "request", "expiry"):
            COMPACTION_PURGED.labels(kind=kind)
