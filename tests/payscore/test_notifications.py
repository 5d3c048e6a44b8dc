"""/notify/wechatpay/payscore/: real signed and encrypted notifications from the sandbox. Duplicates, out-of-order
delivery, bad signatures and event types we only record."""

import json

import httpx
import pytest

from payscore.models import PayscoreNotification, ServiceOrder, ServiceOrderEvent
from sandbox import outbox
from sandbox import services as sandbox
from sandbox.models import SandboxWechatMerchant

pytestmark = pytest.mark.django_db

NOTIFY_URL = "http://testserver/notify/wechatpay/payscore/"


def _confirmed_and_completed(ps):
    """In service and completed, with both notifications captured but not yet applied (the receiver refused)."""
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")
    ps.receiver.refuse = True
    ps.deliver()  # USER_CONFIRM captured [0]
    ps.clock.advance(11)
    assert ps.terminal.get("payscore/orders/PS0001").json()["state_description"] == "USER_CONFIRM"  # via query
    assert ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(300)).status_code == 200
    sandbox.sandbox_payscore_user_pay("PS0001")
    ps.deliver()  # USER_PAID captured [1]
    ps.receiver.refuse = False
    assert [json.loads(body)["event_type"] for _, _, body in ps.receiver.captured] == [
        "PAYSCORE.USER_CONFIRM",
        "PAYSCORE.USER_PAID",
    ]


def test_duplicate_delivery_is_acknowledged_and_applied_once(ps):
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")
    assert ps.deliver() == 1
    events = ServiceOrderEvent.objects.count()

    again = ps.replay(0)
    assert again.status_code == 204
    assert ServiceOrderEvent.objects.count() == events  # no second notification event, no state event
    rows = PayscoreNotification.objects.order_by("pk")
    assert [(r.is_verified, r.http_status, r.result) for r in rows][1] == (True, 204, "duplicate")
    assert rows[0].notification_id == rows[0].claimed_id and rows[1].notification_id == ""
    assert ps.order().events.filter(action="notification").count() == 1


def test_out_of_order_notifications_never_move_the_state_back(ps):
    _confirmed_and_completed(ps)
    paid = ps.replay(1)
    assert paid.status_code == 204
    order = ps.order()
    assert (order.state, order.collection_state, order.paid_amount) == ("DONE", "USER_PAID", 300)

    confirm = ps.replay(0)  # USER_CONFIRM arrives last: its resource says DOING/USER_CONFIRM
    assert confirm.status_code == 204
    order = ps.order()
    assert (order.state, order.state_description, order.collection_state) == ("DONE", "", "USER_PAID")
    record = PayscoreNotification.objects.order_by("-pk").first()
    assert record.result == "applied: no change (DONE)"


def test_bad_signature_is_rejected_and_changes_nothing(ps):
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")
    ps.receiver.tamper = True
    assert ps.deliver() == 0  # the sandbox saw a refusal and will retry
    record = PayscoreNotification.objects.get()
    assert (record.is_verified, record.http_status, record.processed_at) == (False, 401, None)
    assert record.body and record.headers["Wechatpay-Signature"]
    order = ps.order()
    assert (order.state, order.state_description) == ("CREATED", "")
    assert not order.events.filter(action="notification").exists()

    ps.receiver.tamper = False  # WeChat's retry, correctly signed, goes through
    ps.clock.advance(15)
    assert ps.deliver() == 1
    assert ps.order().state_description == "USER_CONFIRM"


def test_bad_signature_body_is_json_error(ps):
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")
    ps.receiver.refuse = True
    ps.deliver()
    url, headers, body = ps.receiver.captured[0]
    with httpx.Client(transport=ps.receiver.inner) as client:
        tampered = client.post(url, content=body.replace(b'"id":"', b'"id":"x'), headers=headers)
        unknown_serial = client.post(url, content=body, headers={**headers, "wechatpay-serial": "PUB_KEY_ID_0000"})
        missing = client.post(url, content=body, headers={"content-type": "application/json"})
    for response in (tampered, unknown_serial, missing):
        assert response.status_code == 401
        assert set(response.json()) == {"code", "message"}
        assert response.json()["code"] == "SIGN_ERROR"
    assert ps.order().state == "CREATED"
    assert PayscoreNotification.objects.filter(is_verified=False).count() == 3


def test_other_event_types_are_recorded_and_acknowledged(ps):
    merchant = SandboxWechatMerchant.objects.get(mch_id=ps.merchant.mch_id)
    outbox.enqueue_wechat_v3(
        merchant,
        url=NOTIFY_URL,
        event_type="PAYSCORE.USER_OPEN_SERVICE",
        summary="用户开启服务",
        resource={"appid": merchant.appid, "mchid": merchant.mch_id, "service_id": "500001", "openid": "oSbxX"},
        order_no="",
    )
    assert ps.deliver() == 1
    record = PayscoreNotification.objects.get()
    assert (record.event_type, record.is_verified, record.http_status) == ("PAYSCORE.USER_OPEN_SERVICE", True, 204)
    assert record.result.startswith("recorded, not applied")
    assert record.notification_id and record.processed_at is not None


def test_notification_for_an_unknown_order_is_refused(ps):
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")
    ServiceOrder.objects.filter(pk=ps.order().pk).update(out_order_no="OTHER", order_id="")
    assert ps.deliver() == 0
    record = PayscoreNotification.objects.get()
    assert (record.is_verified, record.http_status) == (True, 404)


def test_service_provider_merchants_get_no_payscore_orders(make_shop, monkeypatch):
    """WeChat: the PayScore service-order API is for direct merchants (适用对象:直连商户). A sub-merchant's order
    would be created under the provider's own mch_id, so it is refused before anything is stored or sent."""
    from payscore import services
    from portal.models import Merchant

    shop = make_shop(Merchant.Channel.WECHAT_PROVIDER)
    Merchant.objects.filter(pk=shop.merchant.pk).update(payscore_service_id="500001")
    monkeypatch.setattr(services, "_now", shop.clock.now)
    response = shop.terminal.post(
        "payscore/orders",
        {
            "out_order_no": "SP1",
            "service_introduction": "租借",
            "risk_fund": {"name": "DEPOSIT", "amount": 100},
            "time_range": {"start_time": "OnAccept"},
        },
    )
    assert (response.status_code, response.json()["code"]) == (409, "PAYSCORE_UNSUPPORTED_CHANNEL")
    assert not ServiceOrder.objects.exists()
    assert not [r for r in shop.transport.requests if "payscore" in r.url.path]
