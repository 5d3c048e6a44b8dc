"""WeChat notification retries, the Celery task, and the terminal helpers that play the face SDK."""

from __future__ import annotations

import httpx
import pytest

from payments.gateways import wechatpay_v2 as v2
from payments.gateways import wechatpay_v3 as v3
from payments.gateways.base import Outcome
from sandbox import outbox, services, tasks
from sandbox.models import SandboxNotification

from .conftest import API_V3_KEY, v2_config, v3_config
from .test_wechat_v3 import SERVICE_ID, create_request

pytestmark = pytest.mark.django_db
TERMINAL = "http://testserver/sandbox/terminal"


@pytest.fixture
def confirmed(wechat_merchant, merchant_keys, http_client, sandbox_clock):
    config = v3_config(wechat_merchant, merchant_keys)
    v3.payscore_create(config, create_request(), client=http_client, clock=sandbox_clock.timestamp)
    services.sandbox_payscore_user_confirm("PS1")
    return SandboxNotification.objects.get()


def test_wechat_retry_schedule_on_500(confirmed, wechat_merchant, sandbox_clock):
    received: list[httpx.Request] = []
    statuses = [500, 500, 503, 200]

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(statuses.pop(0))

    receiving = httpx.Client(transport=httpx.MockTransport(receiver))
    for wait in (0, 15, 15, 30):
        sandbox_clock.advance(wait)
        assert services.sandbox_deliver_due_notifications(client=receiving) == (1 if wait == 30 else 0)
        # Nothing is sent before the next retry is due.
        assert services.sandbox_deliver_due_notifications(client=receiving) == 0

    assert len(received) == 4
    confirmed.refresh_from_db()
    assert (confirmed.attempts, confirmed.last_status, confirmed.delivered_at) == (4, 200, sandbox_clock.now())
    # The same notification each time (same id and ciphertext), signed afresh with the current timestamp.
    assert len({r.content for r in received}) == 1
    assert [r.headers["Wechatpay-Timestamp"] for r in received] == sorted(
        {r.headers["Wechatpay-Timestamp"] for r in received}
    )
    platform = {wechat_merchant.platform_certificate_serial: wechat_merchant.platform_certificate_pem}
    last = received[-1]
    note = v3.parse_notification(
        last.headers, last.content, platform_keys=platform, api_v3_key=API_V3_KEY, clock=sandbox_clock.timestamp
    )
    assert note.event_type == "PAYSCORE.USER_CONFIRM" and note.resource["service_id"] == SERVICE_ID


def test_wechat_retries_are_bounded(confirmed, sandbox_clock):
    failing = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(500)))
    for _ in range(30):
        services.sandbox_deliver_due_notifications(client=failing)
        sandbox_clock.advance(6 * 3600)
    confirmed.refresh_from_db()
    assert confirmed.attempts == len(outbox.WECHAT_RETRY_DELAYS) + 1 == 16
    assert confirmed.next_attempt_at is None and confirmed.delivered_at is None


def test_connection_error_counts_as_failed_attempt(confirmed):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    services.sandbox_deliver_due_notifications(client=httpx.Client(transport=httpx.MockTransport(refuse)))
    confirmed.refresh_from_db()
    assert (confirmed.attempts, confirmed.last_status, confirmed.last_error) == (1, None, "ConnectError")


def test_celery_task_delivers(confirmed, monkeypatch):
    sent: list[dict] = []
    monkeypatch.setattr("sandbox.tasks.sandbox_deliver_due_notifications", lambda: sent.append({}) or 1)
    assert tasks.deliver_notifications.apply().get() == 1 and sent == [{}]


def test_terminal_face_code_flow(wechat_merchant, merchant_keys, http_client, sandbox_clock):
    rawdata = http_client.post(TERMINAL + "/rawdata").json()["rawdata"]
    config = v2_config()
    authinfo = v2.get_wxpayface_authinfo(
        config,
        v2.FaceAuthinfoRequest(store_id="S1", store_name="Store", device_id="D1", rawdata=rawdata),
        client=http_client,
    ).authinfo

    face = http_client.post(TERMINAL + "/face_code", json={"authinfo": authinfo}).json()
    paid = v2.micropay(
        config,
        v2.MicropayRequest(
            out_trade_no="F1", total_fee=100, body="b", auth_code=face["face_code"], spbill_create_ip="1.2.3.4"
        ),
        client=http_client,
    )
    user = v3.facemch_user(
        v3_config(wechat_merchant, merchant_keys), face["face_sid"], client=http_client, clock=sandbox_clock.timestamp
    )

    assert len(face["face_code"]) == 18 and face["face_code"].startswith("13")
    assert paid.outcome is Outcome.SUCCESS and paid.openid == face["openid"] == user.openid
    again = http_client.post(TERMINAL + "/face_code", json={"authinfo": authinfo, "user": face["user"]}).json()
    assert again["openid"] == face["openid"] and again["face_code"] != face["face_code"]

    sandbox_clock.advance(3600)
    expired = http_client.post(TERMINAL + "/face_code", json={"authinfo": authinfo})
    assert expired.status_code == 400 and expired.json()["code"] == "AUTHINFO_INVALID"


def test_payment_code_helper(http_client):
    code = http_client.post(TERMINAL + "/payment_code", json={"user": "12345678"}).json()
    assert code["auth_code"].startswith("1312345678") and len(code["auth_code"]) == 18
    assert http_client.post(TERMINAL + "/payment_code", json={"user": "x"}).status_code == 400


def test_nothing_due_builds_no_client(monkeypatch):
    """The beat task runs every few seconds; with nothing to send it must not build an HTTP client (a new one loads
    the CA bundle, tens of milliseconds of CPU each time)."""

    def no_client(*args, **kwargs):
        raise AssertionError("an HTTP client was built with nothing to send")

    monkeypatch.setattr(outbox.httpx, "Client", no_client)
    assert services.sandbox_deliver_due_notifications() == 0
