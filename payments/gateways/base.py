"""What every upstream call returns, whatever the protocol.

Gateways never raise for upstream or network trouble: they classify it (a lost answer to a call that moves money is
UNKNOWN, never a failure) so a service can decide between "done", "failed", "try again" and "find out what
happened" without knowing the wire format.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Outcome(enum.StrEnum):
    # The call did what was asked (payment taken, reversal done, order created, query answered definitively).
    SUCCESS = "SUCCESS"
    # Upstream gave a definite "no": nothing happened and repeating the same request will not change that.
    REJECTED = "REJECTED"
    # Nothing happened (or the call is safe to repeat as is): try again later.
    TRANSIENT = "TRANSIENT"
    # We cannot tell whether the call took effect: the user may have been charged. Query, never assume failure.
    UNKNOWN = "UNKNOWN"


class VerificationError(Exception):
    """A signature, timestamp or ciphertext did not check out. Messages never contain key material."""


@dataclass(frozen=True, kw_only=True)
class GatewayResult:
    """Common part of every call's result; each call subclasses it with its parsed fields."""

    outcome: Outcome
    # Upstream error code (err_code, respCode, v3 `code`) or one of ours for local trouble: TIMEOUT,
    # CONNECT_ERROR, NETWORK_ERROR, HTTP_<status>, UNPARSEABLE, BAD_SIGNATURE.
    code: str = ""
    message: str = ""
    # Both dicts are already redacted: safe to store in event rows and logs as they are.
    request_fields: dict[str, Any] = field(default_factory=dict)
    response_fields: dict[str, Any] = field(default_factory=dict)
    http_status: int | None = None
    latency_ms: int = 0

    @property
    def is_success(self) -> bool:
        return self.outcome is Outcome.SUCCESS


# Field names (compared case-insensitively, without "_" and "-") whose values must never be stored in full:
# credentials, signatures and the user's one-time payment credentials (auth_code / face_code).
_SENSITIVE_NAMES = frozenset(
    name.replace("_", "").lower()
    for name in (
        "sign",
        "signature",
        "paysign",
        "auth_code",
        "authCode",
        "face_code",
        "authinfo",
        "key",
        "api_key",
        "api_v3_key",
        "private_key",
        "secret",
        "password",
        "authorization",
        "wechatpay_signature",
        "ciphertext",
        "rawdata",
        "rawDate",
        "token",
    )
)
_KEEP_CHARS = 4


def _is_sensitive(name: str) -> bool:
    return name.replace("_", "").replace("-", "").lower() in _SENSITIVE_NAMES


def mask(value: Any) -> str:
    """Keep a short prefix so support staff can match a value against upstream records, hide the rest."""
    text = "" if value is None else str(value)
    if not text:
        return ""
    return text[:_KEEP_CHARS] + "***"


def redact(fields: Mapping[str, Any] | None) -> dict[str, Any]:
    """Copy of `fields` safe for logs and event rows (nested dicts and lists are redacted too)."""
    if not fields:
        return {}
    return {
        str(name): (mask(value) if _is_sensitive(str(name)) else _redact_value(value)) for name, value in fields.items()
    }


def _redact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value
