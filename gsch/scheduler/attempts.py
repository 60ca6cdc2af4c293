"""One scheduling attempt: claim the request (unless it is new), plan on the cluster snapshot,
and commit the placement with its capacity reservations as one conditional append — or, when
nothing fits, requeue it (blocked: waiting for capacity) or fail it after Z* attempts.

One winner: the claim is conditional on the request's history, the commit on the request's
history since the claim *and* on each chosen node's history since the snapshot saw it. A lost
race on a node means wait until the snapshot has the event that beat us, then plan again; a
lost race on the request means another worker owns it now, so stop. What to append is decided
by `gsch.model.decisions`; this module does the I/O around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace

from gsch.clusters.snapshot import ClusterSnapshot
from gsch.eventstore.appends import Append
from gsch.eventstore.store import ConflictError, EventStore, KnownStaleError
from gsch.eventstore.subjects import ALL_CLUSTER_EVENTS, NodeKey, RequestKey
from gsch.metrics import (
    ATTEMPT_DURATION,
    COMMIT_CONFLICTS,
    E2E_DURATION,
    RETRIES,
    SCHEDULE_ATTEMPTS,
)
from gsch.model.decisions import Change, claim, commit, give_up, unschedulable
from gsch.model.events import CapacityReserved, Placement, RequestClaimed, RequestFailed
from gsch.model.limits import fit_explanation
from gsch.model.request import Request
from gsch.model.retry import RetryPolicy
from gsch.model.states import RequestState
from gsch.policies.framework import Decision, fits_now, plan_avoiding
from gsch.policies.registry import PROFILES
from gsch.policies.rules import PlannerRules
from gsch.scheduler.never_fits import never_fits

log = logging.getLogger(__name__)

# Plans superseded by a sibling attempt of this process before they were sent: bounded only
# so that a bug cannot spin for ever; each costs a plan, no round trip.
_MAX_STALE_PLANS = 10_000


class Attempts:
    def __init__(
        self,
        store: EventStore,
        snapshot: ClusterSnapshot,
        worker: str,
        planner: PlannerRules,
        retry: RetryPolicy,
        max_conflicts: int,
    ) -> None:
        self.store = store
        self.snapshot = snapshot
        self.worker = worker
        self.planner = planner
        self.retry = retry
        self.max_conflicts = max_conflicts
        # One commit at a time per node from this process: concurrent attempts here would
        # only race each other for the same expected sequence.
        self._node_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._guard = CommitGuard(store, snapshot)

    async def schedule(self, queued: RequestState) -> None:
        """A queued request (a retry, or one taken over after a lease expired): claim it,
        then attempt."""
        state = await self._claim(queued)
        if state is None or state.request is None:
            return
        base = Change(state.request_id, state.last_seq, ())
        await self.attempt(state, state.request, base, accepted_at=state.accepted_at)

    async def _claim(self, state: RequestState) -> RequestState | None:
        """Append our claim; None when the request is no longer ours to schedule."""
        queued_seq = state.queued_seq
        for _ in range(self.max_conflicts):
            change = claim(state, queued_seq, self.worker, time.time())
            if change is None:
                return None
            try:
                (seq,) = await self.store.append_change(change)
            except ConflictError:
                COMMIT_CONFLICTS.labels(scope="request").inc()
                state = await self.store.load_request(state.request_id)
                continue
            claimed = change.outcome
            assert isinstance(claimed, RequestClaimed)
            state.apply(claimed, seq)
            return state
        return None

    async def attempt(
        self, state: RequestState, request: Request, base: Change, accepted_at: float
    ) -> bool:
        """Plan and commit one attempt, after `base` (the acceptance of a new request, or
        nothing after a claim). False when the request's history was not what `base`
        expects (someone else moved it on); the outcome then belongs to them."""
        started = time.monotonic()
        attempt = max(1, state.attempt)
        profile = PROFILES[request.policy]
        conflicts = stale = 0
        while conflicts < self.max_conflicts and stale < _MAX_STALE_PLANS:
            decision = plan_avoiding(
                profile, request, self.snapshot, self.planner, state.avoid_clusters
            )
            now = time.time()
            # Every event must fit in one message of the log, whatever the fleet's size.
            explanation = fit_explanation(decision.explanation)
            if not decision.placed:
                hopeless = (
                    never_fits(request, self.snapshot) if decision.waits_for_capacity else None
                )
                if hopeless is not None:  # waiting would hold it for ever: fail it now
                    change = give_up(base, state, attempt, hopeless, now, explanation)
                else:
                    change = unschedulable(
                        base, state, attempt, f"unschedulable: {explanation.summary}",
                        self.retry, now, fast=request.fast, explanation=explanation,
                        blocked=decision.waits_for_capacity,
                    )  # fmt: skip
                if not await self._append_outcome(change, "unschedulable"):
                    return False
                SCHEDULE_ATTEMPTS.labels(result="unschedulable", policy=request.policy).inc()
                ATTEMPT_DURATION.labels("unschedulable", request.policy).observe(
                    time.monotonic() - started
                )
                return True
            committed = commit(
                base, attempt, decision.placements, decision.level_index, explanation,
                self.worker, now,
            )  # fmt: skip
            result = await self._commit(request, decision, committed)
            if result is None:
                stale += 1  # a sibling in this process changed a chosen node: plan again
                continue
            if result is False:
                conflicts += 1
                if not await self._catch_up_after_conflict(state, decision.placements):
                    return False
                continue
            SCHEDULE_ATTEMPTS.labels(result="scheduled", policy=request.policy).inc()
            ATTEMPT_DURATION.labels("scheduled", request.policy).observe(time.monotonic() - started)
            E2E_DURATION.labels(stage="scheduled").observe(max(0.0, now - accepted_at))
            return True
        change = unschedulable(
            base, state, attempt, "gave up after repeated commit conflicts", self.retry,
            time.time(), fast=request.fast,
        )  # fmt: skip
        SCHEDULE_ATTEMPTS.labels(result="error", policy=request.policy).inc()
        return await self._append_outcome(change, "commit_conflicts")

    async def give_up(self, state: RequestState, reason: str) -> bool:
        """Fail a queued request now, with `reason` (it waited too long); False when its
        history moved on meanwhile (cancelled, taken over)."""
        base = Change(state.request_id, state.last_seq, ())
        change = give_up(base, state, state.attempt, reason, time.time(), state.explanation)
        return await self._append_outcome(change, "blocked")

    async def _append_outcome(self, change: Change, kind: str) -> bool:
        try:
            await self.store.append_change(change)
        except ConflictError:
            return False
        if isinstance(change.outcome, RequestFailed):
            log.info("request failed", extra={"request_id": change.request_id})
        else:
            RETRIES.labels(reason=kind).inc()
        return True

    async def _commit(self, request: Request, decision: Decision, change: Change) -> bool | None:
        """Append the commit under this process's node locks.

        True: committed, and the reservations are folded into the snapshot at once.
        False: another process won the race. None: while waiting for the lock the chosen
        node stopped passing the filters on the log's own numbers, so plan again.

        While waiting, the placement is assumed on its nodes, so other attempts of this
        process plan around it instead of queueing for the same node.
        """
        placements = decision.placements
        profile = PROFILES[request.policy]
        self.snapshot.assume(placements)
        try:
            keys = sorted({(p.cluster, p.node) for p in placements})
            async with contextlib.AsyncExitStack() as held:
                for key in keys:
                    await held.enter_async_context(self._node_locks.setdefault(key, asyncio.Lock()))
                # Re-check on the log's numbers under the lock: siblings may have committed
                # to these nodes since we planned; the expected sequence is each node's now.
                node_seqs: dict[tuple[str, str], int] = {}
                for placement in placements:
                    node = self.snapshot.clusters[placement.cluster].nodes[placement.node]
                    if not fits_now(profile, request, node, placement.amount):
                        return None
                    node_seqs[(placement.cluster, placement.node)] = node.last_seq
                self._guard.requests[request.request_id] = request
                try:
                    sequences = await self.store.append_change(change, node_seqs, self._guard)
                except KnownStaleError:
                    COMMIT_CONFLICTS.labels(scope="node_seen").inc()
                    return None  # the snapshot already has what beat us: plan again now
                except ConflictError:
                    return False
                for reserved, seq in zip(
                    change.capacity, sequences[len(change.events) :], strict=True
                ):
                    self.snapshot.apply(reserved, seq)
            return True
        finally:
            self._guard.requests.pop(request.request_id, None)
            self.snapshot.forget(placements)

    async def _catch_up_after_conflict(
        self, state: RequestState, placements: tuple[Placement, ...]
    ) -> bool:
        """After a lost commit: False if the request is no longer ours, else wait until the
        snapshot holds the node events that beat us."""
        last = await self.store.last(RequestKey(state.request_id))
        if (last.seq if last else 0) != state.last_seq:
            COMMIT_CONFLICTS.labels(scope="request").inc()
            return False
        COMMIT_CONFLICTS.labels(scope="node").inc()
        for placement in placements:
            newest = await self.store.last(NodeKey(placement.cluster, placement.node))
            if newest is not None:
                await self.snapshot.wait_for(newest.seq, timeout=5.0)
        return True


class CommitGuard:
    """This process's snapshot as the event store's revalidator for commits: consulted just
    before a grouped commit goes out, and after a group was refused."""

    def __init__(self, store: EventStore, snapshot: ClusterSnapshot) -> None:
        self.store = store
        self.snapshot = snapshot
        # Requests whose commit is on its way, for re-validation just before sending.
        self.requests: dict[str, Request] = {}

    async def catch_up(self, seq: int | None = None) -> None:
        """Wait until the snapshot holds the cluster events up to `seq`, or every cluster
        event the log has now."""
        if seq is None:
            newest = await self.store.last(ALL_CLUSTER_EVENTS)
            seq = newest.seq if newest is not None else None
        if seq is not None:
            await self.snapshot.wait_for(seq, timeout=5.0)

    def rebase(self, item: Append) -> Append | None:
        """If the snapshot has meanwhile seen newer events of a chosen node (another worker's
        reservations), check the placement again on the node's state as the log now has it.
        Still fits: send it conditional on that newer sequence (the server then guarantees
        the node is exactly what was checked). No longer fits: None, and the attempt plans
        again."""
        event = item.event
        if not isinstance(event, CapacityReserved) or item.expect_seq is None:
            return item
        cluster = self.snapshot.clusters.get(event.cluster)
        node = cluster.nodes.get(event.node) if cluster else None
        if node is None or node.last_seq == item.expect_seq:
            return item
        request = self.requests.get(event.request_id)
        if request is None or not fits_now(PROFILES[request.policy], request, node, event.amount):
            return None
        return replace(item, expect_seq=node.last_seq)
