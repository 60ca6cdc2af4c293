"""Typed configuration: defaults < TOML file < GSCH_* environment variables < command-line flags.

Secrets are never literals in the file: options ending in `_file` name files to read.
Environment variables use `__` for nesting: `GSCH_NATS__URL`, `GSCH_SIMULATOR__BIND_DELAY`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

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
    "PersistentVolumeClaim",
)  # Secret only with admission.secret_key_file: its data is then sealed on the log

PodSecurity = Literal["privileged", "baseline", "restricted"]


class NatsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    url: str | None = None  # None: start the embedded nats-server
    user: str | None = None
    password_file: str | None = None
    token_file: str | None = None
    creds_file: str | None = None
    # An NKey seed for every connection of this process (one identity, whatever its roles).
    nkey_file: str | None = None
    # A bus directory (`gsch bus init`): each role connects with its own seed from it,
    # `<role>.nk`. Unset: `<data_dir>/bus` when it exists (the embedded server's).
    credentials_dir: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    replicas: int = 1  # R1 or R3 for every stream and consumer
    embedded_port: int = 0  # 0: a free port, remembered in <data_dir>/nats/port
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
    # Parking is bounded: at most this many blocked requests held per worker (more are
    # handed back to the queue and looked at again after `blocked_recheck_seconds`), and a
    # request blocked for longer than `max_blocked_seconds` ends as failed with its reason.
    max_parked: int = 10_000
    max_blocked_seconds: float = 3600.0
    # A cancel for an id the log does not know yet cancels the request only if it is
    # published within this many seconds after the cancel; then the cancel has expired.
    cancel_before_arrival_seconds: float = 300.0


class WorkerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_in_flight: int = 512  # attempts running at once
    max_queued: int = 512  # messages held beyond those, queued by level for dispatch rounds
    fetch_batch: int = 128
    max_conflict_retries: int = 20
    # Tell competing workers what each batch is about to reserve, and hold back decisions
    # their batches in flight would make stale (gsch.scheduler.intents).
    intents: bool = True


class IntakeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    max_request_bytes: int = 262144
    max_levels: int = 16  # levels of select_clusters
    max_clusters_per_level: int = 128  # names or selectors in one level
    max_clusters: int = 256  # names or selectors over all levels
    max_documents: int = 32  # manifests in one workload
    allowed_kinds: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_ALLOWED_KINDS))


class SimulatorConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    topology: str | None = None  # a topology TOML file; None: no simulated clusters
    bind_delay: float = 0.02  # seconds a binding takes
    bind_failure_rate: float = 0.0  # share of bindings that fail (retried by the queue)
    workload_lifetime: float | None = None  # seconds a bound workload runs, None: forever
    # Real seconds per modelled second of a topology's duration model ([workloads]): 0.01
    # runs a 100 s workload in 1 s.
    time_scale: float = 1.0
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
    # gsch's service account in a member cluster (in admission.gsch_namespace): each namespace
    # gsch creates binds the ClusterRole gsch-workloads to it (config/rbac/gsch-member.yaml).
    service_account: str = "gsch"
    probe: ProbeConfig = msgspec.field(default_factory=ProbeConfig)


class PlannerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Seconds a latency report ranks clusters for, judged against the newest event the
    # cluster snapshot holds (not the worker's clock); unset: reports never expire.
    max_latency_age: float | None = None


class ProjectConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`[projects.<name>]`: the clusters the project's requests may be placed on, and what
    its workloads may do (see `AdmissionConfig`)."""

    clusters: list[str] = msgspec.field(default_factory=list)
    selectors: list[str] = msgspec.field(default_factory=list)  # e.g. "tier=edge&region=kr"
    pod_security: PodSecurity | None = None  # None: admission.pod_security
    namespaces: list[str] = msgspec.field(default_factory=list)  # besides <project>-<workspace>
    service_accounts: list[str] | None = None  # None: any (but the denied); else these + default
    allow: list[str] = msgspec.field(default_factory=list)  # node-name, tolerate-all, external-ips


class AdmissionConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`[admission]`: what a workload may do on a member cluster, for every request (projects
    may set their own level and exemptions)."""

    pod_security: PodSecurity = "baseline"  # Kubernetes Pod Security Standard by default
    shared_namespaces: list[str] = msgspec.field(default_factory=lambda: ["default"])
    denied_namespaces: list[str] = msgspec.field(default_factory=list)  # besides kube-*, gsch's
    gsch_namespace: str = "gsch-system"  # where gsch runs in a member cluster: never a target
    denied_service_accounts: list[str] = msgspec.field(default_factory=list)
    secret_key_file: str | None = None  # seals Secret data; without it a Secret is refused
    # The workspace's part of `<project>-<workspace>`: its name, or (GEdge installations,
    # whose namespaces are `<project>-<workspace_uid>`) its uid.
    workspace_namespace: Literal["name", "uid"] = "name"


class AuthConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Bearer tokens, read from files. Without `token_file` every write endpoint answers 403:
    a deployment that forgot its secret must not accept anonymous writes."""

    token_file: str | None = None  # required on write endpoints (POST /v1/requests, cancel)
    read_token_file: str | None = None  # when set, reads need it (or the write token)
    # POST /v1/plan needs this token or the write token: a plan costs CPU, so it is not open.
    plan_token_file: str | None = None


class ApiConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    listen: str = "127.0.0.1:8080"
    database: str | None = None  # default <data_dir>/readmodel.sqlite
    max_body_bytes: int = 1048576  # larger request bodies answer 413
    max_wait: float = 10.0  # the longest a `?min_seq=` read waits for the projection
    submit_wait: float = 5.0  # how long POST /v1/requests waits for the request's first event
    # A `continue` token expires (410) once the log has moved on by this many events.
    continue_window: int = 1_000_000
    # None: a secret generated into <data_dir>/continue.secret (mode 0600) on first start.
    continue_secret_file: str | None = None
    watch_heartbeat: float = 15.0  # seconds between SSE heartbeats on an idle change feed
    watch_max_seconds: float = 3600.0  # an SSE stream ends after this; clients resume
    # POST /v1/plan runs in planner processes with their own cluster snapshot, never on the
    # API's event loop: this many at once, this many more waiting (beyond: 503), each plan
    # at most `plan_timeout` seconds (then its process is replaced), at a lower CPU priority.
    plan_processes: int = 1
    plan_queue: int = 8
    plan_timeout: float = 10.0
    plan_niceness: int = 10
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)


class GedgeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`[gedge]`: GEdge's clients and inputs (README "Coming from GEdge").

    The HTTP door for GEdge's front-server and gm-center shapes exists only when `token_file`
    is set: it has a token of its own, given as `Authorization: Bearer`, in `token_header`
    (a header a gateway can be configured to add), or as the path prefix `/gedge/<token>`
    (for a gateway whose only setting is the URL, like gm-center's GS_SCHEDULER)."""

    token_file: str | None = None
    token_header: str = "X-Gsch-Gedge-Token"
    # GEdge's UI makes ids as "requestId" + 1..9999, so they collide: give every request
    # through the door an id of its own (the client's id is kept beside it).
    fresh_ids: bool = True
    verdict_wait: float = 5.0  # seconds the door waits for a worker's accept or reject
    # GEdge dashboard cluster names (e.g. "mec(ilsan)") -> gsch cluster names.
    cluster_aliases: dict[str, str] = msgspec.field(default_factory=dict)
    resource_aliases: dict[str, str] = msgspec.field(
        default_factory=lambda: {"NVIDIAGPU": "nvidia.com/gpu"}
    )
    # schedulerName -> replacement ("" removes it: kube-scheduler binds to gsch's node).
    scheduler_names: dict[str, str] = msgspec.field(
        default_factory=lambda: {"griffin_scheduler": ""}
    )


class CallbacksConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`[callbacks]`: POSTing a settled request's result to its `callback_url`."""

    # host, host:port or *.domain; empty: no request may name a callback URL.
    allowed_hosts: list[str] = msgspec.field(default_factory=list)
    method: Literal["POST", "PUT"] = "POST"  # gm-center's /callback-scheduler takes PUT
    timeout: float = 10.0  # per call
    max_attempts: int = 8  # then CallbackFailed(final) and the notifier moves on
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    max_in_flight: int = 32  # calls at once per notifier process


class MetricsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """/metrics of processes without the api role (the api serves it on its own listener).
    Port 0 takes a free port, logged at start; an empty string turns the listener off."""

    listen: str = "127.0.0.1:0"
    refresh_interval: float = 5.0  # how often read-model gauges (queues, capacity) refresh


# Bounds the history settings are checked against when the config is read (msgspec names
# the key and the bound: "Expected `int` >= 2 - at `$.snapshots.keep`").
_Seconds = Annotated[float, msgspec.Meta(ge=0)]
_PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]


class SnapshotsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Cluster-state snapshots and compaction, run by the housekeeper role."""

    interval: _Seconds = 300.0  # seconds between snapshots; 0: only `gsch snapshot`
    # Slots in the object store; compaction stays one snapshot behind the newest.
    keep: Annotated[int, msgspec.Meta(ge=2)] = 3
    compact: bool = True  # purge cluster events behind the second newest good snapshot
    load_timeout: _PositiveSeconds = 30.0  # reading one snapshot at start


class RetentionConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How long finished requests (bound and finished, failed, cancelled, rejected) stay."""

    finished_requests: _Seconds = 7 * 86400.0  # seconds after the end; 0: for ever
    expired_ids: _Seconds = 30 * 86400.0  # an expired id answers 410 this long, then 404
    interval: _PositiveSeconds = 300.0  # seconds between retention passes
    batch: Annotated[int, msgspec.Meta(ge=1)] = 1000  # requests removed per pass at most
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
    admission: AdmissionConfig = msgspec.field(default_factory=AdmissionConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    gedge: GedgeConfig = msgspec.field(default_factory=GedgeConfig)
    callbacks: CallbacksConfig = msgspec.field(default_factory=CallbacksConfig)
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
