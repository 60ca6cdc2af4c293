"""NKey identities on the bus: seeds kept in a directory (mode 0600), and the registry of who
may connect as which role.

A bus directory holds one seed file per identity (`worker.nk`, `agent-edge-1.nk`,
`submitter-alice.nk`, ...), `users.json` (each identity's role, cluster and public key: the
registry) and `users.conf`, the nats-server `authorization` block rendered from it. An
identity added with only a public key (someone who made their key pair elsewhere) has no
seed here: the secret never has to travel.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import msgspec
import nkeys

from gsch.bus.roles import SERVICE_ROLES, Role
from gsch.bus.serverconf import render_users
from gsch.eventstore.subjects import token

SEED_SUFFIX = ".nk"
REGISTRY = "users.json"
USERS_CONF = "users.conf"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class IdentityError(Exception):
    """An identity that cannot be made, found or read; the message says which and why."""


class BusUser(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # also the seed file's stem
    role: Role
    nkey: str  # the public key (U...)
    cluster: str | None = None  # an agent's cluster

    @property
    def inbox(self) -> str:
        return inbox_prefix(self.nkey)


def inbox_prefix(public_key: str) -> str:
    """Every identity's own reply subjects, so no one can subscribe to another's replies."""
    return f"_INBOX_{public_key}"


def identity_name(role: Role, *, cluster: str | None = None, name: str | None = None) -> str:
    """The file stem of an identity: the role for gsch's own, `agent-<cluster>` for an
    agent, `submitter[-<name>]` for a submitter."""
    if role is Role.AGENT:
        if not cluster:
            raise IdentityError("an agent identity belongs to one cluster: give --cluster")
        return f"agent-{token(cluster)}"
    if name is None:
        return role.value
    if not _NAME.fullmatch(name):
        raise IdentityError(f"name {name[:80]!r}: use 1-64 of A-Z a-z 0-9 _ -")
    return f"{role.value}-{name}"


def new_seed() -> bytes:
    return bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))


def public_key_of(seed: bytes) -> str:
    try:
        pair = nkeys.from_seed(bytearray(seed.strip()))
    except nkeys.NkeysError as exc:
        raise IdentityError(f"not a user NKey seed: {exc}") from exc
    key = str(pair.public_key.decode())
    pair.wipe()
    if not key.startswith("U"):
        raise IdentityError("not a user NKey seed (its public key does not start with U)")
    return key


def check_public_key(key: str) -> str:
    """A user's public NKey, checked (prefix, length, checksum) before nats-server sees it."""
    key = key.strip()
    try:
        raw = base64.b32decode(key + "=" * (-len(key) % 8))
    except (binascii.Error, ValueError):
        raw = b""
    valid = (
        len(raw) == 35
        and raw[0] == nkeys.PREFIX_BYTE_USER
        and nkeys.crc16_checksum(raw[:-2]) == raw[-2:]
    )
    if not valid:
        raise IdentityError(f"{key[:80]!r} is not a user NKey public key (U..., 56 characters)")
    return key


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read, atomically (never a moment of wider access)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + ".partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


@dataclass(frozen=True)
class Seed:
    """A seed file of one identity: what a client connects with."""

    path: Path
    public_key: str

    @property
    def inbox(self) -> str:
        return inbox_prefix(self.public_key)


def read_seed(path: Path) -> Seed:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IdentityError(f"cannot read the NKey seed {path}: {exc.strerror}") from exc
    return Seed(path, public_key_of(data))


class BusDirectory:
    """A directory of identities and the server configuration rendered from them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def users_conf(self) -> Path:
        return self.root / USERS_CONF

    def seed_path(self, name: str) -> Path:
        return self.root / f"{name}{SEED_SUFFIX}"

    def users(self) -> list[BusUser]:
        path = self.root / REGISTRY
        if not path.exists():
            return []
        try:
            return msgspec.json.decode(path.read_bytes(), type=list[BusUser])
        except msgspec.DecodeError as exc:
            raise IdentityError(f"{path}: {exc}") from exc

    def find(self, name: str) -> BusUser | None:
        return next((user for user in self.users() if user.name == name), None)

    def ensure_services(self) -> list[BusUser]:
        """gsch's own identities (admin, worker, api, binder) and one local submitter, each
        made once; returns those made now. Rewrites users.conf when anything was made."""
        made = []
        for role in (Role.ADMIN, *SERVICE_ROLES, Role.SUBMITTER):
            if self.find(identity_name(role)) is None:
                made.append(self.add(role, render=False))
        if made or not self.users_conf.exists():
            self.render()
        return made

    def add(
        self,
        role: Role,
        *,
        cluster: str | None = None,
        name: str | None = None,
        public_key: str | None = None,
        render: bool = True,
    ) -> BusUser:
        """Register an identity; without `public_key` a new seed is written beside the
        registry (mode 0600) for the operator to hand over."""
        stem = identity_name(role, cluster=cluster, name=name)
        if self.find(stem) is not None:
            raise IdentityError(f"identity {stem} exists already in {self.root}")
        if public_key is None:
            seed = new_seed()
            key = public_key_of(seed)
            write_private(self.seed_path(stem), seed + b"\n")
        else:
            key = check_public_key(public_key)
        user = BusUser(name=stem, role=role, nkey=key, cluster=cluster)
        self._save([*self.users(), user])
        if render:
            self.render()
        return user

    def remove(self, name: str) -> BusUser:
        user = self.find(name)
        if user is None:
            raise IdentityError(f"no identity {name} in {self.root}")
        self._save([other for other in self.users() if other.name != name])
        self.seed_path(name).unlink(missing_ok=True)
        self.render()
        return user

    def render(self) -> Path:
        write_private(self.users_conf, render_users(self.users()).encode())
        return self.users_conf

    def _save(self, users: list[BusUser]) -> None:
        write_private(self.root / REGISTRY, msgspec.json.format(msgspec.json.encode(users)))
