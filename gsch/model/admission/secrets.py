"""A Secret's data never reaches the log, or the API, in plain text.

A `Secret` is not an allowed kind by default. An operator who allows it gives gsch a key
(`admission.secret_key_file`, at least 32 random bytes, on every worker, binder and agent;
the API needs it only to answer the dry run as a worker would). The intake then seals every
value of the Secret's `data` and `stringData` before the request's first event is written:
AES-SIV (RFC 5297) under a key derived from the file with HKDF-SHA256, each value bound to the
namespace, Secret name, field and key it belongs to. The log, the read model and every API
answer hold only `gsch-sealed:v1:<key id>:<ciphertext>`; the binder (or the agent) that
applies the Secret opens it just before sending it to the member cluster.

Why sealing at intake rather than references only: submitters keep writing ordinary Secrets,
and nothing in gsch's storage can be read without the key. AES-SIV is deterministic, so the
same request decoded twice (a redelivery, the dry run) seals to the same bytes and stays
idempotent; a value sealed for one namespace and name cannot be replayed into another (the
binding fails to open it), and a submitter who pastes a sealed value from the log into their
own Secret gets it sealed once more, never opened for them.

What this does not cover: the request body itself travels the bus and waits in the intake
work queue (deleted once a worker has taken it) as the submitter sent it — protect that with
TLS and bus permissions (only workers may consume `gsch.requests`). A rejected request keeps
an excerpt of its body for its sender; Secret data is redacted from it (`redacted_excerpt`).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
from collections.abc import Iterable
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gsch.model.admission.rules import Rule, Violation, forbidden

SEALED_PREFIX = "gsch-sealed:v1:"
SEALED_ANNOTATION = "gsch.io/sealed"  # the key id, on a sealed Secret
SECRET_FIELDS = ("data", "stringData")
MIN_KEY_MATERIAL = 32
WITHHELD = "(withheld: the request may hold a Secret and could not be read to redact it)"
REDACTED = "(redacted)"


class SealError(ValueError):
    """A sealed value cannot be opened: another key, or it was altered or moved."""


def derive_key(material: bytes) -> bytes:
    """The AES-SIV key (512 bits) from the key file's contents."""
    material = material.strip()
    if len(material) < MIN_KEY_MATERIAL:
        raise ValueError(f"a secret key needs at least {MIN_KEY_MATERIAL} bytes of random material")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=b"gsch secret sealing v1")
    return hkdf.derive(material)


def key_id(key: bytes) -> str:
    """A short public name of a key, so a binder with another key says so."""
    return hashlib.sha256(b"gsch key id\0" + key).hexdigest()[:12]


def is_secret(document: Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == "Secret"


def secret_violations(document: dict[str, Any], where: str, key: bytes | None) -> list[Violation]:
    if key is None:
        why = (
            "its data would be stored in plain text on the log; an operator who allows"
            " Secrets sets admission.secret_key_file"
        )
        return [Violation(f"{where}.kind", forbidden(Rule.SECRET, why))]
    found = []
    for field in SECRET_FIELDS:
        values = document.get(field)
        if values is None:
            continue
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            found.append(Violation(f"{where}.{field}", "must be an object of string values"))
    return found


def _context(namespace: str, document: dict[str, Any], field: str, name: str) -> list[bytes]:
    metadata = document.get("metadata")
    secret_name = metadata.get("name") if isinstance(metadata, dict) else None
    return [namespace.encode(), str(secret_name).encode(), field.encode(), name.encode()]


def _sealed_documents(
    documents: Iterable[dict[str, Any]], namespace: str, key: bytes, seal: bool
) -> tuple[dict[str, Any], ...]:
    cipher = AESSIV(key)
    mine = key_id(key)
    result = []
    for document in documents:
        if not is_secret(document):
            result.append(document)
            continue
        changed = copy.deepcopy(document)
        for field in SECRET_FIELDS:
            values = changed.get(field)
            if not isinstance(values, dict):
                continue
            for name, value in values.items():
                context = _context(namespace, document, field, name)
                if seal:
                    sealed = cipher.encrypt(str(value).encode(), context)
                    values[name] = f"{SEALED_PREFIX}{mine}:{base64.b64encode(sealed).decode()}"
                else:
                    values[name] = _open(cipher, mine, str(value), context)
        metadata = changed.setdefault("metadata", {})
        annotations = metadata.get("annotations")
        annotations = dict(annotations) if isinstance(annotations, dict) else {}
        if seal:
            annotations[SEALED_ANNOTATION] = mine
        else:
            annotations.pop(SEALED_ANNOTATION, None)
        metadata["annotations"] = annotations
        result.append(changed)
    return tuple(result)


def _open(cipher: AESSIV, mine: str, value: str, context: list[bytes]) -> str:
    if not value.startswith(SEALED_PREFIX):
        raise SealError("a Secret value is not sealed: gsch never stores one in plain text")
    kid, _, text = value[len(SEALED_PREFIX) :].partition(":")
    if kid != mine:
        raise SealError(f"a Secret value was sealed with key {kid}, this process has key {mine}")
    try:
        return cipher.decrypt(base64.b64decode(text, validate=True), context).decode()
    except (InvalidTag, binascii.Error, UnicodeDecodeError) as exc:
        raise SealError("a sealed Secret value does not open here (altered or moved)") from exc


def seal_secrets(
    documents: tuple[dict[str, Any], ...], namespace: str, key: bytes | None
) -> tuple[dict[str, Any], ...]:
    """The documents with every Secret value sealed (unchanged when there is no Secret)."""
    if key is None or not any(is_secret(d) for d in documents):
        return documents
    return _sealed_documents(documents, namespace, key, seal=True)


def open_secrets(
    documents: Iterable[dict[str, Any]], namespace: str, key: bytes | None
) -> list[dict[str, Any]]:
    """The documents as the member cluster must receive them; raises `SealError`."""
    documents = list(documents)
    if not any(is_secret(d) for d in documents):
        return documents
    if key is None:
        raise SealError("a sealed Secret needs admission.secret_key_file on this binder or agent")
    return list(_sealed_documents(documents, namespace, key, seal=False))


def _redacted(value: Any) -> Any:
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    if not isinstance(value, dict):
        return value
    secret = str(value.get("kind", "")).lower() == "secret"
    return {
        key: (REDACTED if secret and key in SECRET_FIELDS else _redacted(item))
        for key, item in value.items()
    }


def redacted_excerpt(data: bytes, limit: int) -> str:
    """The first `limit` bytes of a rejected request for its sender, with the data of any
    Secret in it replaced. A body that cannot be read and mentions a secret is withheld."""
    try:
        body = msgspec.json.decode(data)
        redacted = _redacted(body)
        text = data if redacted == body else msgspec.json.encode(redacted)
    except (msgspec.DecodeError, msgspec.EncodeError, RecursionError):
        if b"secret" in data.lower():
            return WITHHELD
        text = data
    return text[:limit].decode("utf-8", "replace")
