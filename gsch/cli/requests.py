"""The commands a user runs against requests: `submit`, `get`, `plan`, `explain` and
`cancel`, with the request-file reader and the text formats they print."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import yaml

from gsch.bus.roles import Role
from gsch.cli.common import add_api_flag, add_command, api_url, client_store, config_of
from gsch.cli.output import add_output_flag, one_line, table
from gsch.model.ids import fresh_request_id
from gsch.model.states import SETTLED_STATES, State

if TYPE_CHECKING:
    from gsch.cli.common import Commands


def _load_request_file(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return yaml.safe_load(text)  # manifests are usually YAML; the wire is JSON


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


async def _submit(args: argparse.Namespace) -> int:
    from gsch.client import ApiError, api_get, publish_request
    from gsch.tools.samples import declared_request_id

    config = config_of(args)
    body = _load_request_file(args.file)
    request_id = declared_request_id(body) if isinstance(body, dict) else None
    if isinstance(body, dict) and request_id is None and "apiVersion" not in body:
        request_id = fresh_request_id("cli")
        body["request_id"] = request_id
    async with client_store(config, Role.SUBMITTER) as store:
        seq = await publish_request(store.nc, msgspec.json.encode(body), request_id)
    print(f"submitted {request_id or '(id assigned by gsch)'} (intake sequence {seq})")
    if not args.wait or request_id is None:
        return 0
    api = api_url(args, config)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ApiError):
            found = await api_get(api, f"/v1/requests/{request_id}")
            if found.get("state") in SETTLED_STATES:
                print(json.dumps(found, indent=2) if args.output == "json" else one_line(found))
                return 0 if found["state"] == State.BOUND else 1
        await asyncio.sleep(0.25)
    print(f"{request_id}: not settled after {args.timeout}s", file=sys.stderr)
    return 1


# --- get ---------------------------------------------------------------------------------


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
        help="with requests: at most this many (default: %(default)s)",
    )
    add_output_flag(get)


async def _get(args: argparse.Namespace) -> int:
    from gsch.client import api_get

    config = config_of(args)
    api = api_url(args, config)
    what = args.what
    if what == "requests":
        params = {k: v for k, v in (("state", args.state), ("policy", args.policy)) if v}
        result = await api_get(api, "/v1/requests", limit=args.limit, **params)
        rows = [["ID", "STATE", "POLICY", "CLUSTER", "NODE", "ATTEMPTS"]]
        for item in result["items"]:
            placement = item.get("placement") or {}
            rows.append([
                item["id"], item["state"], str(item.get("policy") or ""),
                str(placement.get("cluster") or ""), str(placement.get("node") or ""),
                str(item.get("attempts", "")),
            ])  # fmt: skip
    elif what == "request":
        if not args.name:
            raise SystemExit("gsch get request ID")
        result = await api_get(api, f"/v1/requests/{args.name}")
        rows = []
        if args.output != "json":
            print(one_line(result))
            return 0
    elif what == "clusters":
        result = await api_get(api, "/v1/clusters")
        rows = [["NAME", "TIER", "READY", "NODES"]]
        for item in result["items"]:
            rows.append([item["name"], str(item.get("tier")), str(item.get("ready")),
                         str(item.get("nodes", ""))])  # fmt: skip
    else:  # nodes
        if not args.name:
            raise SystemExit("gsch get nodes CLUSTER")
        result = await api_get(api, f"/v1/clusters/{args.name}/nodes")
        rows = [["NAME", "READY", "FREE CPU(m)", "FREE MEMORY", "FREE GPU"]]
        for item in result["items"]:
            free = item.get("free") or {}
            rows.append([item["name"], str(item.get("ready")), str(free.get("cpu_m", 0)),
                         str(free.get("memory", 0)), str(free.get("gpu", 0))])  # fmt: skip
    if args.output == "json":
        print(json.dumps(result, indent=2))
    else:
        print(table(rows))
    return 0


# --- plan / explain ----------------------------------------------------------------------


def plan_command(commands: Commands) -> None:
    plan = add_command(
        commands, "plan", "dry run: what gsch would decide now, committing nothing", _plan
    )
    plan.add_argument("file", help="request file (JSON or YAML), or - for stdin")
    add_api_flag(plan)
    add_output_flag(plan)


async def _plan(args: argparse.Namespace) -> int:
    from gsch.client import api_post
    from gsch.explain import format_explanation

    config = config_of(args)
    body = _load_request_file(args.file)
    answer = await api_post(api_url(args, config), "/v1/plan", msgspec.json.encode(body))
    if args.output == "json":
        print(json.dumps(answer, indent=2))
    else:
        where = ", ".join(f"{p['cluster']}/{p['node']}" for p in answer["placements"])
        verdict = f"would place on {where}" if answer["placed"] else "would not place"
        state = f"cluster state as of sequence {answer['sequence']}; nothing was committed"
        print(f"{answer['policy']}: {verdict} ({state})")
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
    from gsch.client import api_get
    from gsch.explain import format_explanation

    config = config_of(args)
    found = await api_get(api_url(args, config), f"/v1/requests/{args.request_id}")
    if args.output == "json":
        print(json.dumps(found.get("explanation"), indent=2))
        return 0
    print(one_line(found))
    print(format_explanation(found.get("explanation")))
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
    add_output_flag(cancel)


async def _cancel(args: argparse.Namespace) -> int:
    """A cancel goes where a submitter may put it, `gsch.cancel`; the workers carry it out
    (its outcome is the request's state: `gsch get request ID`)."""
    from gsch.client import publish_cancel
    from gsch.model.request import REQUEST_ID_PATTERN

    if not REQUEST_ID_PATTERN.match(args.request_id):
        print(f"{args.request_id!r} is not a request id", file=sys.stderr)
        return 2
    config = config_of(args)
    async with client_store(config, Role.SUBMITTER) as store:
        seq = await publish_cancel(store.nc, args.request_id, args.reason)
    if args.output == "json":
        print(json.dumps({"request_id": args.request_id, "intake_sequence": seq}))
    else:
        print(f"{args.request_id}: cancel published (intake sequence {seq}); workers carry it out")
    return 0
