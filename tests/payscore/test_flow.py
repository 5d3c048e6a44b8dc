"""WeChat's face PayScore sequence against the sandbox: create → the user confirms (signed, encrypted
notification) → complete → the user pays (notification) → DONE with the collection paid; plus cancel, sync,
idempotent create and the GET refresh."""

import pytest

from payscore.models import PayscoreNotification, ServiceOrderEvent
from sandbox import services as sandbox

pytestmark = pytest.mark.django_db

CREATE = "v3/payscore/serviceorder"


def test_seed_sequence_create_confirm_complete_pay(ps):
    response = ps.create()
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["state"], body["state_description"], body["confirming"]) == ("CREATED", "", False)
    assert body["order_id"] and body["package"]
    assert body["unionid_lookup"] == "NOT_REQUESTED"
    assert ps.upstream_calls() == [CREATE]
    sent = ps.shop.transport.requests[0]
    assert b'"notify_url":"http://testserver/notify/wechatpay/payscore/"' in sent.content
    assert b'"openid"' not in sent.content  # need_user_confirm=true: WeChat wants no openid

    sandbox.sandbox_payscore_user_confirm("PS0001")
    assert ps.deliver() == 1
    order = ps.order()
    assert (order.state, order.state_description) == ("DOING", "USER_CONFIRM")
    assert order.openid.startswith("oSbx")

    completed = ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(300))
    assert completed.status_code == 200, completed.text
    body = completed.json()
    assert (body["state"], body["state_description"], body["collection_state"]) == (
        "DOING",
        "MCH_COMPLETE",
        "USER_PAYING",
    )
    assert body["total_amount"] == 300

    sandbox.sandbox_payscore_user_pay("PS0001")
    assert ps.deliver() == 1
    order = ps.order()
    assert (order.state, order.state_description, order.collection_state) == ("DONE", "", "USER_PAID")
    assert order.paid_amount == 300
    assert len(order.transaction_ids) == 1 and order.transaction_ids[0].startswith("4200")
    assert order.pending_action == "" and order.next_check_at is None

    assert ps.upstream_calls() == [CREATE, "v3/payscore/serviceorder/PS0001/complete"]
    notifications = PayscoreNotification.objects.order_by("pk")
    assert [(n.event_type, n.is_verified, n.http_status) for n in notifications] == [
        ("PAYSCORE.USER_CONFIRM", True, 204),
        ("PAYSCORE.USER_PAID", True, 204),
    ]
    assert all(n.notification_id for n in notifications)
    states = [
        (e.from_state, e.to_state, e.actor) for e in ServiceOrderEvent.objects.filter(action="state").order_by("pk")
    ]
    assert states == [
        ("PENDING", "CREATED", "TERMINAL"),
        ("CREATED", "DOING/USER_CONFIRM", "NOTIFICATION"),
        ("DOING/USER_CONFIRM", "DOING/MCH_COMPLETE (USER_PAYING)", "TERMINAL"),
        ("DOING/MCH_COMPLETE", "DONE (USER_PAID)", "NOTIFICATION"),
    ]

    final = ps.terminal.get("payscore/orders/PS0001")
    assert final.status_code == 200
    assert final.json()["is_final"] is True
    assert len(ps.upstream_calls()) == 2  # a final order is not re-queried


def test_order_without_user_confirmation_starts_in_service(ps):
    response = ps.create(need_user_confirm=False, openid="oSbxTERMINALOPENID")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["state"], body["state_description"]) == ("DOING", "USER_CONFIRM")
    assert b'"openid":"oSbxTERMINALOPENID"' in ps.shop.transport.requests[0].content
    assert ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(0)).json()["state"] == "DONE"


def test_cancel_created_and_doing_orders(ps):
    ps.create("PSC1")
    response = ps.terminal.post("payscore/orders/PSC1/cancel", {"reason": "用户不用了"})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "REVOKED"

    ps.create("PSC2")
    sandbox.sandbox_payscore_user_confirm("PSC2")
    ps.deliver()
    response = ps.terminal.post("payscore/orders/PSC2/cancel", {"reason": "设备故障"})
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["state_description"]) == ("REVOKED", "")
    assert ps.upstream_calls()[-1] == "v3/payscore/serviceorder/PSC2/cancel"


