"""Connecting to NATS: the embedded server or an external one, with auth and endless reconnect."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client

from gsch.bus.identities import BusDirectory, IdentityError, Seed, identity_name, read_seed
from gsch.bus.roles import Role
from gsch.metrics import NATS_ERRORS
from gsch.runtime.config import Config, read_secret
from gsch.runtime.nats_client import connect_client

log = logging.getLogger(__name__)


def bus_directory(config: Config) -> BusDirectory | None:
    """Where the roles' seeds are: `nats.credentials_dir`, else the embedded server's own
    `<data_dir>/bus` when it exists (so commands find credentials where they find its URL)."""
    if config.nats.credentials_dir:
        return BusDirectory(Path(config.nats.credentials_dir))
    local = config.data_path / "bus"
    return BusDirectory(local) if local.is_dir() else None


def seed_for(config: Config, role: Role, cluster: str | None = None) -> Seed | None:
    """The NKey this process connects with as `role`: `nats.nkey_file` (one identity for
    everything), else the role's seed in the bus directory, else none (user, token, creds
    or no authentication, as configured)."""
    if config.nats.nkey_file:
        return read_seed(Path(config.nats.nkey_file))
    directory = bus_directory(config)
    if directory is None:
        return None
    path = directory.seed_path(identity_name(role, cluster=cluster))
    if not path.exists():
        raise IdentityError(
            f"no {role.value} credentials: {path} does not exist"
            + (f" (add them with `gsch bus add agent --cluster {cluster}`)" if cluster else "")
        )
    return read_seed(path)


def _tls_context(config: Config) -> ssl.SSLContext | None:
    options = config.nats
    if not (options.tls_ca or options.tls_cert):
        return None
    context = ssl.create_default_context(cafile=options.tls_ca)
    if options.tls_cert:
        context.load_cert_chain(options.tls_cert, options.tls_key)
    return context


def server_list(url: str) -> list[str]:
    """`--nats` takes one URL or a comma-separated list of a cluster's URLs."""
    return [part.strip() for part in url.split(",") if part.strip()]


class NatsConnectError(Exception):
    """NATS refused us (credentials) or stayed unreachable for the whole start-up window."""


class NatsUnreachable(NatsConnectError):
    """Nothing answered at the URL for the whole start-up window."""


async def _probe(url: str, options: dict[str, Any], patience: float) -> None:
    """Connect once without reconnecting, so a refused login fails fast and clearly instead
    of being retried for ever by the long-lived client; an unreachable server is waited for."""
    deadline = time.monotonic() + patience
    delay = 0.2

    async def quiet(_: Exception) -> None:
        return None

    while True:
        try:
            # One try per server: nats-py's defaults (60 tries, 2 s apart) would hold a single
            # connect for two minutes when nothing listens, whatever `patience` says.
            probe = await nats.connect(
                servers=server_list(url),
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                error_cb=quiet,
                **options,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            text = repr(exc)
            if "uthorization" in text or "uthentication" in text:
                raise NatsConnectError(f"NATS at {url} refused the credentials: {exc}") from exc
            if time.monotonic() > deadline:
                raise NatsUnreachable(f"NATS at {url} unreachable for {patience}s: {exc}") from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        await probe.close()
        return


def _auth_options(config: Config, role: Role, cluster: str | None) -> dict[str, Any]:
    options = config.nats
    auth: dict[str, Any] = {
        "user": options.user,
        "password": read_secret(options.password_file),
        "token": read_secret(options.token_file),
        "user_credentials": options.creds_file,
        "tls": _tls_context(config),
        "connect_timeout": 5,
    }
    seed = seed_for(config, role, cluster)
    if seed is not None:
        auth["nkeys_seed"] = str(seed.path)
        auth["inbox_prefix"] = seed.inbox  # the only replies this identity may receive
    return auth


RECONNECT_FIRST_WAIT = 0.25
RECONNECT_MAX_WAIT = 5.0


async def connect(
    config: Config,
    url: str,
    name: str,
    *,
    role: Role,
    cluster: str | None = None,
    patience: float = 60.0,
) -> Client:
    """A client that reconnects for ever, waiting longer after each failed attempt.

    nats-py waits a fixed `reconnect_time_wait` between attempts and reads it from its options
    on every attempt, so the callbacks below double it after each failure (up to 5 s) and
    reset it once connected again: quick recovery from a blip, no hammering during an outage.
    """
    client: list[Client] = []

    def set_wait(seconds: float) -> None:
        if client:
            client[0].options["reconnect_time_wait"] = seconds

    async def on_error(exc: Exception) -> None:
        NATS_ERRORS.labels(kind=type(exc).__name__).inc()
        if client and client[0].is_reconnecting:
            set_wait(min(RECONNECT_MAX_WAIT, client[0].options["reconnect_time_wait"] * 2))
            log.debug("nats reconnect attempt failed", extra={"error": repr(exc)})
            return
        log.warning("nats error", extra={"error": repr(exc)})

    async def on_disconnected() -> None:
        closing = bool(client) and (client[0].is_closed or client[0].is_draining)
        log.log(logging.INFO if closing else logging.WARNING, "nats disconnected")

    async def on_reconnected() -> None:
        set_wait(RECONNECT_FIRST_WAIT)
        log.info("nats reconnected")

    auth = _auth_options(config, role, cluster)
    await _probe(url, auth, patience)
    nc = await connect_client(
        server_list(url),
        name=name,
        **auth,
        max_reconnect_attempts=-1,  # the default gives up after about two minutes
        reconnect_time_wait=RECONNECT_FIRST_WAIT,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        pending_size=64 * 1024 * 1024,
    )
    client.append(nc)
    return nc
