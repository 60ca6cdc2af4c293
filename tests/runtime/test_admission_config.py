"""`[admission]` and the admission keys of `[projects.<name>]`: read into the rules every
process uses, and a mistake stops the process with the option named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gsch.model.admission.rules import PodSecurityLevel, Rule
from gsch.model.admission.secrets import derive_key
from gsch.runtime.admission import admission_rules
from gsch.runtime.config import ConfigError, load_config


def rules_of(overrides: dict[str, Any]) -> Any:
    return admission_rules(load_config(None, overrides, environ={}))


def test_defaults_are_baseline_default_namespace_and_no_secrets() -> None:
    rules = rules_of({})
    assert rules.default.pod_security is PodSecurityLevel.BASELINE
    assert rules.shared_namespaces == {"default"}
    assert rules.secret_key is None


def test_projects_get_their_level_namespaces_and_exemptions(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_bytes(b"x" * 40)
    rules = rules_of({
        "admission": {"pod_security": "restricted", "secret_key_file": str(key)},
        "projects": {
            "p1": {"pod_security": "privileged", "namespaces": ["p1-shared"],
                   "allow": ["node-name"], "service_accounts": ["builder"]},
            "p2": {"clusters": ["c1"]},
        },
    })  # fmt: skip
    assert rules.project("p1").pod_security is PodSecurityLevel.PRIVILEGED
    assert rules.project("p1").allow == {Rule.NODE_NAME}
    assert rules.project("p1").namespaces == {"p1-shared"}
    assert rules.project("p1").service_accounts == {"builder"}
    assert rules.project("p2").pod_security is PodSecurityLevel.RESTRICTED  # the default
    assert rules.project("p2").service_accounts is None
    assert rules.secret_key == derive_key(b"x" * 40)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"projects": {"p": {"allow": ["namespace"]}}},
         "projects.p.allow: 'namespace' is not a rule a project may skip"),
        ({"projects": {"p": {"namespaces": ["kube-public"]}}},
         "projects.p.namespaces: 'kube-public' is forbidden"),
        ({"projects": {"a": {"namespaces": ["x"]}, "b": {"namespaces": ["x"]}}},
         "projects.b.namespaces: 'x' is forbidden by gsch admission rule \"namespace\" "
         "(it belongs to project 'a')"),
        ({"admission": {"shared_namespaces": ["gsch-system"]}},
         "admission.shared_namespaces: 'gsch-system' is forbidden"),
        ({"admission": {"pod_security": "lenient"}}, "invalid configuration"),
    ],
)  # fmt: skip
def test_mistakes_name_the_option(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        rules_of(overrides)


def test_a_short_or_missing_key_file_is_a_config_error(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("tiny")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        rules_of({"admission": {"secret_key_file": str(short)}})
    with pytest.raises(ConfigError, match=r"admission\.secret_key_file"):
        rules_of({"admission": {"secret_key_file": str(tmp_path / "absent")}})
