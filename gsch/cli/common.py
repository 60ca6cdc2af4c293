"""What every `gsch` command shares: declaring a subcommand with its handler, the config and
NATS flags and `--api`, loading the config, and connecting to NATS."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

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
    parser.add_argument("--nats", help="NATS URL(s); unset: the embedded server")
    parser.add_argument("--nats-user", help="NATS user name")
    parser.add_argument("--nats-password-file", help="file holding the NATS user's password")
    parser.add_argument("--nats-token-file", help="file holding a NATS token")
    parser.add_argument("--nats-creds", help="NATS .creds file (JWT + NKey)")
    parser.add_argument("--nats-nkey", help="NKey seed file: one identity for every role")
    parser.add_argument("--tls-ca", help="CA certificate (PEM) to verify the NATS server with")
    parser.add_argument("--tls-cert", help="client certificate (PEM) for NATS")
    parser.add_argument("--tls-key", help="private key (PEM) of --tls-cert")
    parser.add_argument("--data-dir", help="where the embedded server and read model live")


def add_api_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", help="API base URL (default from config api.listen)")


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


def api_url(args: argparse.Namespace, config: Config) -> str:
    return str(args.api or f"http://{config.api.listen}")


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
async def client_store(config: Config, role: Role) -> AsyncIterator[EventStore]:
    """A short-lived client of the configured NATS, or of the embedded server that `gsch
    serve` announced in the data dir, connected as `role`; closed on the way out."""
    from gsch.runtime.connection import connect, discover_url

    nc = await connect(config, discover_url(config), f"gsch-cli:{role.value}", role=role)
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
