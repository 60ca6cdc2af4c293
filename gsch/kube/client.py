"""A thin JSON client over kubernetes-asyncio's ApiClient.

kubernetes-asyncio loads the kubeconfig (or the in-cluster service account), authenticates and
speaks HTTP; this module sends requests by path and returns plain dicts. gsch touches a few
generic verbs on any allow-listed kind (list, watch, get, apply, delete), and the typed
per-kind methods would mean one code path per kind and a model round trip per object.
Every failure becomes `KubeApiError` (the server answered) or `KubeUnreachable` (it did not).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

APPLY_PATCH = "application/apply-patch+yaml"


class KubeError(Exception):
    """A call to a member cluster's API server did not succeed."""

    status = 0
    reason = ""


class KubeApiError(KubeError):
    """The API server answered with an error status; `reason` is Kubernetes' reason word."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class KubeUnreachable(KubeError):
    """No answer: connection refused, reset or timed out."""


def _error(status: int, data: bytes) -> KubeApiError:
    try:
        body = json.loads(data)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("message") or data[:200].decode(errors="replace"))
    return KubeApiError(status, str(body.get("reason") or "Unknown"), message)


class KubeClient:
    def __init__(self, api: k8s_client.ApiClient, timeout: float = 10.0) -> None:
        self._api = api
        self.timeout = timeout

    @classmethod
    async def connect(
        cls, kubeconfig: str | None, context: str | None, timeout: float = 10.0
    ) -> KubeClient:
        """From a kubeconfig file and context, or the in-cluster service account when
        `kubeconfig` is None."""
        configuration = k8s_client.Configuration()
        if kubeconfig is None:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await k8s_config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        return cls(k8s_client.ApiClient(configuration=configuration), timeout)

    @property
    def endpoint(self) -> tuple[str, int]:
        """Host and port of the API server (what the latency probe connects to)."""
        parts = urlsplit(str(self._api.configuration.host))
        default = 443 if parts.scheme == "https" else 80
        return parts.hostname or "", parts.port or default

    async def close(self) -> None:
        await self._api.close()

    async def _send(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None,
        body: dict[str, Any] | None,
        content_type: str,
        timeout: aiohttp.ClientTimeout | float,
    ) -> Any:
        try:
            return await self._api.call_api(
                path,
                method,
                query_params=list((query or {}).items()),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise KubeUnreachable(f"{method} {path}: {exc!r}") from exc

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        response = await self._send(method, path, query, body, content_type, self.timeout)
        try:
            data = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise KubeUnreachable(f"{method} {path}: {exc!r}") from exc
        finally:
            response.release()
        if not 200 <= response.status < 300:
            raise _error(response.status, data)
        result = json.loads(data) if data else {}
        return result if isinstance(result, dict) else {}

    async def apply(self, path: str, document: dict[str, Any], manager: str) -> dict[str, Any]:
        """Server-side apply, forcing ownership of the fields `document` sets."""
        query = {"fieldManager": manager, "force": "true"}
        return await self.call("PATCH", path, query=query, body=document, content_type=APPLY_PATCH)

    @contextlib.asynccontextmanager
    async def watch(
        self, path: str, resource_version: str, timeout_seconds: int
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """A watch stream of `{"type", "object"}` events from `resource_version`, with
        bookmarks; it ends when the server closes it (after about `timeout_seconds`)."""
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        # No total timeout: only the connect and the silence between lines are bounded
        # (bookmarks keep a healthy stream talking).
        timeout = aiohttp.ClientTimeout(
            sock_connect=self.timeout, sock_read=timeout_seconds + self.timeout
        )
        response = await self._send("GET", path, query, None, "application/json", timeout)
        try:
            if response.status != 200:
                raise _error(response.status, await response.read())
            yield self._lines(response, path)
        finally:
            response.release()

    async def _lines(self, response: Any, path: str) -> AsyncIterator[dict[str, Any]]:
        while True:
            try:
                line = await response.content.readline()
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise KubeUnreachable(f"watch {path}: {exc!r}") from exc
            if not line:
                return
            event = json.loads(line)
            if isinstance(event, dict):
                yield event
