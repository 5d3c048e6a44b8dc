"""Every precondition and limit is checked before WeChat is called: a clear error, nothing sent, nothing changed."""

import pytest

from payscore.models import ServiceOrder, ServiceOrderEvent
from sandbox import services as sandbox

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"service_introduction": "一" * 21}, "service_introduction"),
        ({"attach": "a" * 257}, "attach"),
        ({"post_payments": [{"name": f"项目{i}", "amount": 1} for i in range(101)]}, "post_payments"),
        (
            {"post_discounts": [{"name": f"优惠{i}", "description": "d", "amount": 1} for i in range(31)]},
            "post_discounts",
        ),
        ({"risk_fund": {"name": "GUARANTEE", "amount": 100}}, "risk_fund.name"),
        ({"risk_fund": {"name": "DEPOSIT", "amount": 99.5}}, "risk_fund.amount"),
        ({"risk_fund": {"name": "DEPOSIT", "amount": "9900"}}, "risk_fund.amount"),
        ({"risk_fund": {"name": "DEPOSIT", "amount": True}}, "risk_fund.amount"),
        ({"post_payments": [{"name": "租借费", "amount": 1.0}]}, "post_payments.0.amount"),
        ({"post_payments": [{"name": "租借费", "amount": -1}]}, "post_payments.0.amount"),
        ({"time_range": {"start_time": "2026-01-01"}}, "time_range.start_time"),
        ({"time_range": {"start_time": "20241345999900"}}, "time_range.start_time"),  # month 13, hour 99
        ({"time_range": {"start_time": "OnAccept", "end_time": "20260230120000"}}, "time_range.end_time"),
        ({"time_range": {}}, "time_range.start_time"),
        ({"out_order_no": "含中文"}, "out_order_no"),
        ({"out_order_no": "X" * 33}, "out_order_no"),
        ({"out_order_no": None}, "out_order_no"),
        ({"need_user_confirm": False}, "openid"),
        ({"need_user_confirm": "false", "openid": "oSbx1"}, "need_user_confirm"),
        ({"ask_unionid": True}, "face_sid"),
    ],
)
def test_create_refuses_bad_input_without_calling_wechat(ps, overrides, field):
    response = ps.create(**overrides) if "out_order_no" not in overrides else _create_raw(ps, overrides)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "INVALID_INPUT"
    assert _names(body["details"], field), body
    assert ps.upstream_calls() == []
    assert ServiceOrder.objects.count() == 0


def _names(details: dict, field: str) -> bool:
    """The error names the field (list-level errors come as `<field>.non_field_errors`)."""
    return any(key == field or key.startswith(field + ".") for key in details)


def _create_raw(ps, overrides):
    body = ps.create_body("PS0001")
    body.update(overrides)
    return ps.terminal.post("payscore/orders", {k: v for k, v in body.items() if v is not None})


def test_create_needs_a_configured_service_id(ps):
    ps.merchant.payscore_service_id = ""
    ps.merchant.save()
    response = ps.create()
    assert response.status_code == 409
    assert response.json()["code"] == "PAYSCORE_NOT_CONFIGURED"
    assert ps.upstream_calls() == []


def _in_service(ps, out_order_no="PS0001"):
    assert ps.create(out_order_no).status_code == 201
    sandbox.sandbox_payscore_user_confirm(out_order_no)
    ps.deliver()
    assert ps.order(out_order_no).state_description == "USER_CONFIRM"


def _assert_nothing_happened(ps, calls_before, events_before, state_before):
    assert ps.upstream_calls() == calls_before
    assert ServiceOrderEvent.objects.count() == events_before
    order = ps.order()
    assert (order.state, order.state_description, order.collection_state, order.pending_action) == state_before


def _snapshot(ps):
    order = ps.order()
    return (
        list(ps.upstream_calls()),
        ServiceOrderEvent.objects.count(),
        (order.state, order.state_description, order.collection_state, order.pending_action),
    )


