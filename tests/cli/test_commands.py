"""The request commands as a user runs them (child processes) against a gsch served in the
test's process, found through its data directory: JSON output that parses, a cancel of an
id nobody submitted, pages of requests with their reasons, explanations of rejections, and
text that cannot drive the terminal however odd the strings users put in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gsch.clusters.topology import load_topology
from gsch.runtime.service import default_topology_path
from tests.support.cli import gsch
from tests.support.pipeline import make_config, running, wait_inventory

REQUEST = """\
# A request as people write them: YAML, with an anchor for the resources.
policy: GMostRequestedPriority
select_clusters: [[edge-daejeon, edge-seoul], cloud-kr]
workload:
  apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web}
  spec:
    replicas: 2
    template:
      spec:
        containers:
        - {name: web, image: nginx, resources: {requests: &small {cpu: 100m, memory: 64Mi}}}
        - {name: sidecar, image: envoy, resources: {requests: *small}}
"""
INVALID = '{"policy": "GFastestPriority", "select_clusters": ["x"], "workload": {}}'


@pytest.fixture
async def data(tmp_path: Path) -> AsyncIterator[str]:
    """A whole gsch on the embedded server in its data dir, as `gsch serve` runs it; yields
    that `--data-dir`, all the commands are told."""
    config = make_config(tmp_path, None)
    async with running(config, {"worker", "binder", "api"}) as service:
        topology = load_topology(default_topology_path())
        await wait_inventory(service.store, sum(len(c.nodes) for c in topology.clusters))
        yield config.data_dir


async def test_submit_prints_one_json_document_with_o_json(data: str, tmp_path: Path) -> None:
    request = tmp_path / "web.yaml"
    request.write_text(REQUEST)
    sent = await gsch("submit", str(request), "-o", "json", "--data-dir", data)
    assert sent.code == 0, sent.err
    answer = json.loads(sent.out)  # the whole of stdout, as `| jq` reads it
    assert set(answer) == {"request_id", "intake_sequence", "duplicate"}
    assert answer["request_id"].startswith("cli-")
    assert answer["duplicate"] is False
    waited = await gsch("submit", str(request), "--wait", "-o", "json", "--data-dir", data)
    assert waited.code == 0, waited.err
    settled = json.loads(waited.out)
    assert settled["request"]["id"] == settled["request_id"]
    assert settled["request"]["state"] == "bound"
    assert settled["request"]["final"] is False  # bound: it can still be cancelled
    text = await gsch("submit", str(request), "--wait", "--data-dir", data)
    assert text.code == 0, text.err
    assert text.out.startswith("submitted cli-")
    assert ": bound on edge-" in text.out


async def test_cancelling_an_id_nobody_submitted_changes_nothing_unless_asked(
    data: str,
) -> None:
    typo = await gsch("cancel", "req-typo", "--data-dir", data)
    assert typo.code == 1
    assert typo.out == ""
    assert "req-typo: no such request: nothing was cancelled" in typo.err
    assert "--before-arrival" in typo.err
    looked_up = await gsch("get", "request", "req-typo", "--data-dir", data)
    assert looked_up.code == 1
    assert "404: no request 'req-typo'" in looked_up.err
    ahead = await gsch("cancel", "req-later", "--before-arrival", "--data-dir", data)
    assert ahead.code == 0, ahead.err
    assert "cancelled in advance" in ahead.out
    # Recorded for when it arrives, but never listed as a request while it has not.
    found = await gsch("get", "request", "req-later", "-o", "json", "--data-dir", data)
    assert found.code == 1
    assert "404: no request 'req-later'" in found.err


async def test_requests_come_in_pages_with_their_reasons(data: str, tmp_path: Path) -> None:
    invalid = tmp_path / "invalid.json"
    invalid.write_text(INVALID)
    for _ in range(3):
        rejected = await gsch("submit", str(invalid), "--wait", "--data-dir", data)
        assert rejected.code == 1  # settled, but not bound
        assert "rejected (policy: unknown policy 'GFastestPriority'" in rejected.out
    first = await gsch("get", "requests", "--limit", "2", "--data-dir", data)
    assert first.code == 0, first.err
    header, *rows, more = first.out.splitlines()
    assert header.split()[-1] == "REASON"
    assert len(rows) == 2
    assert all("policy: unknown policy 'GFastestPriority'" in row for row in rows)
    assert more.startswith("more: the same command with --continue ")
    token = more.rsplit(" ", 1)[1]
    rest = await gsch("get", "requests", "--limit", "2", "--continue", token, "--data-dir", data)
    assert rest.code == 0, rest.err
    _, last = rest.out.splitlines()  # the third and last: no "more"
    assert last.split()[0] not in first.out
    explained = await gsch("explain", last.split()[0], "--data-dir", data)
    assert explained.out.splitlines()[1] == (
        "no plan was made: the request was rejected when it arrived (reason above)"
    )


async def test_printed_text_never_carries_control_characters(data: str, tmp_path: Path) -> None:
    request = tmp_path / "request.yaml"
    request.write_text("request_id: req-odd\n" + REQUEST)
    placed = await gsch("submit", str(request), "--wait", "--data-dir", data)
    assert placed.code == 0, placed.err
    # A cancel reason is free text, recorded as given: here, one that would clear the
    # screen and write in red if a terminal received it raw.
    hostile = "\x1b[2J\x1b[31mall your clusters are gone\x1b]0;pwned\x07\u202e"
    sent = await gsch("cancel", "req-odd", "--reason", hostile, "--data-dir", data)
    assert sent.code == 0, sent.err
    for args in (("get", "request", "req-odd"), ("get", "requests"), ("explain", "req-odd"),
                 ("get", "requests", "-o", "json")):  # fmt: skip
        shown = await gsch(*args, "--data-dir", data)
        assert shown.code == 0, shown.err
        assert not any(c in shown.out for c in "\x1b\x07\u202e"), (args, shown.out)
        assert "all your clusters are gone" in shown.out
    escaped = await gsch("get", "request", "req-odd", "--data-dir", data)
    assert "\\x1b[2J\\x1b[31mall your clusters are gone\\x1b]0;pwned\\x07\\u202e" in escaped.out
    as_json = await gsch("get", "request", "req-odd", "-o", "json", "--data-dir", data)
    assert json.loads(as_json.out)["reason"] == hostile  # JSON escapes it, and loses nothing
