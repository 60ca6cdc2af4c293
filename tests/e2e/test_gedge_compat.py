"""GEdge compatibility, end to end: GEdge's clients and inputs against a running gsch (API,
worker, binder and notifier on a real nats-server), unchanged.

Every route of the GEdge door (v4 front server, gm-center forwarding, token in the path, in
a header, as a bearer), every form field (and the v3 spelling `selected_clusters`), the
Python-literal cluster lists, the policy and mode spellings of GEdge's UI and server,
`workspace_uid` and the `<project>-<workspace_uid>` namespace, `NVIDIAGPU`,
`griffin_scheduler`, a dashboard cluster name (`mec(ilsan)`), GEdge's multi-document YAMLs
on the bus, the API and the dry run, projects and workspaces declared at run time, and the
callbacks, which must arrive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gsch.eventstore.intake import publish_intake
from gsch.runtime.config import load_config
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.service import Running
from gsch.runtime.tenancy import declare_from_file
from tests.support.gedge import (
    EMBEDDED_SNAKE,
    EMBEDDED_V2,
    SERVICE_AND_POD,
    TOPOLOGY,
    UI_DEPLOYMENT_AND_SERVICE,
    UI_POD,
    CallbackReceiver,
    callback_receiver,
    ui_options,
)
from tests.support.pipeline import running

API_TOKEN = "api-token"
DOOR_TOKEN = "door-token-7f3a"
UID = "3f6e2a1c-uid1"  # workspace w1's uid: its namespaces are p1-<uid>


@dataclass
class Gedge:
    url: str
    session: aiohttp.ClientSession
    receiver: CallbackReceiver
    nc: Any
    service: Running

    async def front(
        self, route: str, yaml: bytes, token: str | None = DOOR_TOKEN, **fields: str
    ) -> tuple[int, dict[str, Any]]:
        form = aiohttp.FormData()
        form.add_field("yaml_file", yaml, filename="app.yaml", content_type="application/x-yaml")
        for name, value in fields.items():
            form.add_field(name, value)
        headers = {"X-Gsch-Gedge-Token": token} if token else {}
        async with self.session.post(
            f"{self.url}/GEP/GSCH/test/{route}", data=form, headers=headers
        ) as response:
            return response.status, await response.json()

    async def gateway(
        self, yaml: bytes, path: str | None = None, **query: str
    ) -> tuple[int, dict[str, Any]]:
        """As gm-center forwards: YAML body sent as JSON, no Authorization header; the door's
        token in the URL path (GS_SCHEDULER is gm-center's only setting)."""
        path = path or f"/gedge/{DOOR_TOKEN}/gmcapi/v2/gs-scheduler"
        async with self.session.post(
            f"{self.url}{path}", params=query, data=yaml,
            headers={"Content-Type": "application/json; charset=utf-8"},
        ) as response:  # fmt: skip
            return response.status, await response.json()

    async def get(self, path: str, **params: Any) -> Any:
        async with self.session.get(f"{self.url}{path}", params=params) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def write(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        async with self.session.request(
            method, f"{self.url}{path}", json=body,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        ) as response:  # fmt: skip
            return response.status, await response.json()

    async def write_raw(self, path: str, body: bytes) -> tuple[int, Any]:
        async with self.session.post(
            f"{self.url}{path}", data=body,
            headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/yaml"},
        ) as response:  # fmt: skip
            return response.status, await response.json()

    async def settled(self, request_id: str) -> dict[str, Any]:
        """The request once its callback arrived: the callback's body, the API's row and the
        request as accepted."""
        callback = await self.receiver.wait_for(request_id)
        row = await self.get(f"/v1/requests/{request_id}", min_seq=callback["event_sequence"])
        return {"callback": callback, "request": await self.accepted(request_id), **row}

    async def accepted(self, request_id: str) -> dict[str, Any]:
        """The typed request gsch made of it (from its RequestAccepted event)."""
        events = await self.get(f"/v1/requests/{request_id}/events")
        first = events["items"][0]
        assert first["type"] == "RequestAccepted", first
        request: dict[str, Any] = first["event"]["request"]
        return request


@pytest.fixture
async def gedge(
    request: pytest.FixtureRequest, nats_server: EmbeddedNats, nc: Any, tmp_path: Path
) -> AsyncIterator[Gedge]:
    door_options = getattr(request, "param", {})
    (tmp_path / "api-token").write_text(API_TOKEN)
    (tmp_path / "door-token").write_text(DOOR_TOKEN + "\n")
    (tmp_path / "topology.toml").write_text(TOPOLOGY)
    config = load_config(
        None,
        {
            "data_dir": str(tmp_path / "data"),
            "log_level": "WARNING",
            "nats": {"url": nats_server.url},
            "api": {"listen": "127.0.0.1:0", "max_wait": 5.0,
                    "auth": {"token_file": str(tmp_path / "api-token")}},
            "metrics": {"listen": ""},
            "simulator": {"topology": str(tmp_path / "topology.toml"), "bind_delay": 0.01},
            "admission": {"workspace_namespace": "uid"},
            # A loaded CI machine may take more than the default 5 s to give a verdict.
            "gedge": {"token_file": str(tmp_path / "door-token"), "verdict_wait": 30.0,
                      "cluster_aliases": {"mec(ilsan)": "mec-ilsan"}, **door_options},
            "callbacks": {"allowed_hosts": ["127.0.0.1"], "backoff_base": 0.05,
                          "backoff_max": 0.2, "max_attempts": 4},
        },
        environ={},
    )  # fmt: skip
    async with (
        callback_receiver() as receiver,
        running(config, {"api", "worker", "binder", "notifier"}) as service,
        aiohttp.ClientSession() as session,
    ):
        assert service.api_url is not None
        door = Gedge(service.api_url, session, receiver, nc, service)
        # GEdge's platform-info creates workspaces and projects at run time.
        status, body = await door.write(
            "PUT", "/v1/workspaces/w1", {"uid": UID, "user_name": "user1",
                                         "clusters": ["c1", "c2", "c3", "c4", "mec(ilsan)"]},
        )  # fmt: skip
        assert status == 200, body
        status, body = await door.write("PUT", "/v1/projects/p1", {"workspace": "w1"})
        assert status == 200, body
        yield door


def _request_id(answer: dict[str, Any]) -> str:
    result = answer["result"]
    assert result.startswith("request_id:"), answer
    return str(result.removeprefix("request_id:"))


# --- the v4 front server -------------------------------------------------------------------


async def test_front_server_low_latency_from_node(gedge: Gedge) -> None:
    status, answer = await gedge.front(
        "low", SERVICE_AND_POD, user_name="user1", workspace_name="w1", project_name="p1",
        callback_url=gedge.receiver.url, mode="fromnode", source_cluster="c1",
        source_node="c1wnode1", select_clusters="[['c3','c4'],'c2']", fast_option="fast",
    )  # fmt: skip
    assert status == 202, answer
    request_id = _request_id(answer)
    assert request_id.startswith("req-")  # GEdge's own id form
    settled = await gedge.settled(request_id)
    assert settled["callback"]["state"] == "bound"
    assert settled["callback"]["status"] == "completed"
    assert settled["state"] == "bound"
    request = settled["request"]
    assert request["policy"] == "GLowLatencyPriority"
    assert request["mode"] == "fromnode"
    assert request["fast"] is True
    # GEdge's namespace, found through the declared workspace's uid.
    assert request["namespace"] == f"p1-{UID}"
    assert request["workspace_uid"] == UID
    # Nearest competing cluster of the first level: c3 (1 ms) before c4 (5 ms).
    assert [p["cluster"] for p in settled["placements"]] == ["c3"]
    # The Service came along; griffin_scheduler is gone (kube-scheduler binds to gsch's node).
    kinds = [document["kind"] for document in request["workload"]]
    assert kinds == ["Service", "Pod"]
    assert "schedulerName" not in request["workload"][1]["spec"]


async def test_front_server_low_latency_from_pod_in_the_uid_namespace(gedge: Gedge) -> None:
    status, answer = await gedge.front(
        "low", SERVICE_AND_POD, user_name="user1", workspace_name="w1", project_name="p1",
        mode="frompod", source_cluster="c1", pod_name="camera-1",
        select_clusters="[['c1','c2']]",
    )  # fmt: skip
    assert status == 202, answer
    request_id = _request_id(answer)
    request = await gedge.accepted(request_id)
    assert request["source"] == {"cluster": "c1", "pod": "camera-1"}
    assert request["namespace"] == f"p1-{UID}"
    # The pod is p1-<uid>/camera-1 on c1wnode1: the request lands beside it.
    row = await _until_placed(gedge, request_id)
    assert row["placements"][0]["node"] in ("c1wnode1", "c1wnode2")
    assert row["placements"][0]["cluster"] == "c1"


async def test_front_server_most_with_the_v3_spelling(gedge: Gedge) -> None:
    status, answer = await gedge.front(
        "most", SERVICE_AND_POD, selected_clusters="[['c2','c3'],'c4']"
    )
    assert status == 202, answer
    request_id = _request_id(answer)
    await _until_placed(gedge, request_id)
    request = await gedge.accepted(request_id)
    assert request["policy"] == "GMostRequestedPriority"
    assert request["levels"] == [["c2", "c3"], ["c4"]]
    # No project: the shared namespace.
    assert request.get("namespace") is None


async def test_front_server_select_node_by_dashboard_name(gedge: Gedge) -> None:
    status, answer = await gedge.front(
        "select", SERVICE_AND_POD, user_name="user1", workspace_name="w1", project_name="p1",
        mode="node", select_cluster="mec(ilsan)", select_node="mec-ilsan-gpu",
        callback_url=gedge.receiver.url,
    )  # fmt: skip
    assert status == 202, answer
    settled = await gedge.settled(_request_id(answer))
    assert settled["placements"] == [{"cluster": "mec-ilsan", "node": "mec-ilsan-gpu"}]
    assert settled["callback"]["placements"] == [{"cluster": "mec-ilsan", "node": "mec-ilsan-gpu"}]


async def test_front_server_select_cluster_levels_in_order(gedge: Gedge) -> None:
    status, answer = await gedge.front(
        "select", UI_DEPLOYMENT_AND_SERVICE, user_name="user1", workspace_name="w1",
        project_name="p1", mode="cluster", select_clusters="['c4', 'c2']",
    )  # fmt: skip
    assert status == 202, answer
    row = await _until_placed(gedge, _request_id(answer))
    assert row["placements"][0]["cluster"] == "c4"


async def test_front_server_rejections_are_failures_with_reasons(gedge: Gedge) -> None:
    # A mode the policy does not have: the worker rejects it, the door says so.
    status, answer = await gedge.front(
        "select", SERVICE_AND_POD, user_name="user1", workspace_name="w1", project_name="p1",
        mode="node", select_cluster="c1", callback_url=gedge.receiver.url,
    )  # fmt: skip
    assert status == 400, answer
    assert "select_node" in answer["error"]["reason"]
    assert answer["Error"]["ErrorCode"] == "InvalidRequestContentException"
    callback = await gedge.receiver.wait_for(answer["request_id"])
    assert callback["state"] == "rejected"
    assert callback["result"] == "fail"
    # Bad shapes never reach the intake.
    for route, fields, words in (
        ("low", {"select_clusters": "__import__('os').system('true')"}, "select_clusters"),
        ("low", {"fast_option": "yes"}, "fast_option"),
        ("low", {"colour": "red"}, "colour"),
        ("nope", {}, "route"),
    ):
        status, answer = await gedge.front(route, SERVICE_AND_POD, **fields)
        assert status == 400, answer
        assert words in answer["error"]["reason"], answer
    status, answer = await gedge.front("most", b"kind: [", selected_clusters="['c2']")
    assert status == 400, answer
    assert "yaml_file" in answer["error"]["reason"], answer


async def test_the_door_needs_its_own_token(gedge: Gedge) -> None:
    for token in (None, "wrong", API_TOKEN):
        status, answer = await gedge.front("most", SERVICE_AND_POD, token=token,
                                           select_clusters="['c2']")  # fmt: skip
        assert status == 401, answer
        assert "error" in answer  # gm-center reports failure
    status, answer = await gedge.gateway(
        UI_POD, path="/gedge/wrong/gmcapi/v2/gs-scheduler", priority="GMostRequestPriority"
    )
    assert status == 401, answer
    # As a bearer token, on the path gm-tool itself posts to.
    async with gedge.session.post(
        f"{gedge.url}/gmcapi/v2/gs-scheduler", data=UI_POD,
        params={"priority": "GMostRequestPriority",
                "options": ui_options(parameters={"select_clusters": ["c2"]})},
        headers={"Authorization": f"Bearer {DOOR_TOKEN}"},
    ) as response:  # fmt: skip
        assert response.status == 202, await response.text()


# --- gm-center forwarding ------------------------------------------------------------------


async def test_gateway_pod_with_nvidiagpu_reused_ids_and_a_callback(gedge: Gedge) -> None:
    options = ui_options(
        user_name="user1", workspace_name="w1", workspace_uid=UID, project_name="p1",
        mode="gpu", parameters={"select_clusters": [["c2", "mec(ilsan)"]]},
    )  # fmt: skip
    answers = []
    for _ in range(2):  # gm-tool's ids are "requestId" + 1..9999: they collide
        status, answer = await gedge.gateway(
            UI_POD, requestId="requestId42", callbackUrl=gedge.receiver.url,
            priority="GMostRequestPriority", options=options,
        )  # fmt: skip
        assert status == 202, answer
        assert "error" not in answer
        assert answer["client_request_id"] == "requestId42"
        answers.append(answer)
    first, second = (a["request_id"] for a in answers)
    assert first != second
    assert first.startswith("requestId42-")
    for request_id in (first, second):
        settled = await gedge.settled(request_id)
        assert settled["callback"]["state"] == "bound"
        assert settled["callback"]["namespace"] == f"p1-{UID}"
        # NVIDIAGPU became nvidia.com/gpu: only mec(ilsan) has GPUs.
        assert settled["placements"][0]["cluster"] == "mec-ilsan"
        container = settled["request"]["workload"][0]["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert settled["request"]["namespace"] == f"p1-{UID}"


@pytest.mark.parametrize("gedge", [{"fresh_ids": False}], indirect=True)
async def test_without_fresh_ids_a_reused_id_is_a_conflict(gedge: Gedge) -> None:
    options = ui_options(parameters={"select_clusters": ["c2"]})
    status, answer = await gedge.gateway(
        UI_POD, requestId="requestId5", priority="GSetCluster", options=options
    )
    assert status == 202, answer
    assert answer["request_id"] == "requestId5"
    assert "client_request_id" not in answer
    # The same body again is the same request; another body under the id is refused.
    status, again = await gedge.gateway(
        UI_POD, requestId="requestId5", priority="GSetCluster", options=options
    )
    assert status == 202, again
    status, other = await gedge.gateway(
        UI_DEPLOYMENT_AND_SERVICE, requestId="requestId5", priority="GSetCluster",
        options=options,
    )  # fmt: skip
    assert status == 409, other
    assert "error" in other


@pytest.mark.parametrize(
    ("priority", "option", "policy", "mode"),
    [
        ("GLowLatencyPriority", {"mode": "from_node", "parameters": {
            "source_cluster": "c1", "source_node": "c1wnode2", "select_clusters": [["c3", "c2"]]}},
         "GLowLatencyPriority", "fromnode"),
        ("GLowLatencyPriority", {"mode": "from_pod", "parameters": {
            "source_cluster": "c1", "pod_name": "camera-1", "select_clusters": ["c1"]}},
         "GLowLatencyPriority", "frompod"),
        ("GMostRequestPriority", {"mode": "cpu", "parameters": {"select_clusters": [["c2", "c3"]]}},
         "GMostRequestedPriority", "cpu"),
        ("GMostRequestPriority", {"mode": "memory", "parameters": {"select_clusters": ["c2"]}},
         "GMostRequestedPriority", "memory"),
        ("GSelectedCluster", {"mode": "cluster", "parameters": {"select_clusters": ["c4", "c2"]}},
         "GSelectedCluster", "cluster"),
        ("GSelectedClusterPriority", {"mode": "node", "parameters": {
            "select_cluster": "c2", "select_node": "c2wnode2"}}, "GSelectedCluster", "node"),
        ("GSelectCluster", {"parameters": {"select_clusters": ["c2"]}}, "GSelectedCluster",
         "cluster"),
        ("GSetCluster", {"parameters": {"select_clusters": [["c2", "c4"]]}}, "GSetClusters",
         "default"),
        ("GSetClusterPriority", {"parameters": {"select_clusters": ["c2", "c3"]}}, "GSetClusters",
         "default"),
    ],
)  # fmt: skip
async def test_gateway_every_policy_and_mode_spelling(
    gedge: Gedge, priority: str, option: dict[str, Any], policy: str, mode: str
) -> None:
    scope = {"user_name": "user1", "workspace_name": "w1", "workspace_uid": UID,
             "project_name": "p1"}  # fmt: skip
    status, answer = await gedge.gateway(
        UI_DEPLOYMENT_AND_SERVICE, requestId="requestId7", priority=priority,
        options=json.dumps({**scope, **option}),
    )  # fmt: skip
    assert status == 202, answer
    row = await _until_placed(gedge, answer["request_id"])
    assert (row["policy"], row["mode"]) == (policy, mode)


async def test_gateway_rejections_carry_an_error(gedge: Gedge) -> None:
    status, answer = await gedge.gateway(
        UI_POD, requestId="requestId9", priority="GNoSuchPriority", options=ui_options()
    )
    assert status == 400, answer
    assert "policy" in answer["error"]["reason"], answer
    status, answer = await gedge.gateway(UI_POD, priority="GSetCluster", options="{not json")
    assert status == 400, answer
    assert "options" in answer["error"]["reason"], answer
    status, answer = await gedge.gateway(b'{"not": "a manifest"}', priority="GSetCluster")
    assert status == 400, answer
    assert "manifest" in answer["error"]["reason"], answer
    # A callback host not allowed is refused at intake, never called.
    status, answer = await gedge.gateway(
        UI_POD, priority="GSetCluster", callbackUrl="http://169.254.169.254/latest",
        options=ui_options(parameters={"select_clusters": ["c2"]}),
    )  # fmt: skip
    assert status == 400, answer
    assert "callback_url" in answer["error"]["reason"]


# --- YAML everywhere a request is accepted --------------------------------------------------


async def test_multi_document_yaml_on_the_bus_the_api_and_the_dry_run(gedge: Gedge) -> None:
    # GEdge's embedded forms, published to the bus as YAML.
    await publish_intake(gedge.nc, EMBEDDED_V2, "embedded-v2")
    await publish_intake(gedge.nc, EMBEDDED_SNAKE, "snake-1")
    row = await _until_placed(gedge, "embedded-v2")
    assert row["placements"][0]["cluster"] == "c1"  # the first level: the source's cluster
    request = await gedge.accepted("embedded-v2")
    assert request["levels"] == [["c1"], ["c2", "c3"]]
    assert "schedulerName" not in request["workload"][0]["spec"]
    await _until_placed(gedge, "snake-1")
    request = await gedge.accepted("snake-1")
    assert [d["kind"] for d in request["workload"]] == ["ConfigMap", "Deployment"]
    assert request["levels"] == [["c2", "c3"], ["c4"]]
    # A request document followed by its manifests, as YAML, through the API.
    native = (
        b"request_id: yaml-api-1\npolicy: GSelectedCluster\nselect_clusters: ['mec(ilsan)']\n"
        b"user_name: user1\nworkspace_name: w1\nproject_name: p1\n---\n" + UI_POD
    )
    status, answer = await gedge.write_raw("/v1/requests", native)
    assert status == 202, answer
    assert answer["state"] in ("queued", "scheduled"), answer
    await _until_placed(gedge, "yaml-api-1")
    assert (await gedge.accepted("yaml-api-1"))["namespace"] == f"p1-{UID}"
    status, plan = await gedge.write_raw("/v1/plan", native.replace(b"yaml-api-1", b"yaml-2"))
    assert status == 200, plan
    assert plan["placed"] is True, plan


async def test_callbacks_are_retried_and_visible_as_events(gedge: Gedge) -> None:
    gedge.receiver.refuse_first = 2
    status, answer = await gedge.gateway(
        UI_POD, priority="GSelectedCluster", callbackUrl=gedge.receiver.url,
        options=ui_options(parameters={"select_clusters": ["c2"]}),
    )  # fmt: skip
    assert status == 202, answer
    callback = await gedge.receiver.wait_for(answer["request_id"])
    events = await gedge.get(f"/v1/requests/{answer['request_id']}/events",
                             min_seq=callback["event_sequence"] + 3)  # fmt: skip
    kinds = [event["type"] for event in events["items"]]
    assert kinds.count("CallbackFailed") == 2, kinds
    assert kinds[-1] == "CallbackDelivered", kinds


async def test_projects_declared_on_the_bus_take_effect_without_a_restart(gedge: Gedge) -> None:
    config = load_config(None, {"gedge": {"cluster_aliases": {"mec(ilsan)": "mec-ilsan"}}},
                         environ={})  # fmt: skip
    declarations = b"""
workspaces:
  w2: {uid: 9d2e41b0, user_name: user2, clusters: ['mec(ilsan)', c4]}
projects:
  p2: {workspace: w2, clusters: [c4]}
"""
    lines = await declare_from_file(gedge.service.store, config, declarations)
    assert lines[0].startswith("workspace w2: declared")
    projects = await gedge.get("/v1/projects")
    p2 = next(p for p in projects["projects"] if p["name"] == "p2")
    assert (p2["source"], p2["clusters"]) == ("declared", ["c4"])
    # p2 may use c4 only: c2 is refused as not allowed for the project, c4 takes it.
    status, answer = await gedge.front(
        "select", SERVICE_AND_POD, user_name="user2", workspace_name="w2", project_name="p2",
        mode="cluster", select_clusters="['c2','c4']",
    )  # fmt: skip
    assert status == 202, answer
    row = await _until_placed(gedge, _request_id(answer))
    assert row["placements"][0]["cluster"] == "c4"
    assert (await gedge.accepted(_request_id(answer)))["namespace"] == "p2-9d2e41b0"
    # Bad declarations are refused with the field, and change nothing.
    status, body = await gedge.write("PUT", "/v1/projects/p2", {"workspace": "w2",
                                                                "clusters": ["c1"]})  # fmt: skip
    assert status == 400, body
    assert "not among workspace 'w2'" in body["error"]["reason"]
    status, body = await gedge.write("PUT", "/v1/projects/p3", {"colour": "red"})
    assert status == 400, body
    status, body = await gedge.write("DELETE", "/v1/projects/p9", None)
    assert status == 404, body


async def _until_placed(gedge: Gedge, request_id: str) -> dict[str, Any]:
    client = gedge.session
    async with asyncio.timeout(20):
        while True:  # published to the bus: the read model has it once a worker took it
            async with client.get(f"{gedge.url}/v1/requests/{request_id}") as response:
                if response.status == 200:
                    break
            await asyncio.sleep(0.05)
    async with gedge.session.get(f"{gedge.url}/v1/requests/{request_id}/watch") as feed:
        async for line in feed.content:
            if line.startswith(b"data:"):
                data = json.loads(line[5:])
                if data["state"] in ("bound", "failed", "rejected", "cancelled"):
                    break
    row: dict[str, Any] = await gedge.get(f"/v1/requests/{request_id}", min_seq=data["seq"])
    assert row["state"] == "bound", row
    return row
