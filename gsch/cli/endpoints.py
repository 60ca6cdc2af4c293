"""Where a command finds NATS and the HTTP API, and where it learnt each address from, so
that a command whose server is not there says which address it tried and why that one.

NATS: `--nats`, else `nats.url` of the configuration, else the `nats.url` file a running
`gsch serve` (or `gsch demo`) writes into its data directory. The API: `--api`, else the
data directory's `api.url`, else the configured `api.listen`.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from gsch.runtime import announce
from gsch.runtime.config import Config

# A command gives an absent server this long (seconds): long enough for a restart's blip,
# short enough that a stopped server is reported at once rather than waited for.
CONNECT_PATIENCE = 3.0


class CliError(Exception):
    """A failure the user can act on: `gsch` prints its message alone and exits with 1."""


@dataclass(frozen=True)
class Endpoint:
    url: str
    source: str  # where the address came from, as the user would name it

    def unreachable(self, what: str, detail: str) -> CliError:
        return CliError(
            f"no {what} answers at {self.url} ({detail}); that address came from {self.source}"
        )


def _configured(args: argparse.Namespace, section: str, key: str) -> str:
    variable = f"GSCH_{section.upper()}__{key.upper()}"
    if variable in os.environ:
        return f"${variable}"
    config_file = getattr(args, "config", None) or os.environ.get("GSCH_CONFIG")
    return f"{section}.{key} in {config_file}" if config_file else f"the default {section}.{key}"


def _announced_by(config: Config, name: str) -> str:
    path = announce.announcement(config.data_path, name)
    return (
        f"{path}, which a running `gsch serve` or `gsch demo` writes and removes when it stops"
        " (a process killed without stopping leaves it behind)"
    )


def nats_endpoint(args: argparse.Namespace, config: Config) -> Endpoint:
    if getattr(args, "nats", None):
        return Endpoint(args.nats, "--nats")
    if config.nats.url:
        return Endpoint(config.nats.url, _configured(args, "nats", "url"))
    found = announce.announced(config.data_path, announce.NATS)
    if found:
        return Endpoint(found, _announced_by(config, announce.NATS))
    path = announce.announcement(config.data_path, announce.NATS)
    raise CliError(
        f"no NATS server to talk to: none is configured, and no `gsch serve` is running with"
        f" the data directory {config.data_path} (it would have written {path}). Start one"
        f" (`gsch serve --data-dir {config.data_path}`), or pass --data-dir of a running"
        " gsch, or --nats URL"
    )


def api_endpoint(args: argparse.Namespace, config: Config) -> Endpoint:
    if getattr(args, "api", None):
        return Endpoint(args.api, "--api")
    found = announce.announced(config.data_path, announce.API)
    if found:
        return Endpoint(found, _announced_by(config, announce.API))
    path = announce.announcement(config.data_path, announce.API)
    return Endpoint(
        f"http://{config.api.listen}",
        f"{_configured(args, 'api', 'listen')}, as no running gsch announced its API in"
        f" {path}; pass --data-dir of a running gsch, or --api URL",
    )
