"""A fake Kubernetes API server over real HTTP, for the parts of the REST protocol gsch uses.

kubernetes-asyncio talks to it through a generated kubeconfig exactly as to a real API
server: bearer-token auth, list with `limit`/`continue`, watch streams (JSON lines) with
`resourceVersion`, bookmarks and `410 Gone` once history is compacted, create (`409
AlreadyExists`), server-side apply (PATCH `application/apply-patch+yaml` with a field manager,
`409 Conflict` between managers unless forced), get, delete, namespaces (a namespaced object
in a missing namespace is `404`, as on a real server). Tests inject errors (`inject`, `deny`)
and make the server vanish (`stop`) and come back on the same port (`start`).

It keeps no controllers: a Deployment does not grow pods. Tests put pods on nodes with `put`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from gsch.kube.kinds import group_prefix, plural

TOKEN = "fake-token"
# Collection (group/version prefix, plural), namespace ("" when cluster-scoped), name.
Key = tuple[str, str, str, str]
Rule = Callable[[str, str, dict[str, Any] | None], bool]


@dataclass
class _Fault:
    status: int
    method: str | None
    path_contains: str
    times: int | None  # None: until removed
    reason: str
    message: str
    rule: Rule | None = None


@dataclass(frozen=True)
class _Route:
    prefix: str
    plural: str
    namespace: str | None
    name: str | None


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    }  # fmt: skip
    headers = {"Retry-After": "1"} if code == 429 else None
    return web.json_response(body, status=code, headers=headers)


def _parse(path: str) -> _Route | None:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        prefix, rest = "/api/v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        prefix, rest = f"/apis/{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    if len(rest) >= 3 and rest[0] == "namespaces":
        return _Route(prefix, rest[2], rest[1], rest[3] if len(rest) > 3 else None)
    if len(rest) in (1, 2):
        return _Route(prefix, rest[0], None, rest[1] if len(rest) == 2 else None)
    return None


class FakeKube:
    def __init__(self, name: str = "fake", bookmark_interval: float = 0.2) -> None:
        self.name = name
        self.bookmark_interval = bookmark_interval
        self.objects: dict[Key, dict[str, Any]] = {}
        self.managers: dict[Key, set[str]] = {}
        self.rv = 1
        self.history: list[tuple[int, str, Key, dict[str, Any]]] = []
        self.compacted = 0  # watches from a resourceVersion below this get 410 Gone
        self.faults: list[_Fault] = []
        self.calls: list[tuple[str, str]] = []  # (method, path) of every request served
        self.creations = 0
        self._watchers: set[asyncio.Queue[tuple[int, str, Key, dict[str, Any]]]] = set()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen (again) on 127.0.0.1, on the same port after a stop."""
        self._closing = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Vanish: close every watch and stop listening (connections are refused)."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- state, as tests and the handlers change it --------------------------------------

    def _key(self, document: dict[str, Any]) -> Key:
        metadata = document["metadata"]
        prefix = group_prefix(document["apiVersion"])
        return (prefix, plural(document["kind"]), metadata.get("namespace") or "", metadata["name"])

    def _emit(self, kind: str, key: Key, obj: dict[str, Any]) -> None:
        entry = (self.rv, kind, key, copy.deepcopy(obj))
        self.history.append(entry)
        for queue in self._watchers:
            queue.put_nowait(entry)

    def put(self, document: dict[str, Any]) -> dict[str, Any]:
        """Create or replace an object (as a controller or kubelet would), with a watch event."""
        key = self._key(document)
        obj = copy.deepcopy(document)
        old = self.objects.get(key)
        metadata = obj.setdefault("metadata", {})
        if old is None:
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ"))
            self.creations += 1
        else:
            metadata["uid"] = old["metadata"]["uid"]
            metadata["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        self.rv += 1
        metadata["resourceVersion"] = str(self.rv)
        self.objects[key] = obj
        self._emit("ADDED" if old is None else "MODIFIED", key, obj)
        return obj

    def remove(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        key = (group_prefix(api_version), plural(kind), namespace or "", name)
        obj = self.objects.pop(key, None)
        self.managers.pop(key, None)
        if obj is None:
            return False
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._emit("DELETED", key, obj)
        return True

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        return self.objects.get((group_prefix(api_version), plural(kind), namespace or "", name))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        wanted = plural(kind)
        return [obj for key, obj in sorted(self.objects.items()) if key[1] == wanted]

    def compact(self) -> None:
        """Forget the watch history: resuming a watch from an older version gets 410 Gone."""
        self.history.clear()
        self.compacted = self.rv + 1

    def inject(
        self, status: int, *, method: str | None = None, path_contains: str = "",
        times: int | None = 1, reason: str = "InternalError", message: str = "injected",
    ) -> None:  # fmt: skip
        """Answer the next `times` matching requests with `status` (None: every one)."""
        self.faults.append(_Fault(status, method, path_contains, times, reason, message))

    def deny(self, rule: Rule, status: int, reason: str, message: str) -> None:
        """Refuse every request for which `rule(method, path, body)` holds (a quota, RBAC)."""
        self.faults.append(_Fault(status, None, "", None, reason, message, rule))

    def _fault_for(self, method: str, path: str, body: dict[str, Any] | None) -> _Fault | None:
        for fault in self.faults:
            if fault.method not in (None, method) or fault.path_contains not in path:
                continue
            if fault.rule is not None and not fault.rule(method, path, body):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
            return fault
        return None

    # --- HTTP ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.calls.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _status(401, "Unauthorized", "Unauthorized")
        body = None
        if request.can_read_body:
            body = yaml.safe_load(await request.text())  # JSON is YAML
        fault = self._fault_for(request.method, request.path, body)
        if fault is not None:
            return _status(fault.status, fault.reason, fault.message)
        route = _parse(request.path)
        if route is None:
            return _status(404, "NotFound", f"the server could not find {request.path}")
        query = request.query
        if request.method == "GET" and route.name is None:
            if query.get("watch") in ("true", "True", "1"):
                return await self._watch(request, route)
            return self._list(route, query)
        if request.method == "GET":
            return self._get(route)
        if request.method == "POST" and route.name is None and isinstance(body, dict):
            return self._create(route, body)
        if request.method == "PATCH" and route.name is not None and isinstance(body, dict):
            return self._apply(request, route, body)
        if request.method == "DELETE" and route.name is not None:
            return self._delete(route)
        return _status(405, "MethodNotAllowed", f"{request.method} {request.path}")

    def _route_key(self, route: _Route) -> Key:
        return (route.prefix, route.plural, route.namespace or "", route.name or "")

    def _matches(self, route: _Route, key: Key) -> bool:
        same_collection = (key[0], key[1]) == (route.prefix, route.plural)
        return same_collection and route.namespace in (None, key[2])

    def _list(self, route: _Route, query: Any) -> web.Response:
        limit = int(query.get("limit") or 0)
        start = 0
        token = query.get("continue")
        if token:
            version, _, offset = token.partition(":")
            if int(version) < self.compacted:
                return _status(410, "Expired", "the continue token is too old")
            start = int(offset)
        keys = sorted(key for key in self.objects if self._matches(route, key))
        page = keys[start : start + limit] if limit else keys[start:]
        metadata: dict[str, Any] = {"resourceVersion": str(self.rv)}
        if limit and start + limit < len(keys):
            metadata["continue"] = f"{self.rv}:{start + limit}"
        return web.json_response(
            {"kind": "List", "apiVersion": "v1", "metadata": metadata,
             "items": [self.objects[key] for key in page]}
        )  # fmt: skip

    async def _watch(self, request: web.Request, route: _Route) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or 0)
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        bookmarks = request.query.get("allowWatchBookmarks") in ("true", "True", "1")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)

        async def send(kind: str, obj: dict[str, Any]) -> None:
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        if since and since < self.compacted:
            message = f"too old resource version: {since}"
            gone = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                    "reason": "Expired", "message": message}  # fmt: skip
            await send("ERROR", gone)
            return response
        queue: asyncio.Queue[tuple[int, str, Key, dict[str, Any]]] = asyncio.Queue()
        self._watchers.add(queue)
        try:
            for entry in [e for e in self.history if e[0] > since]:
                queue.put_nowait(entry)
            deadline = time.monotonic() + timeout
            while not self._closing.is_set() and time.monotonic() < deadline:
                try:
                    rv, kind, key, obj = await asyncio.wait_for(queue.get(), self.bookmark_interval)
                except TimeoutError:
                    if bookmarks:
                        await send("BOOKMARK", {"metadata": {"resourceVersion": str(self.rv)}})
                    continue
                if rv > since and self._matches(route, key):
                    await send(kind, obj)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.discard(queue)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    def _get(self, route: _Route) -> web.Response:
        obj = self.objects.get(self._route_key(route))
        if obj is None:
            return _status(404, "NotFound", f'{route.plural} "{route.name}" not found')
        return web.json_response(obj)

    def _namespace_missing(self, namespace: str | None) -> web.Response | None:
        if namespace is None or ("/api/v1", "namespaces", "", namespace) in self.objects:
            return None
        return _status(404, "NotFound", f'namespaces "{namespace}" not found')

    def _create(self, route: _Route, body: dict[str, Any]) -> web.Response:
        name = (body.get("metadata") or {}).get("name")
        key = (route.prefix, route.plural, route.namespace or "", name or "")
        if key in self.objects:
            return _status(409, "AlreadyExists", f'{route.plural} "{name}" already exists')
        missing = self._namespace_missing(route.namespace)
        if missing is not None:
            return missing
        if route.namespace is not None:
            body["metadata"]["namespace"] = route.namespace
        return web.json_response(self.put(body), status=201)

    def _apply(self, request: web.Request, route: _Route, body: dict[str, Any]) -> web.Response:
        if request.content_type != "application/apply-patch+yaml":
            return _status(415, "UnsupportedMediaType", f"{request.content_type} not supported")
        manager = request.query.get("fieldManager")
        if not manager:
            return _status(400, "BadRequest", "fieldManager is required for apply patch")
        force = request.query.get("force") in ("true", "True", "1")
        key = self._route_key(route)
        old = self.objects.get(key)
        if old is None:
            missing = self._namespace_missing(route.namespace)
            if missing is not None:
                return missing
            if route.namespace is not None:
                body.setdefault("metadata", {})["namespace"] = route.namespace
            self.managers[key] = {manager}
            return web.json_response(self.put(body), status=201)
        others = self.managers.get(key, set()) - {manager}
        if others and not force:
            return _status(409, "Conflict", f"Apply failed with conflicts: managed by {others}")
        merged = copy.deepcopy(old)
        for field, value in body.items():
            if field != "metadata":
                merged[field] = copy.deepcopy(value)
        for part in ("labels", "annotations"):
            applied = (body.get("metadata") or {}).get(part)
            if applied:
                merged["metadata"].setdefault(part, {}).update(applied)
        self.managers[key] = {manager} if force else self.managers.get(key, set()) | {manager}
        if merged == old:
            return web.json_response(old)  # a no-op apply bumps nothing, as on a real server
        return web.json_response(self.put(merged))

    def _delete(self, route: _Route) -> web.Response:
        key = self._route_key(route)
        obj = self.objects.get(key)
        if obj is None:
            return _status(404, "NotFound", f'{route.plural} "{route.name}" not found')
        self.remove(obj["apiVersion"], obj["kind"], route.namespace, key[3])
        return web.json_response(obj)


def write_kubeconfig(path: Path, servers: dict[str, FakeKube]) -> Path:
    """A kubeconfig with one context per fake server, named after the dict key."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": s.url}} for n, s in servers.items()],
        "users": [{"name": "gsch", "user": {"token": TOKEN}}],
        "contexts": [{"name": n, "context": {"cluster": n, "user": "gsch"}} for n in servers],
        "current-context": next(iter(servers)),
    }
    path.write_text(yaml.safe_dump(document))
    return path


def node(name: str, cpu: str = "4", memory: str = "8Gi", *, ready: bool = True,
         labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
         address: str = "127.0.0.1") -> dict[str, Any]:  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or []},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "addresses": [{"type": "InternalIP", "address": address}],
        },
    }


def pod(name: str, node_name: str | None, cpu: str = "100m", *, namespace: str = "default",
        phase: str = "Running", labels: dict[str, str] | None = None,
        ) -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {
        "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": cpu}}}]
    }
    if node_name is not None:
        spec["nodeName"] = node_name
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": spec,
        "status": {"phase": phase},
    }
