"""The webhook signature: what a merchant's receiver checks (docs/webhooks.md, "Verifying a delivery").

    Facepay-Event-Id:   evt_…            the event's id: the same on every retry, the receiver's dedupe key
    Facepay-Timestamp:  1733560000       unix seconds when this attempt was signed
    Facepay-Signature:  v1=<hex>[, v1=<hex>]
    v1 = hex(HMAC-SHA256(endpoint secret, timestamp + "." + raw body))

While a rotated secret is still in its overlap period the header carries one `v1=` per valid secret (new first), so
a receiver holding either verifies. Plain Python: the reference receiver and the tests use it without Django.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

EVENT_ID_HEADER = "Facepay-Event-Id"
EVENT_TYPE_HEADER = "Facepay-Event-Type"
TIMESTAMP_HEADER = "Facepay-Timestamp"
SIGNATURE_HEADER = "Facepay-Signature"
ATTEMPT_HEADER = "Facepay-Attempt"
SCHEME = "v1"
# How far a receiver should accept a timestamp from its own clock (replays older than this are refused).
DEFAULT_TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secrets: Iterable[str], timestamp: int | str, body: bytes) -> str:
    return ", ".join(f"{SCHEME}={signature(secret, timestamp, body)}" for secret in secrets)


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether `body` with these headers was signed with `secret` within `tolerance` seconds of `now`. Header names
    are matched without regard to case."""
    lowered = {name.lower(): value for name, value in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    if not timestamp.isdigit() or abs((now if now is not None else time.time()) - int(timestamp)) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    offered = [part.strip() for part in lowered.get(SIGNATURE_HEADER.lower(), "").split(",")]
    return any(
        hmac.compare_digest(value, expected)
        for scheme, _, value in (part.partition("=") for part in offered)
        if scheme == SCHEME
    )
