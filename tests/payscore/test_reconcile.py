"""Lost answers and lost notifications: the order is re-queried until WeChat's view settles it."""

from datetime import timedelta

import httpx
import pytest
from django.core.management import call_command

from payscore import services, tasks
from payscore.models import ServiceOrder
from portal.models import AuditLog
from sandbox import services as sandbox

pytestmark = pytest.mark.django_db


def _run_due(ps):
    for order_id in services.service_orders_due(now=ps.clock.now()):
        services.service_order_refresh(order_id=order_id, now=ps.clock.now())


def test_lost_user_paid_notification_is_healed_by_reconcile(ps, settings):
    settings.PAYSCORE_RECONCILE_PAYING_SECONDS = 60
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")
    ps.deliver()
    ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(300))
    sandbox.sandbox_payscore_user_pay("PS0001")  # its notification never arrives
    order = ps.order()
    assert services.service_orders_due(now=ps.clock.now()) == []  # just synced by the complete answer

    ps.clock.advance(61)
    assert services.service_orders_due(now=ps.clock.now()) == [order.pk]
    assert tasks.reconcile() == 1  # the beat task enqueues a refresh per due order
    _run_due(ps)
    order.refresh_from_db()
    assert (order.state, order.collection_state, order.paid_amount) == ("DONE", "USER_PAID", 300)
    assert order.events.filter(action="query", actor="WORKER").count() == 1
    ps.clock.advance(600)
    assert services.service_orders_due(now=ps.clock.now()) == []  # final: never queried again


def test_lost_user_confirm_notification_is_healed_by_reconcile(ps, settings):
    settings.PAYSCORE_RECONCILE_CREATED_SECONDS = 600
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")
    ps.clock.advance(601)
    _run_due(ps)
    assert (ps.order().state, ps.order().state_description) == ("DOING", "USER_CONFIRM")


def test_created_order_near_expiry_is_rechecked_and_expires(ps):
    ps.create()
    order = ps.order()
    ps.clock.advance(5 * 86400)  # older than a day, far from expiry: left alone
    assert services.service_orders_due(now=ps.clock.now()) == []
    ps.clock.advance(25 * 86400)
    ServiceOrder.objects.filter(pk=order.pk).update(created_at=ps.clock.now() - timedelta(days=30))
    from sandbox.models import SandboxPayscoreOrder

    SandboxPayscoreOrder.objects.filter(out_order_no="PS0001").update(state="EXPIRED")
    assert services.service_orders_due(now=ps.clock.now()) == [order.pk]
    _run_due(ps)
    assert ps.order().state == "EXPIRED"


def test_create_answer_lost_then_confirmed_by_query(ps):
    ps.lossy.lose_answers = 1  # WeChat created it, the answer never came back
    response = ps.create()
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["state"], body["confirming"], body["pending_action"]) == ("PENDING", True, "CREATE")
    assert body["last_error_code"] == "TIMEOUT"

    busy = ps.terminal.post("payscore/orders/PS0001/cancel", {"reason": "x"})
    assert busy.status_code == 409 and busy.json()["code"] == "OUTCOME_PENDING"

    ps.clock.advance(5)
    _run_due(ps)
    order = ps.order()
    assert (order.state, order.pending_action, order.last_error_code, order.next_check_at) == ("CREATED", "", "", None)
    assert order.order_id
    assert ps.upstream_calls() == ["v3/payscore/serviceorder", "v3/payscore/serviceorder"]  # create, query


def test_create_that_never_reached_wechat_is_sent_again(ps):
    ps.lossy.drop_requests = 1
    response = ps.create()
    assert response.status_code == 202
    ps.clock.advance(5)
    _run_due(ps)  # query → ORDER_NOT_EXIST → the same create again (idempotent upstream)
    order = ps.order()
    assert (order.state, order.pending_action) == ("CREATED", "")
    assert [e.action for e in order.events.order_by("pk")][-3:] == ["query", "create", "state"]


def test_identical_repost_while_pending_settles_it(ps):
    ps.lossy.lose_answers = 1
    assert ps.create().status_code == 202
    assert ps.create().status_code == 202  # the call's lease has not run out: same answer, nothing sent
    assert len(ps.upstream_calls()) == 1
    ps.clock.advance(16)
    again = ps.create()
    assert again.status_code == 200, again.text
    assert again.json()["state"] == "CREATED"


def test_complete_answer_lost_is_never_lost(ps):
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")
    ps.deliver()
    ps.lossy.lose_answers = 1
    response = ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(300))
    assert response.status_code == 202
    assert response.json()["pending_action"] == "COMPLETE"
    assert response.json()["state_description"] == "USER_CONFIRM"

    ps.clock.advance(5)
    _run_due(ps)
    order = ps.order()
    assert (order.state_description, order.collection_state, order.pending_action) == (
        "MCH_COMPLETE",
        "USER_PAYING",
        "",
    )
    assert order.total_amount == 300 and order.post_payments == [{"name": "租借费", "amount": 300, "count": 1}]


