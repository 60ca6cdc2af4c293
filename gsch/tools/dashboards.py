"""The Grafana dashboards, as code: `python -m gsch.tools.dashboards` writes them to
config/grafana/dashboards/ as classic dashboard JSON (Grafana 9 and later load it), built with
Grafana's typed builders (`grafana-foundation-sdk`, the `dashboards` extra; pinned to its
Grafana 11.6 build: unpinned, pip picks the 10.1 build, whose epoch is higher).

Conventions every dashboard follows (the tests check them): a stable `uid`, a `datasource`
variable that every panel uses (no `__inputs`, which file provisioning cannot resolve), a
`member_cluster` variable, and `$__rate_interval` in every range function.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DashboardLink,
    DatasourceVariable,
    QueryVariable,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    GridPos,
    VariableRefresh,
    VariableSort,
)

# What grafana-foundation-sdk's Grafana 11.6 build writes; the tests pin it, so an SDK
# upgrade that moves the schema is a visible change.
SCHEMA_VERSION = 41
TAGS = ["gsch"]
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
MC = 'member_cluster=~"$member_cluster"'  # the member-cluster filter of a selector
RATE = "[$__rate_interval]"


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12


def quantiles(metric: str, by: str, selector: str = "") -> tuple[tuple[str, str], ...]:
    """p50 and p99 of a histogram, per `by`."""
    series = f"{metric}_bucket{{{selector}}}" if selector else f"{metric}_bucket"
    rated = f"sum by (le{', ' + by if by else ''}) (rate({series}{RATE}))"
    legend = f"{{{{{by}}}}} " if by else ""
    return tuple(
        (f"histogram_quantile({q}, {rated})", f"{legend}p{int(q * 100)}") for q in (0.5, 0.99)
    )


OVERVIEW = (
    Panel("Placements per second", "Attempts that committed a placement, by policy",
          (("sum by (policy) (rate(gsch_schedule_attempts_total{result=\"scheduled\"}"
            f"{RATE}))", "{{policy}}"),), "reqps"),
    Panel("Attempts by result", "Scheduling attempts: scheduled, unschedulable, error",
          ((f"sum by (result) (rate(gsch_schedule_attempts_total{RATE}))", "{{result}}"),),
          "reqps"),
    Panel("Attempt latency", "Claim to committed placement (or giving up), p50 and p99",
          quantiles("gsch_scheduling_attempt_duration_seconds", ""), "s"),
    Panel("End-to-end latency", "Submission to scheduled, bound and finished, p50 and p99",
          quantiles("gsch_e2e_scheduling_duration_seconds", "stage"), "s"),
    Panel("Queue depth per level", "Requests waiting or being scheduled: First, Fast, Base",
          (("sum by (queue) (gsch_pending_requests)", "{{queue}}"),)),
    Panel("Commit conflicts", "Conditional appends that lost a race and re-planned, by scope",
          ((f"sum by (scope) (rate(gsch_placement_conflicts_total{RATE}))", "{{scope}}"),),
          "ops"),
    Panel("Retries by reason", "Failed attempts requeued with backoff, by reason",
          ((f"sum by (reason) (rate(gsch_request_retries_total{RATE}))", "{{reason}}"),),
          "ops"),
    Panel("Rejected at intake", "Requests rejected before any work, by field",
          (("sum by (field) (increase(gsch_requests_rejected_total"
            f"{RATE}))", "{{field}}"),)),
    Panel("Bindings per member cluster", "Placements applied per second, by result",
          ((f"sum by (member_cluster, result) (rate(gsch_binding_duration_seconds_count{{{MC}}}"
            f"{RATE}))", "{{member_cluster}} {{result}}"),), "ops", width=24),
)  # fmt: skip

CLUSTERS = (
    Panel("Ready", "1 when the member cluster is ready", ((
        f"max by (member_cluster) (gsch_cluster_ready{{{MC}}})", "{{member_cluster}}"),),
        kind="stat", width=24),
    Panel("CPU reserved", "Share of allocatable CPU reserved by gsch placements", ((
        f'sum by (member_cluster) (gsch_cluster_reserved{{resource="cpu", {MC}}})'
        f' / sum by (member_cluster) (gsch_cluster_allocatable{{resource="cpu", {MC}}})',
        "{{member_cluster}}"),), "percentunit"),
    Panel("Memory reserved", "Share of allocatable memory reserved by gsch placements", ((
        f'sum by (member_cluster) (gsch_cluster_reserved{{resource="memory", {MC}}})'
        f' / sum by (member_cluster) (gsch_cluster_allocatable{{resource="memory", {MC}}})',
        "{{member_cluster}}"),), "percentunit"),
    Panel("Allocatable CPU per tier", "Cores of the nodes per tier (cloud, edge, near-edge)", ((
        f'sum by (tier) (gsch_cluster_allocatable{{resource="cpu", {MC}}})', "{{tier}}"),)),
    Panel("Reserved CPU per tier", "Cores reserved by gsch placements per tier", ((
        f'sum by (tier) (gsch_cluster_reserved{{resource="cpu", {MC}}})', "{{tier}}"),)),
    Panel("Binding latency", "Time to apply a placement on the member cluster, p50 and p99",
          quantiles("gsch_binding_duration_seconds", "member_cluster", MC), "s"),
    Panel("Binding failures", "Failed bindings per second, per member cluster", ((
        f'sum by (member_cluster) (rate(gsch_binding_duration_seconds_count{{result="failed", '
        f"{MC}}}{RATE}))", "{{member_cluster}}"),), "ops"),
)  # fmt: skip

EVENT_STORE = (
    Panel("Events appended", "Events appended to the log per second, by type", ((
        f"sum by (type) (rate(gsch_event_appends_total{RATE}))", "{{type}}"),), "ops"),
    Panel("Projection lag", "Events in the log not yet in each API's read model", ((
        "max by (instance) (gsch_projection_lag_events)", "{{instance}}"),)),
    Panel("Last applied sequence", "Read models and worker snapshots: last stream sequence", (
        ("max by (instance) (gsch_projection_last_applied_sequence)", "read model {{instance}}"),
        ("max by (instance) (gsch_snapshot_last_applied_sequence)", "snapshot {{instance}}"))),
    Panel("HTTP requests", "API requests per second by route template and code", ((
        f"sum by (route, code) (rate(gsch_http_requests_total{RATE}))", "{{route}} {{code}}"),),
        "reqps"),
    Panel("HTTP latency", "API answer time by route, p50 and p99",
          quantiles("gsch_http_request_duration_seconds", "route"), "s", width=24),
    Panel("Event log size", "Bytes and messages the event log stream holds (levels off once"
          " retention and compaction keep pace)", (
        ("max(gsch_event_stream_bytes)", "bytes"),
        ("max(gsch_event_stream_messages)", "messages"))),
    Panel("Snapshot age", "Seconds since the newest cluster-state snapshot was written", ((
        "time() - max(gsch_snapshot_newest_timestamp_seconds)", "age"),), "s"),
    Panel("Snapshot and compaction sequences", "Newest snapshot, compaction watermark and"
          " the snapshot each process started from", (
        ("max(gsch_snapshot_newest_sequence)", "newest snapshot"),
        ("max(gsch_compaction_watermark_sequence)", "compacted through"),
        ("max by (instance) (gsch_snapshot_loaded_sequence)", "started from {{instance}}"))),
    Panel("Compaction", "Compaction passes by result, and events removed per second by kind", (
        (f"sum by (result) (rate(gsch_compaction_runs_total{RATE}))", "runs {{result}}"),
        (f"sum by (kind) (rate(gsch_compaction_purged_events_total{RATE}))",
         "removed {{kind}}"))),
    Panel("Start-up", "Seconds from start to a complete cluster state, by phase, and the"
          " cluster events folded after the snapshot", (
        ("max by (instance, phase) (gsch_startup_duration_seconds)", "{{instance}} {{phase}}"),
        ("max by (instance) (gsch_startup_replayed_events)", "{{instance}} events replayed"))),
    Panel("Snapshots skipped", "Snapshots a starting process could not use, by reason", ((
        f"sum by (reason) (increase(gsch_snapshot_load_failures_total{RATE}))",
        "{{reason}}"),)),
    Panel("Group commit batches", "Atomic batches each worker sends per second, and decisions"
          " per batch (on a one-replica file stream every batch costs the server fsyncs)", (
        (f"sum by (instance) (rate(gsch_group_commit_batches_total{RATE}))",
         "batches/s {{instance}}"),
        (f"sum by (instance) (rate(gsch_group_commit_decisions_sum{RATE}))"
         f" / sum by (instance) (rate(gsch_group_commit_decisions_count{RATE}))",
         "decisions per batch {{instance}}"))),
    Panel("Group commit waits", "p99 of a decision's wait to be sent and of a batch's round"
          " trip; the gap between batches grows while they queue at the server", (
        ("histogram_quantile(0.99, sum by (le) (rate(gsch_group_commit_wait_seconds_bucket"
         f"{RATE})))", "wait to be sent p99"),
        ("histogram_quantile(0.99, sum by (le) (rate(gsch_group_commit_round_trip_seconds_bucket"
         f"{RATE})))", "round trip p99"),
        ("max by (instance) (gsch_group_commit_gap_seconds)", "gap {{instance}}")), "s"),
)  # fmt: skip

DASHBOARDS = {
    "gsch-overview": ("gsch / Overview", OVERVIEW),
    "gsch-clusters": ("gsch / Member clusters", CLUSTERS),
    "gsch-event-store": ("gsch / Event store", EVENT_STORE),
}


def dashboard(uid: str) -> dict[str, Any]:
    """The dashboard `uid` as Grafana's classic JSON model, built with Grafana's own typed
    builders (grafana-foundation-sdk), so every field is one Grafana's schema defines."""
    title, panels = DASHBOARDS[uid]
    builder = (
        Dashboard(title)
        .uid(uid)
        .tags(TAGS)
        .timezone("utc")
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-1h", "now")
        .link(DashboardLink("gsch").type(DashboardLinkType.DASHBOARDS).tags(TAGS).as_dropdown(True))
    )
    for variable in _variables():
        builder = builder.with_variable(variable)
    for number, (panel, grid) in enumerate(_layout(panels), start=1):
        builder = builder.with_panel(_panel(number, panel, grid))
    encoded: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    # Grafana owns the numeric id and the version; provisioning overwrites by uid.
    return {**encoded, "id": None, "version": 1}


