"""The other apps' events, as written into the outbox: PayScore state changes and reconciliation differences carry
their order as the product shows it; nothing for a merchant without a subscribed endpoint."""

from __future__ import annotations

import json

import pytest

from payscore.models import ServiceOrder
from payscore.representation import service_order_output
from sandbox import services as sandbox
from sandbox.services import sandbox_plant_bill_difference
from tests.payscore.conftest import ps  # noqa: F401 (fixture)
from tests.reconciliation.test_reconcile import a_day_of_trade, day_shop, reconcile  # noqa: F401 (fixture)
from webhooks import services
from webhooks.models import SUBSCRIBABLE, WebhookEvent

pytestmark = pytest.mark.django_db


def events_of(merchant) -> list[dict]:
    return [json.loads(e.body) for e in WebhookEvent.objects.filter(merchant=merchant).order_by("id")]


def test_payscore_state_changes_are_events_in_order(ps):  # noqa: F811
    services.endpoint_create(
        merchant=ps.shop.merchant, url="https://hooks.example.com/ps", events=SUBSCRIBABLE, user=None
    )
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")
    ps.deliver()
    ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(300))
    sandbox.sandbox_payscore_user_pay("PS0001")
    ps.deliver()

    events = events_of(ps.shop.merchant)
    assert [e["type"] for e in events] == ["payscore.created", "payscore.doing", "payscore.done"]
    order = ServiceOrder.objects.get(out_order_no="PS0001")
    assert events[-1]["data"] == json.loads(json.dumps(service_order_output(order)))
    assert events[-1]["data"]["paid_amount"] == 300
    assert len({e.order_key for e in WebhookEvent.objects.all()}) == 1


def test_a_cancelled_payscore_order_is_payscore_revoked(ps):  # noqa: F811
    services.endpoint_create(
        merchant=ps.shop.merchant, url="https://hooks.example.com/ps", events=["payscore.revoked"], user=None
    )
    ps.create("PSC1")
    ps.terminal.post("payscore/orders/PSC1/cancel", {"reason": "用户不用了"})
    assert [e["type"] for e in events_of(ps.shop.merchant)] == ["payscore.revoked"]


def test_a_new_reconciliation_difference_is_an_event_once(day_shop):  # noqa: F811
    services.endpoint_create(
        merchant=day_shop.merchant, url="https://hooks.example.com/r", events=["reconciliation.difference"], user=None
    )
    target = a_day_of_trade(day_shop)["paid"]
    sandbox_plant_bill_difference(order_no=target.out_trade_no, kind="AMOUNT")
    reconcile(day_shop)
    reconcile(day_shop)  # the same difference found again: no second event

    [event] = events_of(day_shop.merchant)
    assert event["type"] == "reconciliation.difference"
    data = event["data"]
    assert (data["kind"], data["out_trade_no"], data["bill_date"]) == (
        "AMOUNT_DIFFERS",
        target.out_trade_no,
        "2026-03-10",
    )
    assert data["ours"]["total_fee"] == 1200 and data["theirs"]["total_fee"] == 1201
