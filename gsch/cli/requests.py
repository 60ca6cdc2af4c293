"""The commands a user runs against requests: `submit`, `get`, `plan`, `explain` and
`cancel`, with the text they print."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import msgspec
import nats.errors

from gsch.bus.roles import Role
from gsch.cli.common import Api, add_api_flag, add_command, api_of, client_store, config_of
from gsch.cli.output import add_output_flag, bytes_text, clean, one_line, print_json, shorten, table
from gsch.cli.request_file import load_request_file
from gsch.model.ids import fresh_request_id
from gsch.model.states import SETTLED_STATES, State

if TYPE_CHECKING:
    from gsch.cli.common import Commands


# --- submit ------------------------------------------------------------------------------


def submit_command(commands: Commands) -> None:
    submit = add_command(commands, "submit", "publish a request to gsch.requests", _submit)
    submit.add_argument("file", help="request file (JSON or YAML), or - for stdin")
    submit.add_argument("--wait", action="store_true", help="wait and print the final state")
    submit.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="with --wait: seconds to wait for the request to settle (default: %(default)s)",
    )
    add_api_flag(submit)
    add_output_flag(submit)


# How long `submit` waits for a worker's verdict on the message when not told to --wait.
_VERDICT_SECONDS = 10.0


async def _submit(args: argparse.Namespace) -> int:
    from gsch.client import intake_verdict, publish_request_acked
    from gsch.model.events import RequestIdConflict
    from gsch.tools.samples import declared_request_id

    config = config_of(args)
    body = load_request_file(args.file)
    request_id = declared_request_id(body) if isinstance(body, dict) else None
    if request_id is None:
        # Sent as Nats-Msg-Id, which is the id of a request whose body names none; written
        # into the body too where its form has a field for it.
        request_id = fresh_request_id("cli")
        if isinstance(body, dict) and "apiVersion" not in body:
            body["request_id"] = request_id
    verdict: object = None
    unread: str | None = None
    async with client_store(config, args, Role.SUBMITTER) as store:
        ack = await publish_request_acked(store.nc, msgspec.json.encode(body), request_id)
        # A worker decides whether the id was free: wait for its word on this very message.
        patience = args.timeout if args.wait else _VERDICT_SECONDS
        try:
            verdict = await intake_verdict(store, request_id, ack.seq, patience)
        except (nats.errors.Error, TimeoutError) as exc:  # e.g. credentials that only publish
            unread = str(exc) or type(exc).__name__
    if isinstance(verdict, RequestIdConflict):
        print(clean(f"refused: {verdict.reason}"), file=sys.stderr)
        return 1
    submitted = {"request_id": request_id, "intake_sequence": ack.seq, "duplicate": ack.duplicate}
    if args.output != "json":
        print(clean(_submitted_text(request_id, ack.seq, ack.duplicate)))
    if unread is not None:
        print(clean(f"{request_id}: published; its verdict could not be read: {unread}"),
              file=sys.stderr)  # fmt: skip
    elif verdict is None:
        print(f"{request_id}: no worker has taken it yet; it settles once one does",
              file=sys.stderr)  # fmt: skip
    if not args.wait:
        if args.output == "json":
            print_json(submitted)
        return 0
    found = await _settled(api_of(args, config), request_id, args.timeout, args.output)
    if args.output == "json":
        print_json({**submitted, "request": found})
    elif found is not None:
        print(one_line(found))
    if found is None:
        print(clean(f"{request_id}: not settled after {args.timeout:g} s"), file=sys.stderr)
        return 1
    return 0 if found["state"] == State.BOUND else 1


def _submitted_text(request_id: str, seq: int, duplicate: bool) -> str:
    if duplicate:
        return (
            f"{request_id} was submitted before (intake sequence {seq}): the intake kept the"
            " first copy and ignored this one"
        )
    return f"submitted {request_id} (intake sequence {seq})"


async def _settled(api: Api, request_id: str, timeout: float, output: str) -> dict[str, Any] | None:
    """The request once it has settled, or None after `timeout` seconds."""
    from gsch.client import ApiError

    if output != "json":
        print(f"waiting for it to settle (at most {timeout:g} s)", file=sys.stderr)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ApiError):  # 404 until the read model has it
            found: dict[str, Any] = await api.get(f"/v1/requests/{request_id}")
            if found.get("state") in SETTLED_STATES:
                return found
        await asyncio.sleep(0.25)
    return None


# --- get ---------------------------------------------------------------------------------


REASON_WIDTH = 80  # of the REASON column; `gsch get request ID` or -o json shows it whole


def get_command(commands: Commands) -> None:
    get = add_command(commands, "get", "read requests, clusters and nodes from the API", _get)
    get.add_argument(
        "what", choices=("requests", "request", "clusters", "nodes"), help="what to read"
    )
    get.add_argument("name", nargs="?", help="request id or cluster name")
    add_api_flag(get)
    states = ", ".join(state for state in State if state is not State.NEW)
    get.add_argument("--state", help=f"with requests: only those in this state ({states})")
    get.add_argument("--policy", help="with requests: only those asking for this policy")
    get.add_argument(
        "--limit",
        type=int,
        default=50,
        help="with requests: at most this many, 1-1000 (default: %(default)s)",
    )
    get.add_argument(
        "--newest", action="store_true", help="with requests: newest first (default: oldest)"
    )
    get.add_argument(
        "--continue",
        dest="continue_token",
        metavar="TOKEN",
        help="with requests: the next page, from the token the previous page printed",
    )
    add_output_flag(get)


async def _get(args: argparse.Namespace) -> int:
    api = api_of(args, config_of(args))
    if args.what in ("request", "nodes") and not args.name:
        what = "ID" if args.what == "request" else "CLUSTER"
        raise SystemExit(f"usage: gsch get {args.what} {what}")
    if args.what == "requests":
        return await _get_requests(api, args)
    if args.what == "request":
        result = await api.get(f"/v1/requests/{args.name}")
        rows = []
        if args.output != "json":
            print(one_line(result))
            return 0
    elif args.what == "clusters":
        result = await api.get("/v1/clusters")
        rows = [["NAME", "TIER", "READY", "NODES"]]
        for item in result["items"]:
            rows.append([item["name"], str(item.get("tier")), str(item.get("ready")),
                         str(item.get("nodes", ""))])  # fmt: skip
    else:  # nodes
        result = await api.get(f"/v1/clusters/{args.name}/nodes")
        rows = [["NAME", "READY", "FREE CPU(m)", "FREE MEMORY", "FREE GPU"]]
        for item in result["items"]:
            free = item.get("free") or {}
            memory = bytes_text(int(free.get("memory", 0)))
            rows.append([item["name"], str(item.get("ready")), str(free.get("cpu_m", 0)), memory,
                         str(free.get("gpu", 0))])  # fmt: skip
    if args.output == "json":
        print_json(result)
    else:
        print(table(rows))
    return 0


async def _get_requests(api: Api, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    for name, value in (("state", args.state), ("policy", args.policy),
                        ("continue", args.continue_token)):  # fmt: skip
        if value:
            params[name] = value
    if args.newest:
        params["order"] = "newest"
    page = await api.get("/v1/requests", **params)
    if args.output == "json":
        print_json(page)
        return 0
    rows = [["ID", "STATE", "POLICY", "CLUSTER", "NODE", "ATTEMPTS", "REASON"]]
    for item in page["items"]:
        placement = item.get("placement") or {}
        rows.append([
            item["id"], item["state"], str(item.get("policy") or ""),
            str(placement.get("cluster") or ""), str(placement.get("node") or ""),
            str(item.get("attempts", "")), shorten(str(item.get("reason") or ""), REASON_WIDTH),
        ])  # fmt: skip
    print(table(rows) if page["items"] else "no requests match")
    following = page.get("continue")
    if following:
        # The token holds the filters and order it was issued for (the API checks them).
        print(clean(f"more: the same command with --continue {following}"))
    return 0


# --- plan / explain ----------------------------------------------------------------------


def plan_command(commands: Commands) -> None:
    plan = add_command(
        commands, "plan", "dry run: what gsch would decide now, committing nothing", _plan
    )
    plan.add_argument("file", help="request file (JSON or YAML), or - for stdin")
    add_api_flag(plan)
    plan.add_argument(
        "--token-file",
        help="file holding the API's plan (or write) token (default: api.auth.plan_token_file,"
        " else api.auth.token_file, from the config)",
    )
    add_output_flag(plan)


async def _plan(args: argparse.Namespace) -> int:
    from gsch.cli.explain import format_explanation
    from gsch.runtime.config import read_secret

    config = config_of(args)
    body = load_request_file(args.file)
    auth = config.api.auth
    token = read_secret(args.token_file or auth.plan_token_file or auth.token_file)
    answer = await api_of(args, config).post("/v1/plan", msgspec.json.encode(body), token=token)
    if args.output == "json":
        print_json(answer)
    else:
        where = ", ".join(f"{p['cluster']}/{p['node']}" for p in answer["placements"])
        verdict = f"would place on {where}" if answer["placed"] else "would not place"
        state = f"cluster state as of sequence {answer['sequence']}; nothing was committed"
        print(clean(f"{answer['policy']}: {verdict} ({state})"))
        print(format_explanation(answer["explanation"]))
    return 0 if answer["placed"] else 1


def explain_command(commands: Commands) -> None:
    explain = add_command(
        commands, "explain", "why a request was placed where it was, or not", _explain
    )
    explain.add_argument("request_id", help="the request's id")
    add_api_flag(explain)
    add_output_flag(explain)


async def _explain(args: argparse.Namespace) -> int:
    from gsch.cli.explain import explain_request

    found = await api_of(args, config_of(args)).get(f"/v1/requests/{args.request_id}")
    if args.output == "json":
        print_json(found.get("explanation"))
        return 0
    print(one_line(found))
    print(explain_request(found))
    return 0


# --- cancel ------------------------------------------------------------------------------


def cancel_command(commands: Commands) -> None:
    cancel = add_command(
        commands,
        "cancel",
        "cancel a request that is not final (releases capacity, removes workloads)",
        _cancel,
    )
    cancel.add_argument("request_id", help="the request's id")
    cancel.add_argument(
        "--reason",
        default="cancelled by the user",
        help="why, recorded with the cancellation (default: %(default)s)",
    )
    cancel.add_argument(
        "--before-arrival",
        action="store_true",
        help="cancel even if no such request exists yet: one published but not yet taken"
        " from the intake is then dropped when it arrives (the id stays cancelled)",
    )
    add_output_flag(cancel)


async def _cancel(args: argparse.Namespace) -> int:
    """A cancel goes where a submitter may put it, `gsch.cancel`; the workers carry it out
    (its outcome is the request's state: `gsch get request ID`)."""
    from gsch.client import publish_cancel
    from gsch.model.request import REQUEST_ID_PATTERN

    if not REQUEST_ID_PATTERN.match(args.request_id):
        print(clean(f"{args.request_id!r} is not a request id"), file=sys.stderr)
        return 2
    config = config_of(args)
    if not args.before_arrival and await _unknown_to_api(api_of(args, config), args.request_id):
        print(clean(f"{args.request_id}: no such request: nothing was cancelled."), file=sys.stderr)
        print(
            "If it was published a moment ago and still waits in the intake, cancel it with"
            " --before-arrival: it is then cancelled when it arrives (if it arrives within"
            " queue.cancel_before_arrival_seconds).",
            file=sys.stderr,
        )
        return 1
    async with client_store(config, args, Role.SUBMITTER) as store:
        seq = await publish_cancel(
            store.nc, args.request_id, args.reason, before_arrival=args.before_arrival
        )
    if args.output == "json":
        print_json({"request_id": args.request_id, "intake_sequence": seq})
    elif args.before_arrival:
        print(clean(
            f"{args.request_id}: cancel published (intake sequence {seq}); if no such request"
            " exists yet, it is cancelled in advance: a request with this id is cancelled when"
            " it arrives"
        ))  # fmt: skip
    else:
        print(clean(f"{args.request_id}: cancel published (intake sequence {seq}); workers carry"
                    " it out (`gsch get request ID` shows the outcome)"))  # fmt: skip
    return 0


async def _unknown_to_api(api: Api, request_id: str) -> bool:
    """Whether the read API answers that no request has this id (False when it cannot tell:
    then the workers decide, and record nothing for an id the log does not know)."""
    from gsch.cli.endpoints import CliError
    from gsch.client import ApiError

    try:
        await api.get(f"/v1/requests/{request_id}")
    except ApiError as exc:
        return exc.status == HTTPStatus.NOT_FOUND
    except CliError:  # no API answers: it cannot tell
        return False
    return False