def _variables() -> list[DatasourceVariable | QueryVariable]:
    definition = "label_values(gsch_cluster_ready, member_cluster)"
    return [
        DatasourceVariable("datasource").label("Data source").type("prometheus"),
        QueryVariable("member_cluster")
        .label("Member cluster")
        .datasource(DATASOURCE)
        .query(definition)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .include_all(True)
        .multi(True)
        .all_value(".*")
        .sort(VariableSort.ALPHABETICAL_ASC),
    ]


def _layout(panels: tuple[Panel, ...]) -> list[tuple[Panel, GridPos]]:
    laid: list[tuple[Panel, GridPos]] = []
    x = y = 0
    for panel in panels:
        if x + panel.width > 24:
            x, y = 0, y + 8
        laid.append((panel, GridPos(h=8, w=panel.width, x=x, y=y)))
        x += panel.width
    return laid


def _panel(number: int, panel: Panel, grid: GridPos) -> TimeseriesPanel | StatPanel:
    built = TimeseriesPanel() if panel.kind == "timeseries" else StatPanel()
    built = (
        built.id(number)
        .title(panel.title)
        .description(panel.description)
        .datasource(DATASOURCE)
        .grid_pos(grid)
        .unit(panel.unit)
    )
    for index, (expr, legend) in enumerate(panel.targets):
        built = built.with_target(
            Dataquery()
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
            .expr(expr)
            .legend_format(legend)
            .range()
        )
    return built


def render(uid: str) -> str:
    return json.dumps(dashboard(uid), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else Path("config/grafana/dashboards")
    target.mkdir(parents=True, exist_ok=True)
    for uid in DASHBOARDS:
        (target / f"{uid}.json").write_text(render(uid))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
