"""The workload attacks of issue 11, through `gsch.requests` on a real nats-server with a
worker, the binder and the API running on the default configuration. Before admission each of
these was accepted and bound; now each is rejected with the field and the rule in its reason,
and a Secret's value is nowhere on the log or in the API."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.client import Client

from gsch.audit import audit
from gsch.client import publish_request
from gsch.eventstore.store import EventStore
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.service import Running
from tests.support.pipeline import get_json, make_config, running
from tests.support.waits import eventually

LEVELS = [["near-daejeon-1", "near-daejeon-2"], "edge-daejeon", "cloud-kr"]
PLAIN = "correct-horse-battery-staple"
PLAIN_B64 = base64.b64encode(PLAIN.encode()).decode()


def pod(**spec: Any) -> dict[str, Any]:
    container = {"name": "c", "image": "busybox",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}  # fmt: skip
    containers = spec.pop("containers", [container])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": containers, **spec}}  # fmt: skip


def with_security(**security: Any) -> list[dict[str, Any]]:
    return [{"name": "c", "image": "busybox", "securityContext": security}]


SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
          "data": {"password": PLAIN_B64}, "stringData": {"token": PLAIN}}  # fmt: skip

# (request id, request fields, what its rejection reason must start with)
ATTACKS: list[tuple[str, dict[str, Any], str]] = [
    ("privileged", {"workload": pod(containers=with_security(privileged=True))},
     'workload[0].spec.containers[0].securityContext.privileged: forbidden by Pod Security '
     'Standard "baseline"'),
    ("host-path-root", {"workload": pod(volumes=[{"name": "r", "hostPath": {"path": "/"}}])},
     'workload[0].spec.volumes[0].hostPath: forbidden by Pod Security Standard "baseline"'),
    ("host-network", {"workload": pod(hostNetwork=True)},
     'workload[0].spec.hostNetwork: forbidden by Pod Security Standard "baseline"'),
    ("host-pid", {"workload": pod(hostPID=True)},
     'workload[0].spec.hostPID: forbidden by Pod Security Standard "baseline"'),
    ("sys-admin", {"workload": pod(containers=with_security(capabilities={"add": ["SYS_ADMIN"]}))},
     "workload[0].spec.containers[0].securityContext.capabilities.add[0]: forbidden by Pod "
     'Security Standard "baseline"'),
    ("node-name", {"workload": pod(nodeName="near-daejeon-1-w1")},
     'workload[0].spec.nodeName: forbidden by gsch admission rule "node-name"'),
    ("tolerate-all", {"workload": pod(tolerations=[{"operator": "Exists"}])},
     'workload[0].spec.tolerations[0]: forbidden by gsch admission rule "tolerate-all"'),
    ("kube-system-account",
     {"workload": pod(serviceAccountName="system:serviceaccount:kube-system:default")},
     'workload[0].spec.serviceAccountName: forbidden by gsch admission rule "service-account"'),
    ("kube-system-namespace", {"namespace": "kube-system", "workload": pod()},
     "namespace: 'kube-system' is forbidden by gsch admission rule \"namespace\""),
    ("kube-system-project", {"project_name": "kube", "workspace_name": "system",
                             "workload": pod()},
     "namespace: 'kube-system' (from project 'kube' and workspace 'system') is forbidden"),
    ("plain-secret", {"workload": [SECRET, pod()]},
     "workload[0].kind: Secret is not an allowed kind"),
]  # fmt: skip


async def _publish(nc: Client, request_id: str, fields: dict[str, Any]) -> None:
    body = {"request_id": request_id, "policy": "GMostRequestedPriority",
            "select_clusters": LEVELS, **fields}  # fmt: skip
    await publish_request(nc, msgspec.json.encode(body), request_id)


async def _raw_log(nc: Client, store: EventStore) -> bytes:
    """Every event the log holds, as stored."""
    js = nc.jetstream()
    last = await store.last_seq()
    stored = [await js.get_msg("GSCH_EVENTS", seq) for seq in range(1, last + 1)]
    return b"\n".join(message.data or b"" for message in stored)


async def _settled(service: Running, count: int) -> None:
    async def done() -> bool:
        report = await audit(service.store)
        return sum(report.states.get(s, 0) for s in ("rejected", "bound")) == count

    await eventually(done)


async def test_every_workload_attack_is_rejected_naming_field_and_rule(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    config = make_config(tmp_path, nats_server.url)
    async with running(config, {"worker", "binder", "api"}) as service:
        nc = await nats.connect(nats_server.url)
        try:
            for request_id, fields, _ in ATTACKS:
                await _publish(nc, request_id, fields)
            await _publish(nc, "harmless", {"project_name": "p1", "workspace_name": "w1",
                                            "workload": pod()})  # fmt: skip
            await _settled(service, len(ATTACKS) + 1)
            last = await service.store.last_seq()
            for request_id, _, expected in ATTACKS:
                answer = await get_json(
                    f"{service.api_url}/v1/requests/{request_id}?min_seq={last}"
                )
                assert answer["state"] == "rejected", answer
                assert str(answer["reason"]).startswith(expected), answer["reason"]
            harmless = await get_json(f"{service.api_url}/v1/requests/harmless?min_seq={last}")
            assert harmless["state"] == "bound", harmless
            # The Secret's value is not on the log (the rejection's excerpt is redacted), nor
            # in what anyone may read of the request.
            log = await _raw_log(nc, service.store)
            events = await get_json(f"{service.api_url}/v1/requests/plain-secret/events")
            for shown in (log, msgspec.json.encode(events)):
                assert PLAIN.encode() not in shown
                assert PLAIN_B64.encode() not in shown
        finally:
            await nc.close()


async def test_an_allowed_secret_is_bound_and_only_sealed_on_the_log(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    key = tmp_path / "secret.key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef!")
    config = make_config(tmp_path, nats_server.url)
    config.intake.allowed_kinds.append("Secret")
    config.admission.secret_key_file = str(key)
    async with running(config, {"worker", "binder", "api"}) as service:
        nc = await nats.connect(nats_server.url)
        try:
            fields = {"project_name": "p1", "workspace_name": "w1", "workload": [SECRET, pod()]}
            await _publish(nc, "sealed", fields)
            await _settled(service, 1)
            last = await service.store.last_seq()
            answer = await get_json(f"{service.api_url}/v1/requests/sealed?min_seq={last}")
            assert answer["state"] == "bound", answer
            log = await _raw_log(nc, service.store)
            assert b"gsch-sealed:v1:" in log
            assert PLAIN.encode() not in log
            assert PLAIN_B64.encode() not in log
        finally:
            await nc.close()
