"""A Secret's data never reaches the log in plain text (issue 11: a Secret was put on the log in
plain text, readable by any bus subscriber and by anonymous GET /v1/requests/{id}/events)."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import msgspec
import pytest

from gsch.model.admission.rules import AdmissionRules
from gsch.model.admission.secrets import (
    SEALED_ANNOTATION,
    WITHHELD,
    SealError,
    derive_key,
    key_id,
    open_secrets,
    redacted_excerpt,
)
from gsch.model.request import Request
from tests.support.intake import RULES, decode, native, pod

PLAIN = "hunter2-very-secret"
PLAIN_B64 = base64.b64encode(PLAIN.encode()).decode()
KEY = derive_key(b"k" * 32 + b"the operator's random bytes")
OTHER_KEY = derive_key(b"another installation's key material!!")
WITH_SECRETS = dataclasses.replace(
    RULES,
    allowed_kinds=RULES.allowed_kinds | {"Secret"},
    admission=AdmissionRules(secret_key=KEY),
)


def secret(name: str = "db") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"password": PLAIN_B64}, "stringData": {"token": PLAIN}}  # fmt: skip


def body(**fields: Any) -> dict[str, Any]:
    return native(workload=[secret(), pod()], project_name="team", workspace_name="w", **fields)


def test_a_secret_is_not_an_allowed_kind_by_default() -> None:
    result = decode(body())
    assert not isinstance(result, Request)
    assert result.reason.startswith("workload[0].kind: Secret is not an allowed kind"), result


def test_an_allowed_secret_without_a_key_is_refused() -> None:
    rules = dataclasses.replace(RULES, allowed_kinds=RULES.allowed_kinds | {"Secret"})
    result = decode(body(), rules)
    assert not isinstance(result, Request)
    assert result.reason.startswith(
        'workload[0].kind: forbidden by gsch admission rule "secret" (its data would be stored'
    ), result


def test_an_accepted_secret_holds_no_plain_text() -> None:
    request = decode(body(), WITH_SECRETS)
    assert isinstance(request, Request), request
    encoded = msgspec.json.encode(request)  # what RequestAccepted carries to the log
    assert PLAIN.encode() not in encoded
    assert PLAIN_B64.encode() not in encoded
    sealed = request.workload[0]
    assert sealed["metadata"]["annotations"][SEALED_ANNOTATION] == key_id(KEY)
    assert sealed["data"]["password"].startswith(f"gsch-sealed:v1:{key_id(KEY)}:")
    # Deterministic: the same request decodes to the same bytes (redelivery, dry run).
    assert msgspec.json.encode(decode(body(), WITH_SECRETS)) == encoded


def test_the_binder_opens_what_intake_sealed() -> None:
    request = decode(body(), WITH_SECRETS)
    assert isinstance(request, Request)
    opened = open_secrets(request.workload, "team-w", KEY)
    assert opened[0]["data"] == {"password": PLAIN_B64}
    assert opened[0]["stringData"] == {"token": PLAIN}
    assert SEALED_ANNOTATION not in opened[0]["metadata"]["annotations"]
    assert opened[1] == request.workload[1]


def test_a_sealed_value_opens_only_with_its_key_and_where_it_was_sealed() -> None:
    request = decode(body(), WITH_SECRETS)
    assert isinstance(request, Request)
    with pytest.raises(SealError, match="sealed with key"):
        open_secrets(request.workload, "team-w", OTHER_KEY)
    with pytest.raises(SealError, match="altered or moved"):
        open_secrets(request.workload, "other-ns", KEY)
    with pytest.raises(SealError, match=r"needs admission\.secret_key_file"):
        open_secrets(request.workload, "team-w", None)
    with pytest.raises(SealError, match="not sealed"):
        open_secrets([secret()], "team-w", KEY)


def test_a_sealed_value_pasted_into_another_request_stays_sealed() -> None:
    stolen = decode(body(), WITH_SECRETS)
    assert isinstance(stolen, Request)
    copied = secret("mine")
    copied["data"] = dict(stolen.workload[0]["data"])
    copied.pop("stringData")
    replay = decode(native(workload=copied, project_name="evil", workspace_name="w"), WITH_SECRETS)
    assert isinstance(replay, Request)
    opened = open_secrets(replay.workload, "evil-w", KEY)
    # Sealed once more at intake, opened once at binding: the attacker gets ciphertext back.
    assert opened[0]["data"]["password"] == stolen.workload[0]["data"]["password"]


def test_rejection_excerpts_redact_secret_data() -> None:
    raw = json.dumps(native(workload=secret(), namespace="kube-system")).encode()
    excerpt = redacted_excerpt(raw, 512)
    assert PLAIN not in excerpt
    assert PLAIN_B64 not in excerpt
    assert '"data":"(redacted)"' in excerpt
    broken = raw[:-5]  # no longer JSON, still holds the value
    assert redacted_excerpt(broken, 512) == WITHHELD
    plain = json.dumps(native()).encode()
    assert redacted_excerpt(plain, 512) == plain[:512].decode()


def test_key_material_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        derive_key(b"short\n")
