"""The benchmark's baseline: the least a terminal request can cost here — device authentication (signature check
and the nonce INSERT) plus one INSERT — and the sandbox's upstream behaviour: added latency, and calls answered
only after the caller's timeout (a degraded upstream), both switchable while the cluster runs."""

from __future__ import annotations

import random
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections
from rest_framework.response import Response

from portal.api import TerminalApiView

TABLE = "bench_baseline_row"
_table_ready = False


def ensure_table() -> None:
    global _table_ready
    if _table_ready:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} "
                "(id bigserial PRIMARY KEY, device_id bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
            )
        else:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} (id integer PRIMARY KEY AUTOINCREMENT, device_id bigint NOT NULL, "
                "created_at text NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
    _table_ready = True


class BaselineApi(TerminalApiView):
    """POST api/terminal/v1/bench/baseline (a terminal path, so it runs the terminal API's middleware chain as a payment
    does): authenticate the device (as every terminal request does), INSERT one row, answer."""

    schema = None  # not part of the terminal API's OpenAPI document

    def post(self, request):
        ensure_table()
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} (device_id) VALUES (%s)", [self.device.pk])
        return Response({"ok": True, "device_id": self.device.device_id})


# The sandbox's upstream behaviour, in the cache every process of the cluster shares (Redis): the benchmark switches
# it between scenarios without restarting the sandbox, and every sandbox worker process sees the change at once.
UPSTREAM_CONTROL_KEY = "bench:upstream"


def set_upstream(*, latency_ms: float, timeout_share: float = 0.0) -> None:
    """From now on every WeChat / UMF call waits `latency_ms` before it is served, and `timeout_share` of them are
    answered only after the caller's read timeout."""
    cache.set(UPSTREAM_CONTROL_KEY, {"latency_ms": latency_ms, "timeout_share": timeout_share}, timeout=None)


class UpstreamLatencyMiddleware:
    """In the sandbox process: every WeChat / UMF call waits the upstream latency (BENCH_SANDBOX_LATENCY_MS, or what
    `set_upstream` set) before being served; a `timeout_share` of the calls is served and then held until the
    product's read timeout has passed — an answer lost on the way back, so the product does not know the outcome
    (the charge or reverse was made) and must find it out by querying, or reverse."""

    PREFIXES = ("/sandbox/wechatpay/", "/sandbox/wechatpay-face/", "/sandbox/umpay/")

    def __init__(self, get_response):
        self.get_response = get_response
        # Longer than either timeout the product's calls use (the payment call's, and queries' / reverses').
        self.held_seconds = max(settings.UPSTREAM_READ_TIMEOUT, settings.PAYMENT_CALL_TIMEOUT) + 1

    def __call__(self, request):
        if not request.path.startswith(self.PREFIXES):
            return self.get_response(request)
        control = cache.get(UPSTREAM_CONTROL_KEY) or {
            "latency_ms": settings.BENCH_SANDBOX_LATENCY_MS,
            "timeout_share": 0.0,
        }
        if control["latency_ms"] > 0:
            time.sleep(control["latency_ms"] / 1000)
        response = self.get_response(request)
        if control["timeout_share"] and random.random() < control["timeout_share"]:
            # The request's database connection goes back to the pool for the wait: held, a few of these calls would
            # starve the sandbox's other requests of connections — a stand-in artefact, not the upstream's.
            connections.close_all()
            time.sleep(self.held_seconds)
        return response
