"""The dry run: what a worker would decide for a request, on the current cluster snapshot,
committing nothing. Same intake (`admit`), same profiles, same `plan` as the worker."""

from __future__ import annotations

import msgspec

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.model.events import Explanation, Placement
from gsch.model.intake import IntakeRules, Rejection
from gsch.model.tenancy import Tenancy
from gsch.policies.framework import plan
from gsch.policies.registry import PROFILES
from gsch.policies.rules import DEFAULT_RULES, PlannerRules
from gsch.scheduler.rules import admit, with_tenancy

DRY_RUN_ID = "dry-run"


class PlanAnswer(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    policy: str
    placed: bool
    level_index: int  # -1 when nothing could be placed
    placements: tuple[Placement, ...]
    explanation: Explanation
    sequence: int  # the last cluster event the snapshot had folded


class DryRun:
    def __init__(
        self,
        snapshot: ClusterSnapshot,
        rules: IntakeRules,
        planner: PlannerRules = DEFAULT_RULES,
    ) -> None:
        self.snapshot = snapshot
        self.rules = rules
        self.planner = planner
        self._base_rules = rules

    def use_rules(self, planner: PlannerRules, tenancy: Tenancy) -> None:
        """Answer with the projects and workspaces the log declares now (as workers do)."""
        self.planner = planner
        self.rules = with_tenancy(self._base_rules, tenancy)

    def plan(self, data: bytes) -> PlanAnswer | Rejection:
        admitted = admit(data, self.rules, DRY_RUN_ID)
        if isinstance(admitted, Rejection):
            return admitted
        sequence = self.snapshot.last_seq  # planning does not await: the view cannot move
        decision = plan(PROFILES[admitted.policy], admitted, self.snapshot, self.planner)
        return PlanAnswer(
            request_id=admitted.request_id,
            policy=admitted.policy.value,
            placed=decision.placed,
            level_index=decision.level_index,
            placements=decision.placements,
            explanation=decision.explanation,
            sequence=sequence,
        )
