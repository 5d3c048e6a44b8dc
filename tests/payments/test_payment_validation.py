"""Bad payment input gets a clear error naming the field and changes nothing (no order, no upstream call)."""

import pytest

from payments import channels
from payments.models import Payment
from portal.models import Merchant
from tests.factories import MerchantFactory, StoreFactory, make_device

pytestmark = pytest.mark.django_db

GOOD = {"total_fee": 100, "body": "咖啡", "auth_code": "134567890123456789", "method": "CODE"}


@pytest.fixture(autouse=True)
def no_upstream(monkeypatch):
    calls = []

    def refuse(**kwargs):
        calls.append(kwargs)
        raise AssertionError("validation must fail before any upstream call")

    monkeypatch.setattr(channels, "charge", refuse)
    return calls


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total_fee": 0}, "total_fee"),
        ({"total_fee": -5}, "total_fee"),
        ({"total_fee": "100"}, "total_fee"),
        ({"total_fee": 1.5}, "total_fee"),
        ({"total_fee": True}, "total_fee"),
        ({"out_trade_no": "has space"}, "out_trade_no"),
        ({"out_trade_no": "x" * 33}, "out_trade_no"),
        ({"out_trade_no": "订单1"}, "out_trade_no"),
        ({"body": "x" * 129}, "body"),
        ({"auth_code": "193456789012345678"}, "auth_code"),  # 19 is outside the 10-15 prefixes
        ({"auth_code": "16456789012345678"}, "auth_code"),  # 17 digits
        ({"auth_code": "284567890123456789"}, "auth_code"),  # Alipay code on a WeChat merchant
        ({"method": "CARD"}, "method"),
        ({"attach": "a" * 128}, "attach"),
    ],
)
def test_invalid_field_is_named_and_nothing_is_created(terminal, change, field):
    response = terminal.post("payments", {**GOOD, **change})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "INVALID_INPUT"
    assert field in body["details"]
    assert Payment.objects.count() == 0


def test_missing_fields_are_all_named(terminal):
    response = terminal.post("payments", {})
    assert response.status_code == 400
    assert set(response.json()["details"]) == {"total_fee", "body", "auth_code", "method"}


@pytest.fixture
def umpay_terminal(wsgi_transport):
    from payments.terminal_client import TerminalClient

    merchant = MerchantFactory(channel=Merchant.Channel.UMPAY, umpay_acq_mer_id="41509208")
    device, secret = make_device(StoreFactory(merchant=merchant))
    return TerminalClient("http://testserver", device_id=device.device_id, secret=secret, transport=wsgi_transport)


@pytest.mark.parametrize(
    ("code", "method", "expected"),
    [
        ("284567890123456789", "CODE", None),  # Alipay 25-30 prefix, 18 digits: accepted
        ("6212345678901234567", "CODE", None),  # UnionPay 62 prefix, 19 digits
        ("6212345678901234", "CODE", "auth_code"),  # UnionPay too short
        ("31456789012345678", "CODE", "auth_code"),  # 31 prefix: nobody's
        ("284567890123456789", "FACE", "auth_code"),  # UMF face pay needs the 18-digit WeChat code
        ("not-a-number", "FACE", "auth_code"),
    ],
)
def test_umpay_code_patterns(umpay_terminal, monkeypatch, code, method, expected):
    sent = []
    monkeypatch.setattr(
        channels,
        "charge",
        lambda **kw: sent.append(kw) or channels.Answer(outcome=channels.Outcome.REJECTED, code="TEST_STOP"),
    )
    response = umpay_terminal.post("payments", {**GOOD, "auth_code": code, "method": method})
    if expected:
        assert response.status_code == 400
        assert expected in response.json()["details"]
        assert sent == []
    else:
        assert response.status_code == 201, response.text
        assert len(sent) == 1


def test_umpay_wallet_is_detected_from_the_code(umpay_terminal, monkeypatch):
    monkeypatch.setattr(
        channels, "charge", lambda **kw: channels.Answer(outcome=channels.Outcome.REJECTED, code="TEST_STOP")
    )
    umpay_terminal.post("payments", {**GOOD, "auth_code": "6212345678901234567", "out_trade_no": "U1"})
    umpay_terminal.post("payments", {**GOOD, "auth_code": "284567890123456789", "out_trade_no": "U2"})
    assert dict(Payment.objects.values_list("out_trade_no", "wallet")) == {"U1": "UNIONPAY", "U2": "ALIPAY"}
