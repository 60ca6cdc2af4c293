"""The `gsch` command. Exit codes: 0 ok, 1 error, 2 usage.

Each command is declared next to its handler, in the module of its kind: a `<name>_command`
function builds the subparser (its name, help and flags) and names the handler; `common`
holds what they share. `build_parser` lists them in the order `gsch --help` shows them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING

from gsch import __version__
from gsch.cli import admin, bus, history, processes, requests
from gsch.cli.endpoints import CliError
from gsch.cli.output import clean
from gsch.runtime.config import ConfigError

if TYPE_CHECKING:
    from gsch.cli.common import Commands, Handler

# In the order `gsch --help` lists them.
_COMMANDS: tuple[Callable[[Commands], None], ...] = (
    processes.demo_command,
    processes.serve_command,
    processes.agent_command,
    requests.submit_command,
    requests.get_command,
    requests.plan_command,
    requests.explain_command,
    requests.cancel_command,
    admin.streams_command,
    bus.bus_command,
    admin.projections_command,
    admin.audit_command,
    admin.declare_command,
    history.snapshot_command,
    history.expired_command,
    processes.bench_command,
    processes.experiment_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gsch", description="Global scheduler for Kubernetes")
    parser.add_argument("--version", action="version", version=f"gsch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for declare in _COMMANDS:
        declare(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        outcome = handler(args)
        return asyncio.run(outcome) if isinstance(outcome, Coroutine) else outcome
    except ConfigError as exc:
        print(clean(f"gsch: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the CLI's last word: one readable line, not a traceback
        print(clean(f"gsch {args.command}: {_readable(exc)}"), file=sys.stderr)
        return 1


def _readable(exc: Exception) -> str:
    """What went wrong, in words: the message alone (exception class names mean nothing to
    the reader), with a word for the few errors whose message is empty or cryptic."""
    if isinstance(exc, CliError):
        return str(exc)
    if isinstance(exc, TimeoutError):  # nats-py's timeouts are TimeoutErrors too
        return "no answer in time from NATS or the API (is the server overloaded?)"
    return str(exc) or f"unexpected error ({type(exc).__name__})"