def test_sync_order_paid_after_complete(ps):
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")
    ps.deliver()
    ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(300))
    response = ps.terminal.post("payscore/orders/PS0001/sync", {"type": "Order_Paid", "paid_time": "20260101120000"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["state"], body["collection_state"]) == ("DONE", "USER_PAID")
    sync = ps.shop.transport.requests[-1]
    assert sync.url.path.endswith("/PS0001/sync")
    assert b'"type":"Order_Paid"' in sync.content and b'"paid_time":"20260101120000"' in sync.content


def test_identical_create_returns_the_order_and_different_content_conflicts(ps):
    first = ps.create()
    assert first.status_code == 201
    again = ps.create()
    assert again.status_code == 200
    assert again.json()["order_id"] == first.json()["order_id"]
    assert ps.upstream_calls() == [CREATE]  # nothing sent twice

    other = ps.create(service_introduction="别的服务")
    assert other.status_code == 409
    assert other.json()["code"] == "OUT_ORDER_NO_CONFLICT"
    assert ps.upstream_calls() == [CREATE]
    assert ps.order().service_introduction == "充电宝租借"


def test_get_refreshes_from_wechat_only_when_stale(ps, settings):
    settings.PAYSCORE_REFRESH_SECONDS = 10
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")  # its notification is not delivered
    assert ps.terminal.get("payscore/orders/PS0001").json()["state"] == "CREATED"
    assert ps.upstream_calls() == [CREATE]

    ps.clock.advance(11)
    body = ps.terminal.get("payscore/orders/PS0001").json()
    assert (body["state"], body["state_description"]) == ("DOING", "USER_CONFIRM")
    assert ps.upstream_calls() == [CREATE, CREATE]  # the query (GET, same path)
    assert ps.shop.transport.requests[-1].method == "GET"


def test_unknown_order_is_404(ps):
    response = ps.terminal.get("payscore/orders/NOPE")
    assert response.status_code == 404
    assert response.json()["code"] == "SERVICE_ORDER_NOT_FOUND"


def test_unionid_lookup_by_face_sid(ps):
    from sandbox import identity

    user = "12345678"
    openid = identity.openid_for(user, ps.merchant.appid)
    response = ps.create(need_user_confirm=False, openid=openid, face_sid=identity.face_sid_for(user), ask_unionid=True)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["unionid_lookup"] == "SUCCESS"
    assert body["union_id"] == identity.union_id_for(user)
    lookup = ps.shop.transport.requests[-1]
    assert lookup.url.path.startswith("/sandbox/wechatpay/v3/facemch/users/fsid")
    event = ps.order().events.get(action="facemch")
    assert event.outcome == "SUCCESS" and user not in event.request["path"]  # face_sid masked in the event


def test_failed_unionid_lookup_is_recorded_not_fatal(ps):
    response = ps.create(face_sid="not-a-face-sid", ask_unionid=True)
    assert response.status_code == 201, response.text
    assert response.json()["unionid_lookup"] == "FAILED"
    assert response.json()["union_id"] == ""
    event = ps.order().events.get(action="facemch")
    assert (event.outcome, event.code) == ("REJECTED", "PARAM_ERROR")


def test_complete_names_an_end_time_when_the_create_had_none(ps):
    """WeChat: an order created without an end time must be completed with one (服务结束时间必填).
    Unless the caller names one, the service ended at the complete; an end time the caller gives is sent as given."""
    import json

    from payments.gateways.umpay import CHINA_TZ

    for number, given in (("PS0001", None), ("PS0002", "20261122103000")):
        assert ps.create(number).status_code == 201
        sandbox.sandbox_payscore_user_confirm(number)
        ps.deliver()
        body = ps.complete_body(300, **({"time_range": {"end_time": given}} if given else {}))
        assert ps.terminal.post(f"payscore/orders/{number}/complete", body).status_code == 200
        sent = json.loads(
            next(r for r in reversed(ps.shop.transport.requests) if r.url.path.endswith("/complete")).content
        )
        expected = given or ps.clock.now().astimezone(CHINA_TZ).strftime("%Y%m%d%H%M%S")
        assert sent["time_range"]["end_time"] == expected
        assert ps.order(number).state_description == "MCH_COMPLETE"


def test_sandbox_refuses_a_complete_without_an_end_time_like_wechat(ps):
    from sandbox import payscore as sandbox_payscore
    from sandbox.models import SandboxPayscoreOrder

    assert ps.create().status_code == 201
    sandbox.sandbox_payscore_user_confirm("PS0001")
    order = SandboxPayscoreOrder.objects.get(out_order_no="PS0001")
    with pytest.raises(sandbox_payscore.PayscoreError) as refused:
        sandbox_payscore.complete(
            order, {"appid": order.appid, "service_id": order.service_id, **ps.complete_body(300)}
        )
    assert (refused.value.code, refused.value.message) == (
        "PARAM_ERROR",
        "time_range.end_time is required: the order was created without one",
    )
