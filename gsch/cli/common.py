"""What every `gsch` command shares: declaring a subcommand with its handler, the config and
NATS flags and `--api`, loading the config, connecting to NATS and calling the API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from gsch.cli.endpoints import CONNECT_PATIENCE, Endpoint, api_endpoint, nats_endpoint
from gsch.runtime.config import Config, load_config

if TYPE_CHECKING:
    from nats.aio.client import Client

    from gsch.bus.roles import Role
    from gsch.eventstore.store import EventStore

    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

# A handler returns its exit code, or a coroutine that main runs to get it (plain CPU work,
# bench --plan-only, runs outside any event loop).
Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int] | int]


def add_command(
    commands: Commands, name: str, help: str, handler: Handler, *, connects: bool = True
) -> argparse.ArgumentParser:
    """A subcommand that runs `handler`; `connects`: it takes the config and NATS flags."""
    parser = commands.add_parser(name, help=help)
    parser.set_defaults(handler=handler)
    if connects:
        _add_connection_flags(parser)
    return parser


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML config file (default: $GSCH_CONFIG)")
    parser.add_argument(
        "--nats",
        help="NATS URL(s) (default: nats.url of the config, else the embedded server: `gsch"
        " serve` starts one, other commands use the one it announced in <data-dir>/nats.url)",
    )
    parser.add_argument("--nats-user", help="NATS user name")
    parser.add_argument("--nats-password-file", help="file holding the NATS user's password")
    parser.add_argument("--nats-token-file", help="file holding a NATS token")
    parser.add_argument("--nats-creds", help="NATS .creds file (JWT + NKey)")
    parser.add_argument("--nats-nkey", help="NKey seed file: one identity for every role")
    parser.add_argument("--tls-ca", help="CA certificate (PEM) to verify the NATS server with")
    parser.add_argument("--tls-cert", help="client certificate (PEM) for NATS")
    parser.add_argument("--tls-key", help="private key (PEM) of --tls-cert")
    parser.add_argument(
        "--data-dir",
        help="gsch's data directory (default: var): the embedded server, the read model and"
        " the addresses a running `gsch serve` announces",
    )


def add_api_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        help="API base URL (default: the one a running `gsch serve` wrote to"
        " <data-dir>/api.url, else http://<api.listen>)",
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    nats: dict[str, Any] = {}
    for flag, key in (
        ("nats", "url"), ("nats_user", "user"), ("nats_password_file", "password_file"),
        ("nats_token_file", "token_file"), ("nats_creds", "creds_file"),
        ("nats_nkey", "nkey_file"), ("tls_ca", "tls_ca"),
        ("tls_cert", "tls_cert"), ("tls_key", "tls_key"),
    ):  # fmt: skip
        value = getattr(args, flag, None)
        if value is not None:
            nats[key] = value
    overrides: dict[str, Any] = {"nats": nats} if nats else {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "api_listen", None):
        overrides["api"] = {"listen": args.api_listen}
    if getattr(args, "topology", None):
        overrides["simulator"] = {"topology": args.topology}
    return overrides


def config_of(args: argparse.Namespace) -> Config:
    """The config file named by --config (or $GSCH_CONFIG) with the command's flags on top."""
    return load_config(getattr(args, "config", None), _overrides(args))


class Api:
    """The HTTP API as a command calls it: an unreachable one is reported with the address
    tried and where that address came from."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def get(self, path: str, **params: Any) -> Any:
        from gsch.client import api_get

        return await self._reached(api_get(self.endpoint.url, path, **params))

    async def post(self, path: str, body: bytes, token: str | None = None) -> Any:
        from gsch.client import api_post

        return await self._reached(api_post(self.endpoint.url, path, body, token=token))

    async def _reached(self, call: Coroutine[Any, Any, Any]) -> Any:
        from gsch.client import ApiUnreachable

        try:
            return await call
        except ApiUnreachable as exc:
            raise self.endpoint.unreachable("gsch API", str(exc)) from None


def api_of(args: argparse.Namespace, config: Config) -> Api:
    return Api(api_endpoint(args, config))


@contextlib.asynccontextmanager
async def event_store(config: Config, nc: Client) -> AsyncIterator[EventStore]:
    """The one way a command builds its event store: with the configured request timeout."""
    from gsch.eventstore.store import EventStore

    store = EventStore(nc, request_timeout=config.nats.request_timeout)
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def client_store(
    config: Config, args: argparse.Namespace, role: Role
) -> AsyncIterator[EventStore]:
    """A short-lived client of the configured NATS, or of the embedded server that `gsch
    serve` announced in the data dir, connected as `role`; closed on the way out. A server
    that is not there is reported within seconds, with the URL and where it came from."""
    from gsch.runtime.connection import NatsUnreachable, connect

    endpoint = nats_endpoint(args, config)
    try:
        nc = await connect(
            config, endpoint.url, f"gsch-cli:{role.value}", role=role, patience=CONNECT_PATIENCE
        )
    except NatsUnreachable:
        detail = f"nothing accepted a connection within {CONNECT_PATIENCE:g} s"
        raise endpoint.unreachable("NATS server", detail) from None
    try:
        async with event_store(config, nc) as store:
            yield store
    finally:
        await nc.close()


async def until_signalled(stop: asyncio.Event) -> None:
    """Set `stop` on SIGINT or SIGTERM, so a long-running command shuts down gracefully."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
