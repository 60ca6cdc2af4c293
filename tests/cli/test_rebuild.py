"""`gsch projections rebuild` and a running API exclude each other: the rebuild is refused,
before it deletes anything, while an API serves the read model, and works once it stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsch.client import publish_request
from gsch.model.states import State
from gsch.projections import lock
from gsch.runtime.embedded import EmbeddedNats
from tests.support.cli import CLASS_NAME, gsch
from tests.support.pipeline import get_json, make_config, pod_request, running
from tests.support.waits import eventually


async def test_rebuild_waits_for_the_api_to_stop(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    config = make_config(tmp_path, nats_server.url)
    flags = ("--nats", nats_server.url, "--data-dir", config.data_dir)
    async with running(config, {"api", "worker"}) as service:
        assert service.api_url is not None
        database = config.database_path
        before = database.stat().st_ino
        refused = await gsch("projections", "rebuild", *flags)
        assert refused.code == 1
        assert f"the read model {database} is in use by a running gsch API" in refused.err
        assert f"({service.api_url})" in refused.err  # the API it announced in the data dir
        assert not CLASS_NAME.search(refused.err)
        assert database.stat().st_ino == before  # not deleted, not replaced
        # The API goes on following the log in the same file.
        await publish_request(service.store.nc, pod_request("after", [["cloud-kr"]]), "after")

        async def accepted() -> bool:
            return (await service.store.load_request("after")).state is not State.NEW

        await eventually(accepted)
        last = await service.store.last_seq()
        assert (await get_json(f"{service.api_url}/v1/requests/after?min_seq={last}"))["id"]
    rebuilt = await gsch("projections", "rebuild", *flags)
    assert rebuilt.code == 0, rebuilt.err
    assert rebuilt.out.startswith(f"rebuilt {database} up to sequence ")


def test_an_api_does_not_start_on_a_read_model_being_rebuilt(tmp_path: Path) -> None:
    database = tmp_path / "readmodel.sqlite"
    with lock.serving(database), lock.serving(database):
        pass  # any number of APIs share it
    with (
        lock.rebuilding(database),
        pytest.raises(lock.ReadModelBusy, match="is being rebuilt"),
        lock.serving(database),
    ):
        pass
    with (
        lock.serving(database),
        pytest.raises(lock.ReadModelBusy, match="stop the API first"),
        lock.rebuilding(database),
    ):
        pass
