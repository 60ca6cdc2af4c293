"""`gsch bus`: the identities allowed on the bus and the nats-server users rendered from them.

`init` makes gsch's own identities (admin, worker, api, binder, housekeeper, notifier, a
submitter; run again, only the missing ones); `add` registers
an agent of one cluster or a submitter (a new seed, or only the public key of one made
elsewhere); `remove` and `list` do what they say. Each rewrites `users.conf` and, for the
embedded server of this data dir, makes it reload; an external server is reloaded by its
operator (`nats-server --signal reload`).
"""

from __future__ import annotations

import argparse
import os
import signal
from typing import TYPE_CHECKING

from gsch.bus.identities import BusDirectory
from gsch.bus.roles import Role
from gsch.cli.common import add_command, config_of
from gsch.runtime.bus import embedded_bus_directory
from gsch.runtime.embedded import pid_file

if TYPE_CHECKING:
    from gsch.cli.common import Commands
    from gsch.runtime.config import Config


def bus_command(commands: Commands) -> None:
    bus = commands.add_parser("bus", help="identities and permissions on the NATS bus")
    actions = bus.add_subparsers(dest="action", required=True)
    add_command(
        actions,
        "init",
        "make gsch's own identities (admin and each service role) that are missing",
        _init,
    )
    add = add_command(actions, "add", "register an agent or a submitter", _add)
    add.add_argument(
        "role", choices=[Role.AGENT.value, Role.SUBMITTER.value], help="the identity's role"
    )
    add.add_argument("--cluster", help="an agent's member cluster")
    add.add_argument("--name", help="a submitter's name (its seed: submitter-NAME.nk)")
    add.add_argument(
        "--public-key", help="register only this public key (U...): the seed stays with its owner"
    )
    remove = add_command(actions, "remove", "remove an identity", _remove)
    remove.add_argument("identity", help="its name, as `gsch bus list` shows it")
    add_command(actions, "list", "list the identities", _list)


def _directory(config: Config) -> BusDirectory:
    """`nats.credentials_dir`, else the embedded server's `<data_dir>/bus`."""
    return embedded_bus_directory(config)


def _reload_embedded(config: Config) -> str:
    """Make this data dir's embedded server (if it runs) read its users again."""
    if config.nats.url or config.nats.credentials_dir:
        return "reload your nats-server to apply it: nats-server --signal reload"
    path = pid_file(config.data_path)
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError):
        return "the embedded server is not running; it loads the users when it starts"
    return f"the embedded nats-server (pid {pid}) reloaded its users"


def _init(args: argparse.Namespace) -> int:
    config = config_of(args)
    directory = _directory(config)
    made = directory.ensure_services()
    for user in made:
        print(f"made {user.name} ({user.role.value}): {directory.seed_path(user.name)}")
    print(f"users: {directory.users_conf} ({'changed' if made else 'unchanged'})")
    if made:
        print(_reload_embedded(config))
    return 0


def _add(args: argparse.Namespace) -> int:
    config = config_of(args)
    directory = _directory(config)
    directory.ensure_services()
    user = directory.add(
        Role(args.role), cluster=args.cluster, name=args.name, public_key=args.public_key
    )
    seed = directory.seed_path(user.name)
    print(f"added {user.name} ({user.role.value}) {user.nkey}")
    if args.public_key is None:
        print(f"its seed (give it to the {user.role.value}, keep it secret): {seed}")
    print(_reload_embedded(config))
    return 0


def _remove(args: argparse.Namespace) -> int:
    config = config_of(args)
    user = _directory(config).remove(args.identity)
    print(f"removed {user.name} ({user.role.value})")
    print(_reload_embedded(config))
    return 0


def _list(args: argparse.Namespace) -> int:
    directory = _directory(config_of(args))
    for user in directory.users():
        scope = f" cluster={user.cluster}" if user.cluster else ""
        print(f"{user.name:32} {user.role.value:10} {user.nkey}{scope}")
    return 0
