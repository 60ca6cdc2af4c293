"""Callbacks: which URLs a request may name, and what gsch tells that URL when the request
settles. No I/O (the notifier, `gsch.callbacks`, does the sending).

A request may name a `callback_url` (GEdge's `callback_url`/`callbackUrl`). Only hosts on
the installation's allow-list (`[callbacks] allowed_hosts`) may be named, so a request cannot
make gsch call arbitrary addresses (a metadata service, an internal admin port): the intake
refuses any other, and the notifier checks again before each call. An entry is `host`,
`host:port`, or `*.domain` (any host under that domain); names compare case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import msgspec

from gsch.model.events import (
    AnyEvent,
    Placement,
    RequestBound,
    RequestCancelled,
    RequestFailed,
    RequestRejected,
)
from gsch.model.limits import shown

MAX_URL_CHARS = 2048


def _host_port(url: str) -> tuple[str, int] | str:
    """(host, port) of an http(s) URL, or why it is not one gsch calls."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "must be an http or https URL"
    if not parts.hostname:
        return "names no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    return parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def _entry_allows(entry: str, host: str, port: int) -> bool:
    entry = entry.strip().lower()
    name, _, wanted_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
    if wanted_port and wanted_port != str(port):
        return False
    if name.startswith("*."):
        return host.endswith(name[1:]) and host != name[2:]
    return host == name


def callback_problem(url: str, allowed_hosts: Iterable[str]) -> str | None:
    """Why gsch will not call `url` (None: it may)."""
    if len(url) > MAX_URL_CHARS:
        return f"is {len(url)} characters long, at most {MAX_URL_CHARS}"
    found = _host_port(url)
    if isinstance(found, str):
        return found
    host, port = found
    allowed = list(allowed_hosts)
    if not any(_entry_allows(entry, host, port) for entry in allowed):
        if not allowed:
            return (
                f"host {shown(host)} is not allowed: this installation calls no callbacks"
                " ([callbacks] allowed_hosts is empty)"
            )
        return f"host {shown(f'{host}:{port}')} is not on [callbacks] allowed_hosts"
    return None


# --- what is sent ----------------------------------------------------------------------

# GEdge's own words for a finished job (its server's `changed_status`).
_GEDGE_STATUS = {
    "bound": "completed",
    "failed": "failed",
    "rejected": "failed",
    "cancelled": "canceled",
}


class CallbackPlacement(msgspec.Struct, frozen=True):
    cluster: str
    node: str


class CallbackResult(msgspec.Struct, frozen=True, kw_only=True):
    """The body POSTed to a request's callback URL."""

    request_id: str
    state: str  # bound, failed, rejected, cancelled
    status: str  # the same in GEdge's words: completed, failed, canceled
    result: str  # GEdge's cluster-agent words: success, fail, cancel
    reason: str | None = None
    placements: tuple[CallbackPlacement, ...] = ()
    namespace: str | None = None  # where its objects are (or would have been) applied
    event_sequence: int  # the settling event: `min_seq` for reads that must reflect it
    at: float


def _placements(placements: tuple[Placement, ...]) -> tuple[CallbackPlacement, ...]:
    return tuple(CallbackPlacement(p.cluster, p.node) for p in placements)


def settled_result(
    request_id: str, event: AnyEvent, seq: int, namespace: str | None = None
) -> CallbackResult | None:
    """What to tell the callback URL about `event`, or None when it settles nothing."""
    match event:
        case RequestBound(placements=placements):
            state, reason, where = "bound", None, _placements(placements)
        case RequestFailed(reasons=reasons):
            state, reason, where = "failed", "; ".join(reasons[-3:]) or None, ()
        case RequestRejected(reason=reason):
            state, where = "rejected", ()
        case RequestCancelled(reason=reason, placements=placements):
            state, where = "cancelled", _placements(placements)
        case _:
            return None
    status = _GEDGE_STATUS[state]
    result = {"completed": "success", "failed": "fail", "canceled": "cancel"}[status]
    return CallbackResult(
        request_id=request_id,
        state=state,
        status=status,
        result=result,
        reason=reason,
        placements=where,
        namespace=namespace,
        event_sequence=seq,
        at=event.at,
    )


SETTLING_EVENTS = ("RequestBound", "RequestFailed", "RequestRejected", "RequestCancelled")