def test_cancel_that_never_reached_wechat_is_reported_not_applied(ps):
    ps.create()
    ps.lossy.drop_requests = 1
    response = ps.terminal.post("payscore/orders/PS0001/cancel", {"reason": "不用了"})
    assert response.status_code == 202
    ps.clock.advance(5)
    _run_due(ps)
    order = ps.order()
    assert (order.state, order.pending_action, order.last_error_code) == ("CREATED", "", "NOT_APPLIED")
    assert ps.terminal.post("payscore/orders/PS0001/cancel", {"reason": "不用了"}).json()["state"] == "REVOKED"


def test_staff_commands_are_audited(ps):
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")
    merchant = ps.merchant.pk
    call_command("payscore_refresh", merchant=merchant, out_order_no="PS0001")
    assert ps.order().state_description == "USER_CONFIRM"
    call_command(
        "payscore_complete",
        merchant=merchant,
        out_order_no="PS0001",
        post_payments='[{"name":"租借费","amount":300}]',
        total_amount=300,
    )
    call_command("payscore_sync", merchant=merchant, out_order_no="PS0001", paid_time="20260101120000")
    assert (ps.order().state, ps.order().collection_state) == ("DONE", "USER_PAID")
    actions = list(
        AuditLog.objects.filter(action__startswith="payscore.").order_by("pk").values_list("action", "actor_label")
    )
    assert actions == [("payscore.refresh", "cli"), ("payscore.complete", "cli"), ("payscore.sync", "cli")]
    staff_events = ps.order().events.filter(actor="STAFF").values_list("action", flat=True)
    assert {"query", "complete", "sync"} <= set(staff_events)


def test_cancel_command_refuses_with_the_error_code(ps):
    from django.core.management.base import CommandError

    ps.create()
    call_command("payscore_cancel", merchant=ps.merchant.pk, out_order_no="PS0001", reason="不用了")
    with pytest.raises(CommandError, match="INVALID_ORDER_STATE"):
        call_command("payscore_cancel", merchant=ps.merchant.pk, out_order_no="PS0001", reason="不用了")


def _confirmed(ps):
    assert ps.create().status_code == 201
    sandbox.sandbox_payscore_user_confirm("PS0001")
    assert ps.deliver() == 1
    order = ps.order()
    assert (order.state, order.state_description) == ("DOING", "USER_CONFIRM")
    return order


def test_a_query_sent_before_a_complete_never_judges_that_complete(ps, monkeypatch):
    """A refresh (terminal poll, worker, staff) queries; while its query is out a complete starts, reaches WeChat and
    loses its answer. The older query answer (DOING/USER_CONFIRM) says nothing about that complete: it stays pending
    under its own lease — no "not applied, send it again", no second complete with other content — and a query
    after the lease settles it."""
    from payments.gateways import wechatpay_v3

    order = _confirmed(ps)
    query = wechatpay_v3.payscore_query

    def complete_while_the_query_is_out(*args, **kwargs):
        answer = query(*args, **kwargs)
        monkeypatch.setattr(wechatpay_v3, "payscore_query", query)
        ps.lossy.lose_answers = 1
        services.service_order_complete(order=order, data=ps.complete_body(300))
        return answer

    monkeypatch.setattr(wechatpay_v3, "payscore_query", complete_while_the_query_is_out)
    services.service_order_refresh(order_id=order.pk, now=ps.clock.now())
    order.refresh_from_db()
    assert (order.pending_action, order.last_error_code) == ("COMPLETE", "TIMEOUT")
    assert order.next_check_at > ps.clock.now()
    again = ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(500))
    assert again.status_code == 409  # the first complete's outcome is unknown: nothing else is sent

    ps.clock.advance(60)
    _run_due(ps)
    order.refresh_from_db()
    assert (order.pending_action, order.state_description, order.total_amount) == ("", "MCH_COMPLETE", 300)


def test_unsigned_refusal_of_a_create_decides_nothing(ps, monkeypatch):
    """WeChat signs every answer to a request whose signature it accepted: an unsigned 400 is not its word."""
    from payments import channels

    forged = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(400, json={"code": "PARAM_ERROR", "message": "x"}))
    )
    monkeypatch.setattr(channels, "upstream_client", forged)
    ps.create()
    order = ps.order()
    assert order.state == "PENDING" and order.next_check_at is not None  # queried later, not REJECTED
    event = order.events.get(action="create")
    assert (event.outcome, event.code) == ("UNKNOWN", "HTTP_400")
