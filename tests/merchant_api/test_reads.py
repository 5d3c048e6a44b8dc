"""Reads: a client sees its own merchant's payments, refunds and reconciliation differences and never another's;
lists filter, page by cursor, and refuse bad filter values with 400 naming the field."""

from __future__ import annotations

from datetime import date

import pytest

from payments.services import refund_create
from reconciliation.models import Difference

from .conftest import make_payment, minutes_ago

pytestmark = pytest.mark.django_db


def numbers(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["out_trade_no"] for row in response.json()["results"]]


@pytest.fixture
def payments(world):
    """A's payments a minute apart, newest first: A-5 … A-1; B has its own, one with A's number."""
    made = {
        f"A-{i}": make_payment(
            world.store_a if i != 3 else world.store_a2, f"A-{i}", created_at=minutes_ago(60 - i),
            status="FAILED" if i == 2 else "SUCCESS", device=world.device_a if i == 4 else None,
        )
        for i in range(1, 6)
    }  # fmt: skip
    made["B-1"] = make_payment(world.store_b, "B-1", created_at=minutes_ago(30))
    made["B-A-1"] = make_payment(world.store_b, "A-1", total_fee=777, created_at=minutes_ago(20))
    return made


def test_the_list_shows_the_merchants_payments_newest_first_in_the_terminal_shape(world, payments):
    response = world.api_a.get("payments")

    assert numbers(response) == ["A-5", "A-4", "A-3", "A-2", "A-1"]
    first = response.json()["results"][0]
    assert first["store_id"] == world.store_a.store_id and first["total_fee"] == 1000 and first["status"] == "SUCCESS"
    assert {"is_final", "refunded_fee", "transaction_id", "created_at"} <= set(first)
    assert response.json()["next_cursor"] is None
    assert numbers(world.api_b.get("payments")) == ["A-1", "B-1"]  # B's own "A-1", not A's


