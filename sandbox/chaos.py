"""Chaos mode: for a configurable fraction of money calls the sandbox misbehaves the ways real upstreams do.

Off by default. `SANDBOX_CHAOS` is `<fraction>[:<kind>,<kind>…]`, e.g. `0.2` (all kinds) or `0.1:timeout,5xx`.
Kinds (each chosen with equal chance when a call is picked):

- `timeout`        process the call (the charge / reverse / refund is committed), then hold the answer past the
                   client's read timeout (`SANDBOX_TIMEOUT_SLEEP_SECONDS`): the outcome is unknown to the caller.
- `5xx`            answer HTTP 500 — half the time before processing (nothing happened), half after (it did).
- `reset`          process the call, then drop the connection without an answer (under gunicorn the socket is shut
                   down; elsewhere the body is cut off mid-stream).
- `bad_signature`  process the call, then answer with a signature that does not verify (v2 `sign`, UMF `signature`,
                   v3 `Wechatpay-Signature`).
- `delay`          wait up to `SANDBOX_CHAOS_DELAY_SECONDS` before processing, then answer normally.

Applied by the v2 (micropay, orderquery, reverse, refund, refundquery), v3 (codepay, query by out_trade_no, reverse,
refunds and refund query, direct and partner) and UMF (micropay, queryOrder, cancelOrder, refund, refundQuery)
endpoints after the request is authenticated, so a refused request is still refused. The
sandbox's own order book stays the truth: `sandbox_ledger()` shows what really happened whatever the caller saw.
"""

from __future__ import annotations

import json
import random
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from payments.gateways import wechatpay_v2 as v2

from . import clock, scenarios

KINDS = ("timeout", "5xx", "reset", "bad_signature", "delay")

# Chance source; tests replace it with a seeded random.Random for deterministic picks.
rng: random.Random = random.SystemRandom()


@dataclass(frozen=True)
class ChaosConfig:
    fraction: float = 0.0
    kinds: tuple[str, ...] = KINDS

    @property
    def is_on(self) -> bool:
        return self.fraction > 0 and bool(self.kinds)


def parse(value: str) -> ChaosConfig:
    """`""` → off; `"0.2"` → 20 % of calls, every kind; `"0.2:timeout,5xx"` → those kinds only."""
    value = (value or "").strip()
    if not value:
        return ChaosConfig()
    fraction_text, _, kinds_text = value.partition(":")
    try:
        fraction = float(fraction_text)
    except ValueError:
        raise ValueError(f"SANDBOX_CHAOS: {fraction_text!r} is not a fraction") from None
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("SANDBOX_CHAOS: the fraction must be between 0 and 1")
    kinds = tuple(k.strip().lower() for k in kinds_text.split(",") if k.strip()) if kinds_text else KINDS
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"SANDBOX_CHAOS: unknown kinds {unknown}; known: {', '.join(KINDS)}")
    return ChaosConfig(fraction, kinds)


def config() -> ChaosConfig:
    return parse(getattr(settings, "SANDBOX_CHAOS", ""))


def pick() -> str | None:
    """The misbehaviour for this call, or None to behave."""
    current = config()
    if not current.is_on or rng.random() >= current.fraction:
        return None
    return rng.choice(current.kinds)


def _delay_seconds() -> float:
    return float(getattr(settings, "SANDBOX_CHAOS_DELAY_SECONDS", 2.0))


def _server_error() -> HttpResponse:
    return HttpResponse("chaos: internal error", status=500, content_type="text/plain; charset=utf-8")


def _drop_connection(request: HttpRequest, partial: bytes = b"<xml><return_code>") -> HttpResponse:
    sock = request.META.get("gunicorn.socket")
    if isinstance(sock, socket.socket):
        try:
            # Linger 0 + shutdown: the client sees the connection end with no answer; gunicorn's later write fails
            # with EPIPE, which it treats as the client having gone away.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return HttpResponse(b"", status=200)

    def truncated() -> Iterator[bytes]:
        yield partial
        raise ConnectionResetError("chaos: connection reset")

    # The server (uvicorn, ASGI) aborts a response whose body raises without finishing the request, so Django would
    # never hand this request's database connection back to the pool: hand it back now, the work is done.
    from portal.db import release_connections

    release_connections()
    content_type = "text/xml; charset=utf-8" if partial.startswith(b"<") else "application/json"
    return StreamingHttpResponse(truncated(), content_type=content_type)


def _flip(text: str) -> str:
    if not text:
        return "0"
    last = text[-1]
    return text[:-1] + ("A" if last != "A" else "B")


def spoil_v2_signature(response: HttpResponse) -> HttpResponse:
    """Same answer, `sign` altered. Unsigned answers (return_code FAIL) get a sign that cannot verify."""
    try:
        fields = v2.from_xml(response.content)
    except v2.XmlError:
        return response
    fields["sign"] = _flip(fields.get("sign", ""))
    return HttpResponse(v2.to_xml(fields), status=response.status_code, content_type=response["Content-Type"])


def spoil_umpay_signature(response: HttpResponse) -> HttpResponse:
    try:
        fields = json.loads(response.content)
    except ValueError:
        return response
    if not isinstance(fields, dict):
        return response
    fields["signature"] = _flip(str(fields.get("signature", "")))
    return HttpResponse(
        json.dumps(fields, ensure_ascii=False), status=response.status_code, content_type=response["Content-Type"]
    )


def spoil_v3_signature(response: HttpResponse) -> HttpResponse:
    """Same answer, Wechatpay-Signature altered (a v3 answer carries its signature in the headers). An unsigned answer
    (a 401) stays as it is."""
    signature = response.get("Wechatpay-Signature")
    if signature:
        response["Wechatpay-Signature"] = _flip(signature)
    return response


def apply(
    request: HttpRequest,
    process: Callable[[], HttpResponse],
    *,
    spoil: Callable[[HttpResponse], HttpResponse],
    partial: bytes = b"<xml><return_code>",
) -> HttpResponse:
    """Run `process` (the endpoint's real work) with this call's misbehaviour, if any. `partial`: the start of a
    body a dropped connection sends before it is cut off, in the endpoint's format."""
    kind = pick()
    if kind is None:
        return process()
    if kind == "delay":
        clock.sleep(rng.uniform(0.0, _delay_seconds()))
        return process()
    if kind == "5xx" and rng.random() < 0.5:
        return _server_error()  # before processing: nothing happened
    response = process()
    if kind == "5xx":
        return _server_error()
    if kind == "timeout":
        clock.sleep(scenarios.timeout_sleep_seconds())
        return response
    if kind == "reset":
        return _drop_connection(request, partial)
    return spoil(response)
