"""The sandbox's sense of time, in one place so tests can replace it.

Everything time-dependent in the sandbox (USERPAYING that settles after N seconds, refunds that finish later,
notification retry schedules, the "answer after the client gave up" scenarios, v3 timestamp checks) goes through
`now()` and `sleep()`. Tests monkeypatch both (see tests/sandbox/conftest.py `sandbox_clock`) so those
scenarios run instantly and deterministically; production-like runs use the real clock.
"""

from __future__ import annotations

import time
from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()


def timestamp() -> float:
    """Unix time according to `now()` (v3 Authorization/notification timestamps)."""
    return now().timestamp()


def sleep(seconds: float) -> None:
    """The stand-in's own waits (an answer held past the caller's timeout, chaos delays) hold no pooled database
    connection: under ASGI many such requests wait at once, and the process's pool is small."""
    from portal.db import release_connections

    release_connections()
    time.sleep(seconds)
