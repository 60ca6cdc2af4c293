"""Stream and consumer declarations are applied idempotently and differences are reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nats.aio.client import Client

from gsch.eventstore.streams import apply_declarations, load_declarations
from gsch.paths import shipped


async def test_apply_creates_then_reports_unchanged(nc: Client) -> None:
    first = await apply_declarations(nc, load_declarations())
    assert "stream GSCH_EVENTS: created" in first.lines
    assert "stream GSCH_INTAKE: created" in first.lines
    assert "consumer GSCH_INTAKE/gsch-intake: created" in first.lines
    second = await apply_declarations(nc, load_declarations())
    assert all(line.endswith("unchanged") for line in second.lines), second.lines
    info = await nc.jetstream().stream_info("GSCH_EVENTS")
    assert info.config.deny_delete
    # Compaction and retention purge behind snapshots. No roll-ups: a roll-up header on a
    # subject a role may write could replace the whole log (telemetry has its own stream).
    assert not info.config.deny_purge
    assert not info.config.allow_rollup_hdrs
    assert info.config.allow_direct
    assert info.config.allow_atomic


async def test_a_changed_declaration_is_updated_and_the_difference_named(
    nc: Client, tmp_path: Path
) -> None:
    await apply_declarations(nc, load_declarations())
    folder = tmp_path / "streams"
    shutil.copytree(shipped("streams"), folder)
    path = folder / "GSCH_INTAKE.json"
    declaration = json.loads(path.read_text())
    declaration["max_msg_size"] = 2 * 1048576
    path.write_text(json.dumps(declaration))
    report = await apply_declarations(nc, load_declarations(folder))
    assert "stream GSCH_INTAKE: updated (max_msg_size: 4194304 -> 2097152)" in report.lines
    info = await nc.jetstream().stream_info("GSCH_INTAKE")
    assert info.config.max_msg_size == 2 * 1048576


async def test_lease_from_config_becomes_the_consumers_ack_wait(nc: Client) -> None:
    await apply_declarations(nc, load_declarations(lease_seconds=7))
    info = await nc.jetstream().consumer_info("GSCH_INTAKE", "gsch-intake")
    assert info.config.ack_wait == 7
    report = await apply_declarations(nc, load_declarations(lease_seconds=9))
    assert any("gsch-intake: updated (ack_wait" in line for line in report.lines)