def test_complete_only_in_doing_user_confirm(ps):
    ps.create()
    before = _snapshot(ps)
    response = ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(300))
    assert response.status_code == 409
    assert response.json()["code"] == "INVALID_ORDER_STATE"
    assert response.json()["details"] == {"state": "CREATED", "state_description": ""}
    _assert_nothing_happened(ps, *before)


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (
            {"post_payments": [{"name": "租借费", "amount": 300}], "total_amount": 200},
            400,
            "TOTAL_AMOUNT_MISMATCH",
            "total_amount",
        ),
        (
            {
                "post_payments": [{"name": "租借费", "amount": 500}],
                "post_discounts": [{"name": "新客", "description": "首单减2元", "amount": 200}],
                "total_amount": 200,
            },
            400,
            "TOTAL_AMOUNT_MISMATCH",
            "total_amount",
        ),
        (
            {"post_payments": [{"name": "租借费", "amount": 10000}], "total_amount": 10000},
            400,
            "TOTAL_EXCEEDS_RISK_FUND",
            "total_amount",
        ),
        (
            {"post_payments": [{"name": "租借费", "amount": 300}], "total_amount": 300.0},
            400,
            "INVALID_INPUT",
            "total_amount",
        ),
        (
            {"post_payments": [{"name": "租借费", "amount": "300"}], "total_amount": 300},
            400,
            "INVALID_INPUT",
            "post_payments.0.amount",
        ),
        ({"post_payments": [{"name": "租借费"}], "total_amount": 0}, 400, "INVALID_INPUT", "post_payments"),
        ({"post_payments": [], "total_amount": 0}, 400, "INVALID_INPUT", "post_payments"),
        (
            {"post_payments": [{"name": f"项目{i}", "amount": 1} for i in range(101)], "total_amount": 101},
            400,
            "INVALID_INPUT",
            "post_payments",
        ),
    ],
)
def test_complete_checks_amounts_before_calling_wechat(ps, body, status, code, field):
    _in_service(ps)
    before = _snapshot(ps)
    response = ps.terminal.post("payscore/orders/PS0001/complete", body)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert _names(response.json()["details"], field), response.json()
    _assert_nothing_happened(ps, *before)


def test_complete_accepts_discounts_that_add_up(ps):
    _in_service(ps)
    body = {
        "post_payments": [{"name": "租借费", "amount": 500, "count": 1}],
        "post_discounts": [{"name": "新客", "description": "首单减2元", "amount": 200}],
        "total_amount": 300,
    }
    response = ps.terminal.post("payscore/orders/PS0001/complete", body)
    assert response.status_code == 200, response.text
    order = ps.order()
    assert order.total_amount == 300
    assert order.post_discounts == [{"name": "新客", "description": "首单减2元", "amount": 200}]


def test_cancel_reason_and_state(ps):
    ps.create()
    before = _snapshot(ps)
    response = ps.terminal.post("payscore/orders/PS0001/cancel", {"reason": "长" * 51})
    assert response.status_code == 400
    assert "reason" in response.json()["details"]
    _assert_nothing_happened(ps, *before)

    assert ps.terminal.post("payscore/orders/PS0001/cancel", {"reason": "不用了"}).status_code == 200
    before = _snapshot(ps)
    again = ps.terminal.post("payscore/orders/PS0001/cancel", {"reason": "不用了"})
    assert again.status_code == 409
    assert again.json()["code"] == "INVALID_ORDER_STATE"
    _assert_nothing_happened(ps, *before)


def test_cancel_refused_once_done(ps):
    _in_service(ps)
    ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(300))
    sandbox.sandbox_payscore_user_pay("PS0001")
    ps.deliver()
    before = _snapshot(ps)
    response = ps.terminal.post("payscore/orders/PS0001/cancel", {"reason": "晚了"})
    assert response.status_code == 409
    _assert_nothing_happened(ps, *before)


def test_sync_only_after_merchant_complete(ps):
    _in_service(ps)
    before = _snapshot(ps)
    response = ps.terminal.post("payscore/orders/PS0001/sync", {"type": "Order_Paid", "paid_time": "20260101120000"})
    assert response.status_code == 409
    assert response.json()["code"] == "INVALID_ORDER_STATE"
    _assert_nothing_happened(ps, *before)

    ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(300))
    before = _snapshot(ps)
    for bad in (
        {"type": "Order_Paid", "paid_time": "2026-01-01"},
        {"type": "Order_Paid", "paid_time": "20261301250000"},  # shaped right, no such moment
        {"type": "Refund", "paid_time": "20260101120000"},
    ):
        response = ps.terminal.post("payscore/orders/PS0001/sync", bad)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "INVALID_INPUT"
    _assert_nothing_happened(ps, *before)


def test_an_amount_beyond_a_64_bit_integer_is_refused(ps):
    from payscore.models import ServiceOrder

    response = ps.create(risk_fund={"name": "DEPOSIT", "amount": 2**63})
    assert response.status_code == 400
    assert "risk_fund.amount" in response.json()["details"]
    assert not ServiceOrder.objects.exists()
