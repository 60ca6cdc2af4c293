"""What `gsch demo` prints: progress while it runs, then a summary whose counts are those
`gsch audit` finds in the log (the tracker folds events with the same rule), with what the
deliberately failing samples were for and the commands to look further."""

from __future__ import annotations

import shlex
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gsch.model.states import SETTLED_STATES, State
from gsch.tools.observe import Progress, RequestTracker
from gsch.tools.samples import INVALID, UNPLACEABLE

# Every state a published request can be in, in lifecycle order. The summary leads with the
# settled states (the outcome), then whatever has not settled.
STATES = tuple(state for state in State if state is not State.NEW)
SUMMARY_ORDER = (
    *(state for state in STATES if state in SETTLED_STATES),
    *(state for state in STATES if state not in SETTLED_STATES),
)
# The "form" of requests no worker could read a form from.
UNREADABLE = "unreadable"  # rejected: not JSON, or not a JSON object
UNREAD = "unread (cancelled first)"  # cancelled before a worker took it from the intake
QUIET_SECONDS = 5.0  # while nothing changes, a progress line at most this often
EXAMPLES = 3  # unsettled requests named in a "still waiting" line


@dataclass
class Published:
    """What the demo sent: how many, and the ids of the samples meant to fail, by purpose."""

    count: int = 0
    on_purpose: dict[str, set[str]] = field(default_factory=dict)
    cancelled: int = 0  # cancels the demo sent (as a user changing their mind)

    def add(self, request_id: str, purpose: str | None) -> None:
        self.count += 1
        if purpose is not None:
            self.on_purpose.setdefault(purpose, set()).add(request_id)


class ProgressLines:
    """One line per second while counts move; while they do not, one line every few seconds
    saying what is still awaited, instead of the same line over and over."""

    def __init__(self, say: Callable[[str], None], tracker: RequestTracker) -> None:
        self._say = say
        self._tracker = tracker
        self._last: str | None = None
        self._last_at = 0.0

    def tick(self, published: int, elapsed: float) -> None:
        counts = self._tracker.counts()
        parts = " ".join(f"{state}={counts.get(state, 0)}" for state in STATES)
        line = f"published={published} {parts}"
        now = time.monotonic()
        if line != self._last:
            self._say(f"t={elapsed:5.1f}s {line}")
        elif now - self._last_at >= QUIET_SECONDS:
            self._say(f"t={elapsed:5.1f}s {self._awaited()}")
        else:
            return
        self._last, self._last_at = line, now

    def _awaited(self) -> str:
        waiting = [(rid, p.state) for rid, p in self._tracker.requests.items()
                   if p.state not in SETTLED_STATES]  # fmt: skip
        named = ", ".join(f"{rid} ({state})" for rid, state in waiting[:EXAMPLES])
        more = f" and {len(waiting) - EXAMPLES} more" if len(waiting) > EXAMPLES else ""
        return (
            f"still waiting for {len(waiting)} to settle: {named}{more} (retried with backoff;"
            " a request that cannot be placed fails after its sixth attempt)"
        )


def summary(tracker: RequestTracker, published: Published, api_url: str | None) -> list[str]:
    counts = tracker.counts()
    lines = ["", "summary", f"  published:  {published.count} (requests in the log: "
             f"{len(tracker.requests)})"]  # fmt: skip
    for state in SUMMARY_ORDER:
        if counts.get(state):
            note = _why(state, tracker, published)
            lines.append(f"  {state + ':':11} {counts[state]}{note}")
    policies = Counter(p.policy for p in tracker.requests.values() if p.policy)
    forms = Counter(_form(p) for p in tracker.requests.values())
    lines.append(f"  by policy:  {_counted(policies)} (the {sum(policies.values())} accepted)")
    lines.append(f"  by form:    {_counted(forms)} (all {sum(forms.values())})")
    latencies = [
        p.bound_at - p.scheduled_at
        for p in tracker.requests.values()
        if p.bound_at is not None and p.scheduled_at is not None
    ]
    if latencies:
        lines.append(f"  scheduled->bound median {statistics.median(latencies) * 1000:.0f} ms")
    if api_url:
        lines.append(f"  API: {api_url}/v1/requests  {api_url}/v1/clusters  {api_url}/metrics")
    return lines


def _why(state: State, tracker: RequestTracker, published: Published) -> str:
    """What a count of requests in a state that is not success was made to show."""
    if state is State.CANCELLED and published.cancelled:
        return (
            f"  ({published.cancelled} cancel{'s' if published.cancelled > 1 else ''} sent on"
            " purpose: one request in forty, shortly after it was published)"
        )
    purpose = {State.REJECTED: INVALID, State.FAILED: UNPLACEABLE}.get(state)
    if purpose is None:
        return ""
    meant = published.on_purpose.get(purpose, set())
    ended = {rid for rid, p in tracker.requests.items() if p.state is state}
    deliberate = len(ended & meant)
    what = {
        INVALID: "invalid samples, to show rejections naming the field",
        UNPLACEABLE: "pinned to a node whose taint they do not tolerate",
    }[purpose]
    others = len(ended) - deliberate
    rest = f"; {others} other{'s' if others > 1 else ''}" if others else ""
    return f"  ({deliberate} on purpose: {what}{rest})"


def _form(progress: Progress) -> str:
    if progress.form:
        return progress.form
    return UNREADABLE if progress.state is State.REJECTED else UNREAD


def _counted(counter: Counter[str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(counter.items()))


def next_steps(data_dir: Path, api_url: str | None, examples: Iterable[str]) -> list[str]:
    """Ready-to-paste commands for a demo kept running."""
    where = f"--data-dir {shlex.quote(str(data_dir))}"
    lines = [
        "",
        f"serving until Ctrl-C; data in {data_dir}. In another terminal:",
        f"  gsch get requests {where}",
        f"  gsch get requests --state failed {where}",
    ]
    lines += [f"  gsch explain {shlex.quote(rid)} {where}" for rid in examples]
    lines.append(f"  gsch audit {where}")
    if api_url:
        lines.append(f"  curl {api_url}/v1/clusters")
    return lines
