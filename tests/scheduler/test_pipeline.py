"""The whole pipeline in one process against a real nats-server: intake, claim, plan, commit,
bind, project, and read through the HTTP API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import nats

from gsch.audit import audit
from gsch.client import publish_request
from gsch.eventstore.store import EventStore
from gsch.eventstore.subjects import INTAKE_SUBJECT, request_history
from gsch.model.events import RequestAccepted
from gsch.runtime.embedded import EmbeddedNats
from tests.support.pipeline import get_json, make_config, pod_request, post_json, running
from tests.support.waits import eventually

LEVELS = [["near-daejeon-1", "near-daejeon-2"], "edge-daejeon", "cloud-kr"]


async def test_request_goes_from_publish_to_bound_and_is_readable(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    config = make_config(tmp_path, nats_server.url)
    async with running(config, {"worker", "binder", "api"}) as service:
        nc = await nats.connect(nats_server.url)
        await publish_request(nc, pod_request("p-1", LEVELS), "p-1")
        await nc.close()

        async def bound() -> bool:
            report = await audit(service.store)
            return report.states.get("bound") == 1

        await eventually(bound)
        # Read your writes: wait until the projection holds everything the audit saw.
        last = await service.store.last_seq()
        body = await get_json(f"{service.api_url}/v1/requests/p-1?min_seq={last}")
        assert body["state"] == "bound"
        placement = body["placement"]
        assert isinstance(placement, dict)
        # The first level's group competes; both near-daejeon clusters are empty, so either
        # may win, but never a later level.
        assert placement["cluster"] in ("near-daejeon-1", "near-daejeon-2")


async def test_same_request_id_published_twice_is_one_request(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    config = make_config(tmp_path, nats_server.url)
    async with running(config, {"worker", "binder"}) as service:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        body = pod_request("dup-1", LEVELS)
        # With the de-duplication header: JetStream's window drops the second copy.
        await publish_request(nc, body, "dup-1")
        await publish_request(nc, body, "dup-1")
        # Without it (a plain client): both reach the intake; the log keeps one request.
        await js.publish(INTAKE_SUBJECT, body)
        await js.publish(INTAKE_SUBJECT, body)
        await nc.close()
        store: EventStore = service.store

        async def settled() -> bool:
            report = await audit(store)
            return report.states.get("bound") == 1 and not report.unsettled

        await eventually(settled)
        await asyncio.sleep(0.5)  # give any wrongful second acceptance time to show
        events = await store.read(request_history("dup-1"))
        accepted = [e for e in events if isinstance(e.event, RequestAccepted)]
        assert len(accepted) == 1
        report = await audit(store)
        assert len(report.requests) == 1
        assert report.double_placements == []
        assert report.duplicate_reservations == []


async def test_invalid_request_is_rejected_with_reason_visible_in_api(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    config = make_config(tmp_path, nats_server.url)
    async with running(config, {"worker", "api"}) as service:
        nc = await nats.connect(nats_server.url)
        bad = msgspec.json.encode(
            {"request_id": "bad-1", "policy": "GLowLatencyPriority", "select_clusters": ["c1"],
             "workload": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                          "spec": {"containers": [{"name": "c", "image": "x"}]}}}
        )  # fmt: skip
        seq = await publish_request(nc, bad, "bad-1")
        await publish_request(nc, b"\x00\xffgarbage", None)
        await nc.close()
        assert seq == 1

        async def two_rejected() -> bool:
            report = await audit(service.store)
            return report.states.get("rejected") == 2

        await eventually(two_rejected)
        last = await service.store.last_seq()
        body = await get_json(f"{service.api_url}/v1/requests/bad-1?min_seq={last}")
        assert body["state"] == "rejected"
        assert "source" in str(body["reason"])


async def test_deleting_the_read_model_and_rebuilding_gives_identical_answers(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    from gsch.projections.projector import rebuild

    config = make_config(tmp_path, nats_server.url, bind_failure_rate=0.3, seed=3)
    paths = [
        "/v1/requests?limit=1000",
        "/v1/requests?state=bound&limit=7",
        "/v1/clusters",
        "/v1/clusters/edge-daejeon/nodes",
        "/v1/requests/r-3",
        "/v1/requests/r-3/events",
    ]

    async def answers(api_url: str, seq: int) -> dict[str, object]:
        return {p: await get_json(f"{api_url}{p}&min_seq={seq}" if "?" in p
                                  else f"{api_url}{p}?min_seq={seq}") for p in paths}  # fmt: skip

    async with running(config, {"worker", "binder", "api"}) as service:
        nc = await nats.connect(nats_server.url)
        for index in range(40):
            await publish_request(nc, pod_request(f"r-{index}", LEVELS), f"r-{index}")
        await nc.close()

        async def settled() -> bool:
            report = await audit(service.store)
            return len(report.requests) == 40 and not report.unsettled

        await eventually(settled, 60)
        last = await service.store.last_seq()
        assert service.api_url is not None
        live = await answers(service.api_url, last)
    config.database_path.unlink()
    nc = await nats.connect(nats_server.url)
    assert await rebuild(EventStore(nc), config.database_path) == last
    await nc.close()
    async with running(config, {"api"}) as service:
        assert service.api_url is not None
        rebuilt = await answers(service.api_url, last)
    assert rebuilt == live
    items = live["/v1/requests?limit=1000"]["items"]  # type: ignore[index]
    assert len(items) == 40
    assert {item["state"] for item in items} <= {"bound", "failed"}


async def test_garbage_in_the_log_stops_nothing(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    """Junk published straight onto event subjects (not through gsch) is skipped by every
    reader: the binder, the retry queue, the snapshots, the projection."""
    config = make_config(tmp_path, nats_server.url)
    async with running(config, {"worker", "binder", "api"}) as service:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        for subject in (
            "gsch.events.req.junk.PlacementCommitted",
            "gsch.events.req.junk.RequestRequeued",
            "gsch.events.cluster.edge-daejeon.node.edge-daejeon-w1.CapacityReserved",
        ):
            await js.publish(subject, b"\x00not an event")
        await publish_request(nc, pod_request("after-junk", LEVELS), "after-junk")
        await nc.close()

        async def bound() -> bool:
            report = await audit(service.store)
            return report.requests.get("after-junk") is not None and (
                report.requests["after-junk"].state.value == "bound"
            )

        await eventually(bound)
        last = await service.store.last_seq()
        body = await get_json(f"{service.api_url}/v1/requests/after-junk?min_seq={last}")
        assert body["state"] == "bound"
        nodes = await get_json(f"{service.api_url}/v1/clusters/edge-daejeon/nodes?min_seq={last}")
        assert len(nodes["items"]) == 4  # type: ignore[arg-type]


async def test_low_latency_lands_next_to_its_source(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    """End to end with the simulator's latency reports: of a competing group, the cluster
    holding the source wins, and inside it the source node itself (0 ms)."""
    config = make_config(tmp_path, nats_server.url)
    async with running(config, {"worker", "binder"}) as service:
        nc = await nats.connect(nats_server.url)
        body = msgspec.json.decode(pod_request("ll-1", [["edge-daejeon", "near-daejeon-1"]]))
        body.update(
            policy="GLowLatencyPriority",
            mode="fromnode",
            source={"cluster": "near-daejeon-1", "node": "near-daejeon-1-w2"},
        )
        await publish_request(nc, msgspec.json.encode(body), "ll-1")
        await nc.close()

        async def bound() -> bool:
            report = await audit(service.store)
            state = report.requests.get("ll-1")
            return state is not None and state.state.value == "bound"

        await eventually(bound)
        report = await audit(service.store)
        placement = report.requests["ll-1"].placements[0]
        assert (placement.cluster, placement.node) == ("near-daejeon-1", "near-daejeon-1-w2")


async def test_set_clusters_binds_a_copy_on_every_cluster(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    config = make_config(tmp_path, nats_server.url)
    edges = ["edge-daejeon", "edge-seoul", "edge-busan"]
    async with running(config, {"worker", "binder", "api"}) as service:
        nc = await nats.connect(nats_server.url)
        body = msgspec.json.decode(pod_request("set-1", edges))
        body["policy"] = "GSetClusters"
        await publish_request(nc, msgspec.json.encode(body), "set-1")
        await nc.close()

        async def bound() -> bool:
            state = (await audit(service.store)).requests.get("set-1")
            return state is not None and state.state.value == "bound"

        await eventually(bound)
        report = await audit(service.store)
        assert sorted(p.cluster for p in report.requests["set-1"].placements) == sorted(edges)
        last = await service.store.last_seq()
        for edge in edges:
            nodes = await get_json(f"{service.api_url}/v1/clusters/{edge}/nodes?min_seq={last}")
            reserved = [n for n in nodes["items"] if n["reservations"]]  # type: ignore[attr-defined]
            assert len(reserved) == 1  # one copy per cluster, reserved on one node


async def test_dry_run_answers_what_the_worker_then_does_and_commits_nothing(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    config = make_config(tmp_path, nats_server.url)
    levels = [["tier=near-edge"], "tier=edge", "tier=cloud"]
    async with running(config, {"worker", "binder", "api"}) as service:
        before = await service.store.last_seq()
        dry: list[tuple[str, str]] = []
        for index in range(5):
            body = pod_request(f"dry-{index}", levels, cpu="3")
            status, answer = await post_json(f"{service.api_url}/v1/plan", body)
            assert status == 200, answer
            assert answer["placed"] is True
            placements = answer["placements"]
            assert isinstance(placements, list)
            dry.append((placements[0]["cluster"], placements[0]["node"]))
            assert answer["sequence"] == before  # planned on the snapshot as it stands
        assert await service.store.last_seq() == before  # nothing was committed

        status, answer = await post_json(f"{service.api_url}/v1/plan", b'{"policy": "nope"}')
        assert status == 422
        assert "workload: is required" in str(answer["error"])

        # The worker, on the same snapshot, decides the same for the same request.
        nc = await nats.connect(nats_server.url)
        await publish_request(nc, pod_request("dry-0", levels, cpu="3"), "dry-0")
        await nc.close()

        async def bound() -> bool:
            state = (await audit(service.store)).requests.get("dry-0")
            return state is not None and state.state.value == "bound"

        await eventually(bound)
        placement = (await audit(service.store)).requests["dry-0"].placements[0]
        assert (placement.cluster, placement.node) == dry[0]


async def test_the_nats_msg_id_is_the_id_of_a_request_whose_body_names_none(
    tmp_path: Path, nats_server: EmbeddedNats
) -> None:
    config = make_config(tmp_path, nats_server.url)
    async with running(config, {"worker", "binder", "api"}) as service:
        nc = await nats.connect(nats_server.url)
        # The GEdge v4 form as documented has no id field: its sender sets only the header.
        v4 = {"scope": "global", "priority": "GSelectedCluster",
              "option": {"mode": "cluster", "parameters": {"select_clusters": ["cloud-kr"]}},
              "workload": msgspec.json.decode(pod_request("w", LEVELS))["workload"]}  # fmt: skip
        await publish_request(nc, msgspec.json.encode(v4), "my-v4-request")
        # An id in the body wins over the header.
        await publish_request(nc, pod_request("from-body", LEVELS), "header-id")
        # A header that cannot be a request id is only a de-duplication id.
        await publish_request(nc, msgspec.json.encode({**v4, "option": {}}), "not/an.id")
        await nc.close()

        async def three_settled() -> bool:
            report = await audit(service.store)
            return sum(report.states.values()) == 3 and not report.unsettled

        await eventually(three_settled)
        last = await service.store.last_seq()
        mine = await get_json(f"{service.api_url}/v1/requests/my-v4-request?min_seq={last}")
        assert (mine["state"], mine["form"]) == ("bound", "gedge-v4")
        assert (await get_json(f"{service.api_url}/v1/requests/from-body"))["state"] == "bound"
        listed = await get_json(f"{service.api_url}/v1/requests?state=rejected")
        (generated,) = listed["items"]  # type: ignore[misc]
        assert generated["id"].startswith("req-")
