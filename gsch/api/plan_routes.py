"""POST /v1/plan: the dry run over HTTP. It commits nothing, but a plan costs CPU, so it needs
the plan token (or the write token), and it runs in planner processes, never on this event
loop (`gsch.api.planners`): reads stay fast however many plans arrive."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from gsch.api.http import JSON, SEQUENCE_HEADER, ApiError, refusal_status
from gsch.api.planners import PlannerUnavailableError
from gsch.api.spec import Operation
from gsch.scheduler.dryrun import PlanAnswer
from gsch.scheduler.planner_process import Done


class Planner(Protocol):
    async def plan(self, body: bytes) -> Done: ...


class PlanRoutes:
    def __init__(self, planner: Planner) -> None:
        self._planner = planner

    def operations(self) -> list[Operation]:
        return [
            Operation("POST", "/v1/plan", self.plan, "What a worker would decide, committing"
                      " nothing (dry run)", PlanAnswer, body=dict[str, Any], plans=True,
                      errors=(422,)),
        ]  # fmt: skip

    async def plan(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            done = await self._planner.plan(body)
        except PlannerUnavailableError as exc:
            raise ApiError(503, exc.reason, {"Retry-After": str(exc.retry_after)}) from None
        if done.rejected:
            reason = f"request would be rejected: {done.field}: {done.problem}"
            raise ApiError(refusal_status(done.field), reason, field=done.field)
        # The planner encoded the answer: passed through, not decoded and encoded again here.
        response = web.Response(body=done.answer, content_type=JSON)
        response.headers[SEQUENCE_HEADER] = str(done.sequence)
        return response
