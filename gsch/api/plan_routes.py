"""POST /v1/plan: the dry run over HTTP. Changes nothing, so it needs no write token."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gsch.api.http import ApiError, json_response
from gsch.api.spec import Operation
from gsch.model.intake import Rejection
from gsch.scheduler.dryrun import DryRun, PlanAnswer


class PlanRoutes:
    def __init__(self, dry_run: DryRun) -> None:
        self._dry_run = dry_run

    def operations(self) -> list[Operation]:
        return [
            Operation("POST", "/v1/plan", self.plan, "What a worker would decide, committing"
                      " nothing (dry run)", PlanAnswer, body=dict[str, Any], errors=(422,)),
        ]  # fmt: skip

    async def plan(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        answer = self._dry_run.plan(body)
        if isinstance(answer, Rejection):
            raise ApiError(422, f"request would be rejected: {answer.reason}")
        return json_response(answer, answer.sequence)
