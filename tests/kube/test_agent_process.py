"""`gsch agent` as a real child process: a fake API server reached through a kubeconfig file,
NATS the only link to the central binder and workers running in the test."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from nats.aio.client import Client

from gsch.client import publish_request
from gsch.model.states import State
from gsch.runtime.embedded import EmbeddedNats
from gsch.runtime.procs import ChildProcess
from tests.fakekube.server import FakeKube
from tests.support.kube import deployment_request, member_config, settled
from tests.support.pipeline import running, wait_inventory


def agent_toml(path: Path, kubeconfig: Path) -> Path:
    path.write_text(
        "[kube]\n"
        "agent_heartbeat_seconds = 0.2\n"
        "coalesce_seconds = 0.05\n"
        "[kube.clusters.ka]\n"
        'mode = "agent"\n'
        f'kubeconfig = "{kubeconfig}"\n'
        'context = "ka"\n'
        'tier = "edge"\n'
        "[kube.probe]\n"
        "interval = 0.5\n"
    )
    return path


async def test_agent_process_binds_and_stops_cleanly_on_sigterm(
    tmp_path: Path, nats_server: EmbeddedNats, nc: Client, fakes: dict[str, FakeKube],
    kubeconfig: Path,
) -> None:  # fmt: skip
    config = member_config(tmp_path, nats_server.url, kubeconfig, mode="agent")
    config.kube.clusters = {"ka": config.kube.clusters["ka"]}  # the centre knows only the name
    config.kube.clusters["ka"].kubeconfig = None
    args = ["agent", "--cluster", "ka", "--node", "ka-n1", "--nats", nats_server.url,
            "--config", str(agent_toml(tmp_path / "agent.toml", kubeconfig))]  # fmt: skip
    child = ChildProcess(args, tmp_path / "agent.log", {"GSCH_LOG_LEVEL": "WARNING"})
    async with running(config, {"worker", "binder"}) as service:
        await child.start()
        try:
            await wait_inventory(service.store, 2, timeout=30)
            await publish_request(nc, deployment_request("p-1", [["ka"]]), "p-1")
            state = await settled(service.store, "p-1")
            assert state.state is State.BOUND, state.reasons
            deployment = fakes["ka"].get("apps/v1", "Deployment", "p1-w1", "web")
            assert deployment is not None
            selector = deployment["spec"]["template"]["spec"]["nodeSelector"]
            assert selector == {"kubernetes.io/hostname": state.placements[0].node}

            process = child.process
            assert process is not None
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 20)
            assert code == 0, (tmp_path / "agent.log").read_text()[-3000:]
        finally:
            await child.stop()
