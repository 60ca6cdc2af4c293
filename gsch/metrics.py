"""Every Prometheus metric of gsch, in one place. Names mirror kube-scheduler's under `gsch_`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from gsch import __version__

ATTEMPT_BUCKETS = (0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
                   2.048, 4.096, 8.192, 16.384)  # fmt: skip
E2E_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

BUILD_INFO = Info("gsch_build", "Version of the running gsch")
BUILD_INFO.info({"version": __version__})

SCHEDULE_ATTEMPTS = Counter(
    "gsch_schedule_attempts_total",
    "Scheduling attempts by result (scheduled, unschedulable, error) and policy",
    ["result", "policy"],
)
ATTEMPT_DURATION = Histogram(
    "gsch_scheduling_attempt_duration_seconds",
    "Time from claim to committed placement or to giving up on the attempt",
    ["result"],
    buckets=ATTEMPT_BUCKETS,
)
E2E_DURATION = Histogram(
    "gsch_e2e_scheduling_duration_seconds",
    "Time from acceptance of a request to a stage (scheduled or bound)",
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
EVENT_APPENDS = Counter("gsch_event_appends_total", "Events appended by type", ["type"])
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
NATS_ERRORS = Counter("gsch_nats_errors_total", "Errors reported by the NATS client", ["kind"])
HTTP_REQUESTS = Counter(
    "gsch_http_requests_total", "HTTP requests by route template and code", ["route", "code"]
)
