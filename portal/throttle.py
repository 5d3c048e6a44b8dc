"""A budget of failed unauthenticated requests per client address, counted in the shared cache (Redis in
production), like the sign-in lockout (`portal/forms.py`).

Used by the channels' notification endpoints, which must accept POSTs from anyone and store each one before it is
verified: every POST that does not verify spends one unit of its address's budget for the current window; once the
budget is spent, that address is answered 429 without anything being stored or verified until the window ends. A
channel's genuine notifications verify and never spend it, and the channels retry a refused notification (the
scheduled queries settle every order anyway, so a delayed notification loses nothing)."""

from __future__ import annotations

import time

from django.core.cache import cache

UNVERIFIED_BUDGET = 60  # failed requests per address and window
WINDOW_SECONDS = 60


def _key(scope: str, address: str) -> str:
    return f"unverified:{scope}:{address}:{int(time.time() // WINDOW_SECONDS)}"


def exhausted(scope: str, address: str) -> bool:
    """Whether `address` has spent its budget for `scope` in this window."""
    return (cache.get(_key(scope, address)) or 0) >= UNVERIFIED_BUDGET


def spend(scope: str, address: str) -> None:
    """Count one failed request from `address`."""
    key = _key(scope, address)
    if cache.add(key, 1, timeout=WINDOW_SECONDS * 2):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=WINDOW_SECONDS * 2)
