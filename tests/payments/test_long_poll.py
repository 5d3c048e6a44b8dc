"""A terminal waiting for its payment is answered when the outcome commits, through the ASGI application the web
tier serves: woken by the commit (PostgreSQL NOTIFY, or in-process on SQLite), not by polling.

The request is served in a thread of its own with its own event loop, as a uvicorn worker would serve it, while the
test plays the worker on the main thread."""

import asyncio
import json
import threading
import time

import httpx
import pytest

from payments import channels
from payments.models import Payment, PaymentStatus
from payments.terminal_client import authorization_header
from portal import wakeup
from portal.handlers import application as asgi_application

pytestmark = pytest.mark.django_db(transaction=True)


class Served:
    """One signed request sent to the ASGI application in the background."""

    def __init__(self, shop, method: str, path: str, body: bytes = b""):
        self.response: httpx.Response | None = None
        self.answered_at = 0.0
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=asyncio.run, args=(self._send(shop, method, path, body),))
        self._thread.start()

    async def _send(self, shop, method: str, path: str, body: bytes) -> None:
        transport = httpx.ASGITransport(app=asgi_application())
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=60) as client:
            request = client.build_request(
                method, path, content=body or None, headers={"Content-Type": "application/json"}
            )
            request.headers["Authorization"] = authorization_header(
                device_id=shop.device.device_id,
                secret=shop.secret,
                method=method,
                path_with_query=request.url.raw_path.decode("ascii"),
                body=body,
                timestamp=int(time.time()),
            )
            self.response = await client.send(request)
            self.answered_at = time.monotonic()

    @property
    def answered(self) -> bool:
        return not self._thread.is_alive()

    def result(self) -> httpx.Response:
        self._thread.join(30)
        assert self.response is not None, "no answer"
        return self.response


def _settle_by_worker(shop, out_trade_no: str) -> float:
    """Play the worker until the payment's outcome is committed; the moment right after that commit."""
    for _ in range(30):
        shop.clock.advance(1)
        shop.drain()
        if shop.payment(out_trade_no).status != PaymentStatus.PAYING:
            return time.monotonic()
    raise AssertionError("the payment never settled")


def test_a_long_poll_answers_within_100_ms_of_the_commit(make_shop, settings):
    settings.WAKEUP_LOCAL_RECHECK_SECONDS = 5.0  # a re-check could not answer in time: only the wake-up can
    shop = make_shop()
    order = shop.pay(1101)  # USERPAYING; the user pays ~10 s later
    assert order["status"] == "PAYING"

    served = Served(shop, "GET", f"/api/terminal/v1/payments/{order['out_trade_no']}?wait=15")
    time.sleep(0.5)
    assert not served.answered  # it is waiting, not answering at once
    committed_at = _settle_by_worker(shop, order["out_trade_no"])
    response = served.result()

    assert response.status_code == 200
    assert response.json()["status"] == "SUCCESS" and response.json()["is_final"] is True
    delay = served.answered_at - committed_at
    assert delay < 0.1, f"answered {delay * 1000:.0f} ms after the commit"


def test_a_long_poll_without_a_change_answers_at_its_deadline_with_the_current_state(make_shop):
    shop = make_shop()
    order = shop.pay(1101)

    served = Served(shop, "GET", f"/api/terminal/v1/payments/{order['out_trade_no']}?wait=1")
    response = served.result()

    assert response.json()["status"] == "PAYING"
    assert 1.0 <= served.answered_at - served.started_at < 2.5
    assert wakeup.hub.waiting() == 0


def test_a_settled_payment_is_answered_at_once(make_shop):
    shop = make_shop()
    order = shop.pay(1000)
    assert order["status"] == "SUCCESS"

    served = Served(shop, "GET", f"/api/terminal/v1/payments/{order['out_trade_no']}?wait=10")
    response = served.result()

    assert response.json()["status"] == "SUCCESS"
    assert served.answered_at - served.started_at < 1


def test_post_payments_waits_for_the_outcome_and_returns_it(make_shop, settings):
    """POST payments keeps the answer open up to PAYMENT_WAIT_SECONDS: a USERPAYING payment settled meanwhile by
    the worker is answered SUCCESS by the same POST, right after the commit."""
    settings.PAYMENT_WAIT_SECONDS = 10
    settings.WAKEUP_LOCAL_RECHECK_SECONDS = 5.0
    shop = make_shop()
    body = {
        "total_fee": 1101,
        "body": "午餐",
        "method": "CODE",
        "auth_code": "134567890123456789",
        "out_trade_no": "LP1",
    }

    served = Served(shop, "POST", "/api/terminal/v1/payments", json.dumps(body).encode())
    for _ in range(100):  # until its payment call was answered (USERPAYING)
        time.sleep(0.05)
        if Payment.objects.filter(out_trade_no="LP1", events__action="micropay").exists():
            break
    assert not served.answered
    committed_at = _settle_by_worker(shop, "LP1")
    response = served.result()

    assert response.status_code == 201
    assert response.json()["status"] == "SUCCESS"
    delay = served.answered_at - committed_at
    assert delay < 0.1, f"answered {delay * 1000:.0f} ms after the commit"


def test_a_busy_channel_is_refused_with_503_before_anything_is_created_or_sent(make_shop, settings):
    settings.UPSTREAM_REQUEST_CONCURRENCY = 1
    shop = make_shop()
    calls_before = len(shop.upstream_calls())
    held, release = threading.Event(), threading.Event()

    def slow_call_in_flight():  # another terminal's payment call that has not been answered yet
        with channels.request_slot(shop.merchant):
            held.set()
            release.wait(10)

    other = threading.Thread(target=slow_call_in_flight)
    other.start()
    held.wait(5)
    try:
        response = shop.terminal.post(
            "payments", {"total_fee": 1000, "body": "午餐", "method": "CODE", "auth_code": "134567890123456789"}
        )
    finally:
        release.set()
        other.join()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["code"] == "CHANNEL_BUSY"
    assert Payment.objects.count() == 0
    assert len(shop.upstream_calls()) == calls_before

    # Once the place is free again, the same terminal pays.
    assert shop.pay(1000)["status"] == "SUCCESS"


def test_no_database_connection_is_held_while_an_upstream_answers(make_shop, requires_postgres, monkeypatch):
    """Payment call (terminal request) and query (worker): by the time a request leaves for the channel, the calling
    thread has handed its connection back to the pool (a 10 s read timeout must not pin a pooled connection)."""
    from django.db import connection

    shop = make_shop()
    held: list[tuple[str, bool]] = []
    send = shop.transport.handle_request

    def spy(request):
        held.append((request.url.path.rsplit("/", 1)[-1], connection.connection is not None))
        return send(request)

    monkeypatch.setattr(shop.transport, "handle_request", spy)
    order = shop.pay(1101)  # USERPAYING: the worker queries
    _settle_by_worker(shop, order["out_trade_no"])

    assert {name for name, _ in held} >= {"micropay", "orderquery"}
    assert [name for name, connected in held if connected] == []
