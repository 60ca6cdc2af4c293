"""Typed configuration: defaults < TOML file < GSCH_* environment variables < command-line flags.

Secrets are never literals in the file: options ending in `_file` name files to read.
Environment variables use `__` for nesting: `GSCH_NATS__URL`, `GSCH_SIMULATOR__BIND_DELAY`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

DEFAULT_ALLOWED_KINDS = (
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "Service",
    "ConfigMap",
    "Secret",
    "PersistentVolumeClaim",
)


class NatsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: str | None = None  # None: start the embedded nats-server
    user: str | None = None
    password_file: str | None = None
    token_file: str | None = None
    creds_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    replicas: int = 1  # R1 or R3 for every stream and consumer
    embedded_port: int = 0  # 0: a free port, remembered in <data_dir>/nats.url
    request_timeout: float = 5.0


class QueueConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    per_level: int = 2  # N*
    first_after_failures: int = 2  # K*
    max_failures: int = 5  # Z*: more failures than this end the request as failed
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    lease_seconds: float = 30.0
    # A blocked request is re-planned when capacity it could use appears, and at least this
    # often (a dry plan, no event) in case a change was announced by nothing it watches.
    blocked_recheck_seconds: float = 30.0


class WorkerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_in_flight: int = 512  # attempts running at once
    max_queued: int = 512  # messages held beyond those, queued by level for dispatch rounds
    fetch_batch: int = 128
    max_conflict_retries: int = 20


class IntakeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_request_bytes: int = 262144
    allowed_kinds: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_ALLOWED_KINDS))


class SimulatorConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    topology: str | None = None  # a topology TOML file; None: no simulated clusters
    bind_delay: float = 0.02  # seconds a binding takes
    bind_failure_rate: float = 0.0  # share of bindings that fail (retried by the queue)
    workload_lifetime: float | None = None  # seconds a bound workload runs, None: forever
    seed: int | None = None


class MemberConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One Kubernetes member cluster (`[kube.clusters.NAME]`)."""

    # "central": gsch reaches the API server through `kubeconfig`/`context`.
    # "agent": `gsch agent --cluster NAME` runs inside the cluster and talks over NATS only;
    # in the agent's own config, `kubeconfig` unset means the in-cluster service account.
    mode: Literal["central", "agent"] = "central"
    kubeconfig: str | None = None
    context: str | None = None
    tier: str = "edge"
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    # Kinds this cluster accepts; None: the intake's allow-list.
    allowed_kinds: list[str] | None = None
    # Whether the binder probes this central cluster's latency from gsch's own host; None:
    # `[kube.probe] central`.
    probe: bool | None = None


class ProbeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The latency probe: TCP connect round trips, smoothed."""

    enabled: bool = True
    interval: float = 10.0  # seconds between rounds
    samples: int = 3  # connects per target per round
    timeout: float = 1.0  # per connect
    alpha: float = 0.3  # EWMA weight of a new round
    window: int = 50  # samples kept per target for the p95
    stale_after: float = 60.0  # a target not measured for this long leaves the report
    node_port: int = 10250  # the kubelet's port: open on every node
    # The binder probes its central clusters too (from gsch's own host), reporting as the
    # source `central_cluster`/`central_node`: where gsch runs (e.g. the cloud cluster).
    central: bool = False
    central_cluster: str = "gsch"
    central_node: str = "central"


class KubeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    clusters: dict[str, MemberConfig] = msgspec.field(default_factory=dict)
    unreachable_after: float = 15.0  # seconds of failed calls before a cluster is not ready
    coalesce_seconds: float = 1.0  # at most one inventory event per node per this window
    request_timeout: float = 10.0
    watch_seconds: int = 300  # server-side timeout of one watch request
    page_size: int = 500  # list page (`limit`)
    agent_timeout: float = 15.0  # the binder waits this long for an agent's reply
    # An agent announces itself this often; the binder declares its cluster not ready after
    # `agent_silence_seconds` without a word (several beats: one lost beat is no outage).
    agent_heartbeat_seconds: float = 5.0
    agent_silence_seconds: float = 20.0
    field_manager: str = "gsch"
    probe: ProbeConfig = msgspec.field(default_factory=ProbeConfig)


class PlannerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Seconds a latency report ranks clusters for, judged against the newest event the
    # cluster snapshot holds (not the worker's clock); unset: reports never expire.
    max_latency_age: float | None = None


class ProjectConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`[projects.<name>]`: the clusters the project's requests may be placed on."""

    clusters: list[str] = msgspec.field(default_factory=list)
    selectors: list[str] = msgspec.field(default_factory=list)  # e.g. "tier=edge&region=kr"


class AuthConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Bearer tokens, read from files. Without `token_file` every write endpoint answers 403:
    a deployment that forgot its secret must not accept anonymous writes."""

    token_file: str | None = None  # required on write endpoints (POST /v1/requests, cancel)
    read_token_file: str | None = None  # when set, reads need it (or the write token)


class ApiConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    listen: str = "127.0.0.1:8080"
    database: str | None = None  # default <data_dir>/readmodel.sqlite
    max_body_bytes: int = 1048576  # larger request bodies answer 413
    max_wait: float = 10.0  # the longest a `?min_seq=` read waits for the projection
    submit_wait: float = 5.0  # how long POST /v1/requests waits for the request's first event
    # A `continue` token expires (410) once the log has moved on by this many events.
    continue_window: int = 1_000_000
    continue_secret_file: str | None = None  # None: tamper-evident but forgeable tokens
    watch_heartbeat: float = 15.0  # seconds between SSE heartbeats on an idle change feed
    watch_max_seconds: float = 3600.0  # an SSE stream ends after this; clients resume
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)


class MetricsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """/metrics of processes without the api role (the api serves it on its own listener).
    Port 0 takes a free port, logged at start; an empty string turns the listener off."""

    listen: str = "127.0.0.1:0"
    refresh_interval: float = 5.0  # how often read-model gauges (queues, capacity) refresh


class SnapshotsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Cluster-state snapshots and compaction, run by the housekeeper of api processes."""

    interval: float = 300.0  # seconds between snapshots; 0: only `gsch snapshot`
    keep: int = 3  # slots in the object store; compaction stays behind the newest
    compact: bool = True  # purge cluster events behind the second newest good snapshot
    load_timeout: float = 30.0  # reading one snapshot at start


class RetentionConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How long finished requests (bound and finished, failed, cancelled, rejected) stay."""

    finished_requests: float = 7 * 86400.0  # seconds after the end; 0: for ever
    expired_ids: float = 30 * 86400.0  # an expired id answers 410 this long, then 404
    interval: float = 300.0  # seconds between retention passes
    batch: int = 1000  # requests removed per pass at most
    export_dir: str | None = None  # NDJSON of each expired request's events, before removal


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    data_dir: str = "var"
    log_level: str = "INFO"
    nats: NatsConfig = msgspec.field(default_factory=NatsConfig)
    queue: QueueConfig = msgspec.field(default_factory=QueueConfig)
    worker: WorkerConfig = msgspec.field(default_factory=WorkerConfig)
    intake: IntakeConfig = msgspec.field(default_factory=IntakeConfig)
    simulator: SimulatorConfig = msgspec.field(default_factory=SimulatorConfig)
    api: ApiConfig = msgspec.field(default_factory=ApiConfig)
    kube: KubeConfig = msgspec.field(default_factory=KubeConfig)
    planner: PlannerConfig = msgspec.field(default_factory=PlannerConfig)
    # No projects: requests naming a project are not restricted to any clusters.
    projects: dict[str, ProjectConfig] = msgspec.field(default_factory=dict)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    snapshots: SnapshotsConfig = msgspec.field(default_factory=SnapshotsConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def database_path(self) -> Path:
        return Path(self.api.database) if self.api.database else self.data_path / "readmodel.sqlite"


class ConfigError(Exception):
    """The configuration is invalid; the message names the option."""


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _from_environment(environ: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith("GSCH_") or name == "GSCH_CONFIG":
            continue
        path = name[len("GSCH_") :].lower().split("__")
        target = result
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return result


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    environ = dict(os.environ) if environ is None else environ
    data: dict[str, Any] = {}
    path = path or environ.get("GSCH_CONFIG")
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    data = _merge(data, _from_environment(environ))
    data = _merge(data, overrides or {})
    try:
        # strict=False lets environment strings become numbers and booleans.
        return msgspec.convert(data, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc


def read_secret(path: str | None) -> str | None:
    if path is None:
        return None
    return Path(path).read_text().strip()
