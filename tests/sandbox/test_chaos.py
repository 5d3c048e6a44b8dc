"""Chaos mode: off by default; when on, the client sees an unknown outcome while the sandbox's book keeps the truth."""

from __future__ import annotations

import socket

import httpx
import pytest
from django.test import RequestFactory

from payments.gateways import umpay
from payments.gateways import wechatpay_v2 as v2
from payments.gateways.base import Outcome
from sandbox import chaos, services
from sandbox.models import SandboxUmpayOrder, SandboxWechatOrder

from .conftest import AUTH_CODE, v2_config

pytestmark = pytest.mark.django_db


class ScriptedRng:
    """random() answers from a script (then 0.0); choice() and uniform() are fixed."""

    def __init__(self, *randoms: float, kind: str = "", uniform: float = 0.0) -> None:
        self.randoms, self.kind, self.uniform_value = list(randoms), kind, uniform
        self.calls = 0

    def random(self) -> float:
        self.calls += 1
        return self.randoms.pop(0) if self.randoms else 0.0

    def choice(self, options):
        return self.kind or options[0]

    def uniform(self, low: float, high: float) -> float:
        return self.uniform_value


class SocketLikeTransport(httpx.BaseTransport):
    """A server whose app dies mid-body closes the connection: the client sees a protocol error, not the OSError."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.inner.handle_request(request)
        except OSError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc


@pytest.fixture
def chaos_on(settings, monkeypatch):
    def switch(kind: str, *randoms: float, uniform: float = 0.0) -> ScriptedRng:
        settings.SANDBOX_CHAOS = f"1.0:{kind}"
        rng = ScriptedRng(*randoms, kind=kind, uniform=uniform)
        monkeypatch.setattr(chaos, "rng", rng)
        return rng

    return switch


def pay(http_client, out_trade_no: str = "C1", total_fee: int = 1000):
    return v2.micropay(
        v2_config(),
        v2.MicropayRequest(
            out_trade_no=out_trade_no,
            total_fee=total_fee,
            body="coffee",
            auth_code=AUTH_CODE,
            spbill_create_ip="1.2.3.4",
        ),
        client=http_client,
    )


def umf_pay(config, http_client, order_no: str = "UC1", amount: int = 1000):
    request = umpay.MicropayRequest(
        order_no=order_no, txn_amt=amount, auth_code=AUTH_CODE, goods_id="g1", goods_info="noodles", is_face_pay=True
    )
    return umpay.micropay(config, request, client=http_client)


# --- configuration -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", chaos.ChaosConfig(0.0, chaos.KINDS)),
        ("0.2", chaos.ChaosConfig(0.2, chaos.KINDS)),
        ("0.1:timeout, 5xx", chaos.ChaosConfig(0.1, ("timeout", "5xx"))),
        ("1:RESET", chaos.ChaosConfig(1.0, ("reset",))),
    ],
)
def test_parse(value, expected):
    assert chaos.parse(value) == expected


@pytest.mark.parametrize("value", ["lots", "1.5", "-0.1", "0.2:explode"])
def test_parse_refuses_nonsense(value):
    with pytest.raises(ValueError, match="SANDBOX_CHAOS"):
        chaos.parse(value)


def test_off_by_default_never_draws(settings, monkeypatch, wechat_merchant, http_client):
    settings.SANDBOX_CHAOS = ""
    rng = ScriptedRng()
    monkeypatch.setattr(chaos, "rng", rng)

    paid = pay(http_client)

    assert paid.outcome is Outcome.SUCCESS
    assert rng.calls == 0


def test_fraction_decides_per_call(settings, monkeypatch):
    settings.SANDBOX_CHAOS = "0.25:5xx"
    monkeypatch.setattr(chaos, "rng", ScriptedRng(0.24, 0.25, 0.9))

    assert [chaos.pick(), chaos.pick(), chaos.pick()] == ["5xx", None, None]


# --- WeChat v2 -----------------------------------------------------------------------------------------------------


def test_timeout_after_charging(wechat_merchant, http_client, sandbox_clock, chaos_on):
    chaos_on("timeout")

    paid = pay(http_client)

    assert (paid.outcome, paid.code) == (Outcome.UNKNOWN, "TIMEOUT")
    assert sandbox_clock.slept == [15.0]
    assert services.sandbox_ledger()["C1"]["charged"] == 1000


def test_5xx_before_processing_charges_nothing(wechat_merchant, http_client, chaos_on):
    chaos_on("5xx", 0.0, 0.4)  # picked; then < 0.5: fail before processing

    paid = pay(http_client)

    assert (paid.outcome, paid.code) == (Outcome.UNKNOWN, "HTTP_500")
    assert not SandboxWechatOrder.objects.exists()


def test_5xx_after_processing_has_charged(wechat_merchant, http_client, chaos_on):
    chaos_on("5xx", 0.0, 0.6)  # picked; then ≥ 0.5: fail after processing

    paid = pay(http_client)

    assert (paid.outcome, paid.code) == (Outcome.UNKNOWN, "HTTP_500")
    assert services.sandbox_ledger()["C1"]["charged"] == 1000


def test_bad_signature_is_unknown_not_success(wechat_merchant, http_client, chaos_on):
    chaos_on("bad_signature")

    paid = pay(http_client)

    assert (paid.outcome, paid.code) == (Outcome.UNKNOWN, "BAD_SIGNATURE")
    assert services.sandbox_ledger()["C1"]["charged"] == 1000


def test_reset_after_charging(wechat_merchant, wsgi_transport, sandbox_clock, chaos_on):
    chaos_on("reset")
    with httpx.Client(transport=SocketLikeTransport(wsgi_transport)) as client:
        paid = pay(client)

    assert (paid.outcome, paid.code) == (Outcome.UNKNOWN, "NETWORK_ERROR")
    assert services.sandbox_ledger()["C1"]["charged"] == 1000


def test_delay_then_normal_answer(wechat_merchant, http_client, sandbox_clock, chaos_on, settings):
    settings.SANDBOX_CHAOS_DELAY_SECONDS = 3
    chaos_on("delay", uniform=1.5)

    paid = pay(http_client)

    assert paid.outcome is Outcome.SUCCESS
    assert sandbox_clock.slept == [1.5]


def test_query_with_5xx_is_transient_and_changes_nothing(wechat_merchant, http_client, chaos_on, settings):
    pay(http_client)
    chaos_on("5xx", 0.0, 0.9)

    queried = v2.orderquery(v2_config(), v2.OrderQueryRequest(out_trade_no="C1"), client=http_client)

    assert (queried.outcome, queried.code) == (Outcome.TRANSIENT, "HTTP_500")
    assert SandboxWechatOrder.objects.get(out_trade_no="C1").state == "SUCCESS"


def test_reverse_that_times_out_still_reversed(wechat_merchant, http_client, sandbox_clock, chaos_on):
    pay(http_client)
    chaos_on("timeout")

    reversed_ = v2.reverse(v2_config(), v2.ReverseRequest(out_trade_no="C1"), client=http_client)

    assert reversed_.outcome is Outcome.UNKNOWN
    assert services.sandbox_ledger()["C1"] == {
        "channel": "wechat",
        "charged": 0,
        "refunded": 0,
        "refund_pending": 0,
        "state": "REVOKED",
    }


def test_unauthenticated_calls_are_refused_not_chaotic(wechat_merchant, http_client, chaos_on):
    rng = chaos_on("5xx")

    refused = v2.micropay(
        v2_config(api_key="x" * 32),
        v2.MicropayRequest(
            out_trade_no="C1", total_fee=1000, body="coffee", auth_code=AUTH_CODE, spbill_create_ip="1.2.3.4"
        ),
        client=http_client,
    )

    assert (refused.outcome, refused.code) == (Outcome.REJECTED, "FAIL")
    assert rng.calls == 0


def test_face_authinfo_is_never_chaotic(wechat_merchant, http_client, chaos_on):
    rng = chaos_on("5xx")

    info = v2.get_wxpayface_authinfo(
        v2_config(),
        v2.FaceAuthinfoRequest(store_id="S1", store_name="store", device_id="D1", rawdata="raw"),
        client=http_client,
    )

    assert info.outcome is Outcome.SUCCESS
    assert rng.calls == 0


# --- UMF -----------------------------------------------------------------------------------------------------------


def test_umf_bad_signature_after_charging(umpay_config, http_client, chaos_on):
    chaos_on("bad_signature")

    paid = umf_pay(umpay_config, http_client)

    assert paid.outcome is Outcome.UNKNOWN
    assert paid.code == "BAD_SIGNATURE"
    assert services.sandbox_ledger()["UC1"]["charged"] == 1000


def test_umf_timeout_after_charging(umpay_config, http_client, sandbox_clock, chaos_on):
    chaos_on("timeout")

    paid = umf_pay(umpay_config, http_client)

    assert (paid.outcome, paid.code) == (Outcome.UNKNOWN, "TIMEOUT")
    assert SandboxUmpayOrder.objects.get(order_no="UC1").paid_at is not None


def test_umf_cancel_with_5xx_after_processing_is_cancelled(umpay_config, http_client, chaos_on):
    umf_pay(umpay_config, http_client)
    chaos_on("5xx", 0.0, 0.9)

    cancelled = umpay.cancel_order(umpay_config, order_no="UC1", client=http_client)

    assert cancelled.outcome is Outcome.UNKNOWN
    assert services.sandbox_ledger()["UC1"]["charged"] == 0


# --- dropping the connection under gunicorn ------------------------------------------------------------------------


def test_drop_connection_closes_the_gunicorn_socket():
    server_side, client_side = socket.socketpair()
    try:
        request = RequestFactory().post("/sandbox/wechatpay/pay/micropay")
        request.META["gunicorn.socket"] = server_side

        chaos._drop_connection(request)

        client_side.settimeout(2)
        assert client_side.recv(10) == b""  # the peer sees the connection end with no answer
    finally:
        server_side.close()
        client_side.close()
