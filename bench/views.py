"""The benchmark's baseline: the least a terminal request can cost here — device authentication (signature check
and the nonce INSERT) plus one INSERT — and the sandbox's added latency."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
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
    """POST bench/baseline: authenticate the device (as every terminal request does), INSERT one row, answer."""

    schema = None  # not part of the terminal API's OpenAPI document

    def post(self, request):
        ensure_table()
        with connection.cursor() as cursor:
            cursor.execute(f"INSERT INTO {TABLE} (device_id) VALUES (%s)", [self.device.pk])
        return Response({"ok": True, "device_id": self.device.device_id})


class UpstreamLatencyMiddleware:
    """In the sandbox process: every WeChat / UMF call waits BENCH_SANDBOX_LATENCY_MS before being answered."""

    PREFIXES = ("/sandbox/wechatpay/", "/sandbox/wechatpay-face/", "/sandbox/umpay/")

    def __init__(self, get_response):
        self.get_response = get_response
        self.seconds = settings.BENCH_SANDBOX_LATENCY_MS / 1000

    def __call__(self, request):
        if request.path.startswith(self.PREFIXES):
            time.sleep(self.seconds)
        return self.get_response(request)