def test_filters(world, payments):
    api = world.api_a
    assert numbers(api.get("payments", {"status": "FAILED"})) == ["A-2"]
    assert numbers(api.get("payments", {"status": ["FAILED", "SUCCESS"]})) == ["A-5", "A-4", "A-3", "A-2", "A-1"]
    assert numbers(api.get("payments", {"status": "FAILED,PAYING"})) == ["A-2"]
    assert numbers(api.get("payments", {"store_id": world.store_a2.store_id})) == ["A-3"]
    assert numbers(api.get("payments", {"store_id": world.store_b.store_id})) == []  # another merchant's store
    assert numbers(api.get("payments", {"device_id": world.device_a.device_id})) == ["A-4"]
    window = {
        "created_after": payments["A-2"].created_at.isoformat(),
        "created_before": payments["A-4"].created_at.isoformat(),
    }
    assert numbers(api.get("payments", window)) == ["A-3", "A-2"]  # after: inclusive, before: exclusive


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2026-13-01T00:00:00Z"}, "created_before"),
        ({"created_after": "2026-03-02T00:00:00Z", "created_before": "2026-03-01T00:00:00Z"}, "created_before"),
        ({"status": "PAID"}, "status.0"),
        ({"status": ["SUCCESS", "nope"]}, "status.1"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_filter_values_are_400_naming_the_field(world, payments, params, field):
    response = world.api_a.get("payments", params)

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "INVALID_INPUT" and field in body["details"], body


def test_pages_follow_the_cursor_to_the_end_and_a_new_payment_shifts_nothing(world, payments):
    api = world.api_a
    first = api.get("payments", {"limit": 2}).json()
    assert [p["out_trade_no"] for p in first["results"]] == ["A-5", "A-4"] and first["next_cursor"]

    make_payment(world.store_a, "A-6")  # arrives between two pages
    second = api.get("payments", {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [p["out_trade_no"] for p in second["results"]] == ["A-3", "A-2"]
    third = api.get("payments", {"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [p["out_trade_no"] for p in third["results"]] == ["A-1"] and third["next_cursor"] is None


def test_payments_created_in_the_same_instant_are_each_listed_once(world):
    moment = minutes_ago(5)
    for i in range(5):
        make_payment(world.store_a, f"SAME-{i}", created_at=moment)
    seen, cursor = [], ""
    while True:
        page = world.api_a.get("payments", {"limit": 2, "cursor": cursor}).json()
        seen += [p["out_trade_no"] for p in page["results"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [f"SAME-{i}" for i in (4, 3, 2, 1, 0)]  # ties broken by id, newest first


def test_the_default_page_is_50(world):
    for i in range(51):
        make_payment(world.store_a, f"N-{i:02d}")
    page = world.api_a.get("payments").json()
    assert len(page["results"]) == 50 and page["next_cursor"]


def test_detail_has_the_refunds_and_the_timeline_without_the_raw_upstream_messages(world, payments):
    payment = payments["A-1"]
    refund_create(payment=payment, refund_fee=300, reason="退货", user=None, actor_label="test", request_key="k" * 8)

    response = world.api_a.get("payments/A-1")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["out_trade_no"] == "A-1" and body["total_fee"] == 1000 and body["store_id"] == world.store_a.store_id
    assert [(r["out_refund_no"], r["refund_fee"], r["out_trade_no"]) for r in body["refunds"]] == [
        ("A-1R01", 300, "A-1")
    ]
    assert [e["action"] for e in body["timeline"]] == ["refund.created"]
    event = body["timeline"][0]
    assert set(event) == {
        "created_at", "action", "from_status", "to_status", "outcome", "code", "message", "actor", "out_refund_no"
    }  # fmt: skip
    assert event["out_refund_no"] == "A-1R01" and event["actor"] == "STAFF"
    assert world.api_b.get("payments/A-1").json()["total_fee"] == 777  # B's own A-1


def test_another_merchants_payment_refund_and_differences_are_not_found(world, payments):
    b_refund = refund_create(payment=payments["B-1"], refund_fee=100, user=None, actor_label="test")
    Difference.objects.create(merchant=world.b, bill_date=date(2026, 3, 10), kind="MISSING_THERE", out_trade_no="B-1")
    api = world.api_a

    for path in ("payments/B-1", f"refunds/{b_refund.out_refund_no}"):
        response = api.get(path)
        assert response.status_code == 404 and response.json()["code"] in ("PAYMENT_NOT_FOUND", "REFUND_NOT_FOUND")
    assert api.get("reconciliation/differences").json() == {"results": [], "next_cursor": None}
    assert world.api_b.get(f"refunds/{b_refund.out_refund_no}").status_code == 200


def test_an_unknown_path_under_the_api_is_a_json_404(world):
    response = world.api_a.get("nothing-here")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


def test_refund_detail(world, payments):
    refund = refund_create(payment=payments["A-5"], refund_fee=250, user=None, actor_label="test")

    body = world.api_a.get(f"refunds/{refund.out_refund_no}").json()

    assert body["out_refund_no"] == "A-5R01" and body["out_trade_no"] == "A-5" and body["refund_fee"] == 250
    assert body["status"] == "PENDING" and body["kind"] in ("REFUND", "REVERSE")


@pytest.fixture
def differences(world, payments):
    ours = {"payment": payments["A-1"].pk, "out_trade_no": "A-1", "total_fee": 1000, "status": "SUCCESS"}
    theirs = {"line": 2, "out_trade_no": "A-1", "trade_state": "SUCCESS", "total_fee": 1001, "fee": 6}
    made = [
        Difference.objects.create(merchant=world.a, bill_date=date(2026, 3, 9), kind="AMOUNT_DIFFERS",
                                  out_trade_no="A-1", payment=payments["A-1"], ours=ours, theirs=theirs),
        Difference.objects.create(merchant=world.a, bill_date=date(2026, 3, 10), kind="MISSING_THERE",
                                  out_trade_no="A-2", ours={**ours, "out_trade_no": "A-2"}),
        Difference.objects.create(merchant=world.a, bill_date=date(2026, 3, 10), kind="CHARGED_NOT_SUCCESSFUL",
                                  out_trade_no="X-1", theirs=theirs, status="EXPLAINED", note="已核实"),
        Difference.objects.create(merchant=world.a, bill_date=date(2026, 3, 11), kind="DUPLICATE_ROW",
                                  out_trade_no="A-3", theirs=theirs, status="CLOSED"),
        Difference.objects.create(merchant=world.b, bill_date=date(2026, 3, 10), kind="MISSING_THERE",
                                  out_trade_no="B-1"),
    ]  # fmt: skip
    return made


def trade_numbers(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["out_trade_no"] for row in response.json()["results"]]


def test_differences_latest_day_first_with_both_sides_in_fen(world, differences):
    response = world.api_a.get("reconciliation/differences")

    assert trade_numbers(response) == ["A-3", "X-1", "A-2", "A-1"]
    amount = response.json()["results"][3]
    assert amount == {
        "bill_date": "2026-03-09", "kind": "AMOUNT_DIFFERS", "status": "OPEN", "out_trade_no": "A-1",
        "out_refund_no": "", "transaction_id": "", "ours": differences[0].ours, "theirs": differences[0].theirs,
        "note": "", "created_at": amount["created_at"],
    }  # fmt: skip
    assert (amount["ours"]["total_fee"], amount["theirs"]["total_fee"]) == (1000, 1001)
    assert trade_numbers(world.api_b.get("reconciliation/differences")) == ["B-1"]


def test_differences_filter_and_page(world, differences):
    api = world.api_a
    day = {"bill_date_from": "2026-03-10", "bill_date_to": "2026-03-10"}
    assert trade_numbers(api.get("reconciliation/differences", day)) == ["X-1", "A-2"]
    assert trade_numbers(api.get("reconciliation/differences", {"status": "OPEN"})) == ["A-2", "A-1"]
    assert trade_numbers(api.get("reconciliation/differences", {"status": "OPEN,EXPLAINED"})) == ["X-1", "A-2", "A-1"]
    assert trade_numbers(api.get("reconciliation/differences", {"kind": "CHARGED_NOT_SUCCESSFUL"})) == ["X-1"]
    first = api.get("reconciliation/differences", {"limit": 3}).json()
    rest = api.get("reconciliation/differences", {"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [d["out_trade_no"] for d in first["results"] + rest["results"]] == ["A-3", "X-1", "A-2", "A-1"]
    assert rest["next_cursor"] is None
    for bad, field in (({"bill_date_from": "10/03/2026"}, "bill_date_from"), ({"kind": "ODD"}, "kind.0"),
                       ({"status": "GONE"}, "status.0"),
                       ({"bill_date_from": "2026-03-11", "bill_date_to": "2026-03-10"}, "bill_date_to")):  # fmt: skip
        response = api.get("reconciliation/differences", bad)
        assert response.status_code == 400 and field in response.json()["details"], (bad, response.content)


def test_a_payments_cursor_is_no_differences_cursor(world, payments, differences):
    cursor = world.api_a.get("payments", {"limit": 1}).json()["next_cursor"]

    response = world.api_a.get("reconciliation/differences", {"cursor": cursor})

    assert response.status_code == 400 and "cursor" in response.json()["details"]
