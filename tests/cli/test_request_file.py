"""The request file of `gsch submit` and `gsch plan`: JSON or YAML, bounded in size and in
what YAML aliases may expand to, refused with a message that says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsch.cli.endpoints import CliError
from gsch.cli.request_file import MAX_FILE_BYTES, load_request_file
from tests.support.cli import CLASS_NAME, gsch

# "Billion laughs": about 400 bytes that stand for 9^9 strings, gigabytes once written as JSON.
LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + LAUGHS


def refusal(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "request.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(CliError) as refused:
        load_request_file(str(path))
    return str(refused.value)


def test_json_and_yaml_with_anchors_read_alike(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text('{"limits": {"cpu": "1"}, "copy": {"cpu": "1"}}')
    (tmp_path / "r.yaml").write_text("limits: &l {cpu: '1'}\ncopy: *l\n")
    as_json = load_request_file(str(tmp_path / "r.json"))
    assert load_request_file(str(tmp_path / "r.yaml")) == as_json


def test_an_alias_bomb_is_refused_before_it_is_built(tmp_path: Path) -> None:
    assert len(BOMB) < 600
    assert "expand to more than 100,000 values" in refusal(tmp_path, BOMB)


def test_what_cannot_be_a_request_is_refused_with_the_reason(tmp_path: Path) -> None:
    assert "refers to a node that contains it" in refusal(tmp_path, "a: &a [1, *a]\n")
    assert f"larger than {MAX_FILE_BYTES} bytes" in refusal(tmp_path, "x" * (MAX_FILE_BYTES + 1))
    assert "not UTF-8" in refusal(tmp_path, b"policy: \xff\xfe")
    assert "neither JSON nor valid YAML" in refusal(tmp_path, "policy: [unclosed\n")
    assert "nested too deeply" in refusal(tmp_path, "[" * 5000)
    assert "empty" in refusal(tmp_path, "# nothing but a comment\n")
    assert "!!python" in refusal(tmp_path, "x: !!python/object/apply:os.system ['true']\n")


async def test_submit_refuses_the_bomb_at_once_and_says_why(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    # No server anywhere: the file is refused before anything tries to connect.
    run = await gsch("submit", str(bomb), "--data-dir", str(tmp_path), timeout=30)
    assert run.code == 1
    assert run.seconds < 15
    assert f"gsch submit: {bomb}: its YAML aliases expand to more than" in run.err
    assert not CLASS_NAME.search(run.err)
