"""Refunds asked for by a merchant's server: idempotent per request key (body or Idempotency-Key header), 201 for a
new refund and 200 for a replay, 409 for a key reused with another amount, nothing changed by a refused request,
and the client named in the audit log."""

from __future__ import annotations

import pytest

from payments.models import PaymentEvent, Refund
from portal.models import AuditLog

from .conftest import make_api, make_payment

pytestmark = pytest.mark.django_db
KEY = "pos-order-0001"


@pytest.fixture
def paid(world):
    return make_payment(world.store_a, "PAID-1", total_fee=1000)


def refunds_of(payment) -> list[tuple[str, int]]:
    return list(Refund.objects.filter(payment=payment).values_list("out_refund_no", "refund_fee"))


def test_a_new_refund_is_201_the_same_key_again_200_with_the_same_refund(world, paid):
    api = world.api_a
    created = api.post("payments/PAID-1/refunds", {"refund_fee": 300, "reason": "退货", "request_key": KEY})
    replay = api.post("payments/PAID-1/refunds", {"refund_fee": 300, "reason": "退货", "request_key": KEY})

    assert (created.status_code, replay.status_code) == (201, 200), (created.content, replay.content)
    assert created.json() == replay.json()
    assert created.json()["out_refund_no"] == "PAID-1R01" and created.json()["out_trade_no"] == "PAID-1"
    assert created.json()["request_key"] == KEY and created.json()["refund_fee"] == 300
    assert refunds_of(paid) == [("PAID-1R01", 300)]
    paid.refresh_from_db()
    assert paid.reserved_refund_fee == 300


def test_the_same_key_with_another_amount_is_409_and_changes_nothing(world, paid):
    api = world.api_a
    api.post("payments/PAID-1/refunds", {"refund_fee": 300, "request_key": KEY})

    conflict = api.post("payments/PAID-1/refunds", {"refund_fee": 400, "request_key": KEY})

    assert conflict.status_code == 409 and conflict.json()["code"] == "REQUEST_KEY_CONFLICT"
    assert "PAID-1R01" in conflict.json()["details"]["request_key"]
    assert refunds_of(paid) == [("PAID-1R01", 300)]
    paid.refresh_from_db()
    assert paid.reserved_refund_fee == 300


def test_the_key_may_come_in_the_idempotency_key_header(world, paid):
    api = world.api_a
    by_header = api.post("payments/PAID-1/refunds", {"refund_fee": 200}, HTTP_IDEMPOTENCY_KEY=KEY)
    both = api.post("payments/PAID-1/refunds", {"refund_fee": 200, "request_key": KEY}, HTTP_IDEMPOTENCY_KEY=KEY)
    differing = api.post(
        "payments/PAID-1/refunds", {"refund_fee": 200, "request_key": "another-key-1"}, HTTP_IDEMPOTENCY_KEY=KEY
    )

    assert (by_header.status_code, both.status_code) == (201, 200)
    assert by_header.json()["request_key"] == KEY
    assert differing.status_code == 400 and "request_key" in differing.json()["details"]
    assert refunds_of(paid) == [("PAID-1R01", 200)]


@pytest.mark.parametrize(
    ("body", "headers", "code", "field"),
    [
        ({"refund_fee": 100}, {}, "INVALID_INPUT", "request_key"),  # no key at all
        ({"refund_fee": 100, "request_key": "short"}, {}, "INVALID_INPUT", "request_key"),
        ({"refund_fee": 100}, {"HTTP_IDEMPOTENCY_KEY": "has spaces in it"}, "INVALID_INPUT", "Idempotency-Key"),
        ({"refund_fee": "100", "request_key": KEY}, {}, "INVALID_INPUT", "refund_fee"),
        ({"refund_fee": 1.5, "request_key": KEY}, {}, "INVALID_INPUT", "refund_fee"),
        ({"refund_fee": 0, "request_key": KEY}, {}, "INVALID_INPUT", "refund_fee"),
        ({"refund_fee": 1001, "request_key": KEY}, {}, "REFUND_EXCEEDS_PAYMENT", "refund_fee"),
        ({"refund_fee": 100, "request_key": KEY, "reason": "x" * 81}, {}, "INVALID_INPUT", "reason"),
    ],
)
def test_refused_requests_are_400_and_change_nothing(world, paid, body, headers, code, field):
    response = world.api_a.post("payments/PAID-1/refunds", body, **headers)

    assert response.status_code == 400, response.content
    assert response.json()["code"] == code and field in response.json()["details"], response.json()
    assert refunds_of(paid) == []
    paid.refresh_from_db()
    assert paid.reserved_refund_fee == 0


def test_a_malformed_body_is_400(world, paid):
    response = world.api_a.http.post(
        "/api/merchant/v1/payments/PAID-1/refunds", "{not json", content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {world.api_a.token}",
    )  # fmt: skip
    assert response.status_code == 400 and response.json()["code"] == "MALFORMED_BODY"


def test_an_unpaid_payment_is_409_not_refundable(world):
    make_payment(world.store_a, "FAILED-1", status="FAILED")

    response = world.api_a.post("payments/FAILED-1/refunds", {"refund_fee": 100, "request_key": KEY})

    assert response.status_code == 409 and response.json()["code"] == "NOT_REFUNDABLE"


def test_another_merchants_payment_cannot_be_refunded(world):
    foreign = make_payment(world.store_b, "B-PAID", total_fee=1000)

    response = world.api_a.post("payments/B-PAID/refunds", {"refund_fee": 100, "request_key": KEY})

    assert response.status_code == 404 and response.json()["code"] == "PAYMENT_NOT_FOUND"
    assert refunds_of(foreign) == []


def test_the_audit_log_names_the_api_client(world, paid):
    api = world.api_a
    api.post("payments/PAID-1/refunds", {"refund_fee": 300, "request_key": KEY})
    api.post("payments/PAID-1/refunds", {"refund_fee": 300, "request_key": KEY})  # a replay records nothing

    entry = AuditLog.objects.get(action="payment.refund")
    assert entry.actor is None and entry.actor_label == f"api:{api.client.client_id} (POS)"
    assert entry.merchant == world.a
    assert entry.details["out_refund_no"] == "PAID-1R01" and entry.details["refund_fee"] == 300
    # The payment's timeline says who asked: the merchant's API client, not console staff.
    created = PaymentEvent.objects.get(action="refund.created")
    assert created.actor == PaymentEvent.Actor.API


def test_a_refund_through_the_sandbox_shows_in_the_detail_and_its_timeline(shop):
    api = make_api(shop.merchant)
    order = shop.pay(1000)
    shop.run_worker(20)  # a full refund within the reverse window waits 15 s after the payment call

    created = api.post(f"payments/{order['out_trade_no']}/refunds", {"refund_fee": 400, "request_key": KEY})
    assert created.status_code == 201, created.content
    shop.run_worker(30)

    detail = api.get(f"payments/{order['out_trade_no']}").json()
    assert detail["status"] == "PARTIALLY_REFUNDED" and detail["refunded_fee"] == 400
    assert [(r["refund_fee"], r["status"]) for r in detail["refunds"]] == [(400, "SUCCESS")]
    actions = [event["action"] for event in detail["timeline"]]
    assert actions[0] == "created" and "micropay" in actions and "refund.created" in actions
    assert any(e["to_status"] == "PARTIALLY_REFUNDED" for e in detail["timeline"])
    assert all("request" not in e and "response" not in e for e in detail["timeline"])
    refund = api.get(f"refunds/{created.json()['out_refund_no']}").json()
    assert refund["status"] == "SUCCESS" and refund["refund_id"]
