"""TLS and mutual TLS to a real nats-server run with the shipped `config/nats/server.conf`
(its certificate paths pointed at certificates made for the test), NKeys on top."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gsch.bus.identities import BusDirectory
from gsch.bus.roles import Role
from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.paths import shipped
from gsch.runtime.config import Config, load_config
from gsch.runtime.connection import NatsConnectError, connect
from gsch.runtime.embedded import EmbeddedNats
from tests.support.tls import authority


@dataclass(frozen=True)
class TlsServer:
    url: str
    root: Path
    bus: Path

    def config(self, **tls: str) -> Config:
        nats = {"url": self.url, "credentials_dir": str(self.bus), **tls}
        return load_config(None, {"data_dir": str(self.root / "client"), "nats": nats}, {})


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[TlsServer]:
    certs = tmp_path / "tls"
    certs.mkdir()
    ca = authority("ca")
    ca.write(certs)
    ca.issue(certs, "server", server=True)
    ca.issue(certs, "client", server=False)
    rogue = authority("rogue")
    rogue.issue(certs, "rogue-client", server=False)
    directory = BusDirectory(tmp_path / "conf")
    directory.ensure_services()
    # The shipped file as an operator would install it, with the test's certificates (the
    # runner gives the port and the store as flags).
    text = (shipped("config") / "nats" / "server.conf").read_text()
    text = text.replace("/etc/nats/tls/", f"{certs}/").replace('store_dir: "/var/lib/nats"', "")
    (directory.root / "server.conf").write_text(text)
    server = EmbeddedNats(tmp_path, config_file=directory.root / "server.conf")
    try:
        await server.start()
        yield TlsServer(f"tls://127.0.0.1:{server.port}", tmp_path, directory.root)
    finally:
        await server.stop()


def client_tls(server: TlsServer, cert: str = "client") -> dict[str, str]:
    certs = server.root / "tls"
    return {
        "tls_ca": str(certs / "ca.pem"),
        "tls_cert": str(certs / f"{cert}.pem"),
        "tls_key": str(certs / f"{cert}-key.pem"),
    }


async def test_mutual_tls_with_nkeys(tls_server: TlsServer) -> None:
    config = tls_server.config(**client_tls(tls_server))
    admin = await connect(config, tls_server.url, "admin", role=Role.ADMIN)
    worker = await connect(config, tls_server.url, "worker", role=Role.WORKER)
    try:
        await apply_declarations(admin, load_declarations())
        info = await worker.jetstream().stream_info("GSCH_EVENTS")
        assert info.config.name == "GSCH_EVENTS"
        assert worker.connected_server_version.major == 2
    finally:
        await worker.close()
        await admin.close()


@pytest.mark.parametrize(
    "tls",
    [
        pytest.param({"tls_ca": "ca.pem"}, id="no client certificate"),
        pytest.param(
            {"tls_ca": "ca.pem", "tls_cert": "rogue-client.pem", "tls_key": "rogue-client-key.pem"},
            id="client certificate of another CA",
        ),
        pytest.param(
            {"tls_ca": "rogue.pem", "tls_cert": "client.pem", "tls_key": "client-key.pem"},
            id="server not trusted",
        ),
    ],
)
async def test_a_client_without_the_right_certificates_is_refused(
    tls_server: TlsServer, tls: dict[str, str]
) -> None:
    certs = tls_server.root / "tls"
    if tls["tls_ca"] == "rogue.pem":
        authority("rogue").write(certs)  # a CA that did not sign the server's certificate
    config = tls_server.config(**{key: str(certs / name) for key, name in tls.items()})
    with pytest.raises(NatsConnectError):
        await connect(config, tls_server.url, "worker", role=Role.WORKER, patience=2)


async def test_tls_alone_is_not_enough_without_credentials(tls_server: TlsServer) -> None:
    config = load_config(None, {"nats": {"url": tls_server.url, **client_tls(tls_server)}}, {})
    with pytest.raises(NatsConnectError, match="refused the credentials"):
        await connect(config, tls_server.url, "anonymous", role=Role.WORKER, patience=2)


async def test_plain_text_is_refused(tls_server: TlsServer) -> None:
    plain = tls_server.url.replace("tls://", "nats://")
    config = tls_server.config()
    with pytest.raises(NatsConnectError):
        await connect(config, plain, "worker", role=Role.WORKER, patience=2)
