"""The nats-server configuration of the bus, rendered from the role table.

`users.conf` is an `authorization` block: one user per identity, by NKey, with the grant of
its role spelled out (nats-server has no per-user templates outside JWT accounts, and every
identity's reply inbox is its own). The embedded server's configuration includes it; an
external server includes it from `config/nats/server.conf`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gsch.bus.roles import Grant, grant

if TYPE_CHECKING:
    from gsch.bus.identities import BusUser

HEADER = (
    "# Written by gsch (`gsch bus ...`) from the registry users.json beside it: do not edit,\n"
    "# re-render with `gsch bus render`. Each identity's role is spelled out as permissions.\n"
)


def _list(subjects: Sequence[str], indent: str) -> str:
    inner = "".join(f"{indent}  {json.dumps(subject)}\n" for subject in subjects)
    return f"[\n{inner}{indent}]"


def render_grant(granted: Grant, indent: str = "      ") -> str:
    lines = [
        f"{indent}publish: {{allow: {_list(granted.publish, indent)}}}",
        f"{indent}subscribe: {{allow: {_list(granted.subscribe, indent)}}}",
    ]
    if granted.responses:
        lines.append(f"{indent}allow_responses: true")
    return "\n".join(lines)


def render_users(users: Iterable[BusUser]) -> str:
    entries = []
    for user in users:
        granted = grant(user.role, user.inbox, user.cluster)
        entries.append(
            f"    # {user.name} ({user.role.value})\n"
            f"    {{nkey: {user.nkey}, permissions: {{\n{render_grant(granted)}\n    }}}}"
        )
    body = "\n".join(entries)
    return f"{HEADER}authorization {{\n  users = [\n{body}\n  ]\n}}\n"


def render_embedded(users_conf: Path, server_name: str = "gsch-embedded") -> str:
    """The embedded server's own file, beside `users_conf` (nats-server includes relative
    paths only): its name and its users; everything else comes as flags, which a reload
    keeps (a name given as a flag it would refuse)."""
    return (
        "# Written by gsch for its embedded nats-server.\n"
        f"server_name: {json.dumps(server_name)}\n"
        f"include {users_conf.name}\n"
    )
