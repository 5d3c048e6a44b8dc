"""WeChat v2 answers in the payment lifecycle, against the sandbox: a genuine signed answer about another amount
under the same out_trade_no never settles this order."""

from __future__ import annotations

from payments import channels, services
from payments.gateways import wechatpay_v2
from payments.models import PaymentEvent

AUTH_CODE = "134567890123456789"


def test_a_genuine_paid_answer_for_another_amount_never_settles_the_order(shop):
    one_fen = wechatpay_v2.micropay(
        channels._wechat_config(shop.merchant),
        wechatpay_v2.MicropayRequest(
            out_trade_no="REPLAY1", total_fee=1, body="x", auth_code=AUTH_CODE, spbill_create_ip="127.0.0.1"
        ),
        client=channels.upstream_client,
    )
    assert one_fen.is_success  # WeChat really has REPLAY1 paid, for 1 fen
    data = services.PaymentInput(total_fee=2, body="b", auth_code=AUTH_CODE, method="CODE", out_trade_no="REPLAY1")
    payment, _ = services.payment_create(device=shop.device, data=data)  # its micropay never answered

    shop.run_worker(60)

    payment.refresh_from_db()
    assert payment.status != "SUCCESS" and payment.transaction_id == ""
    query = PaymentEvent.objects.filter(payment=payment, action="orderquery").first()
    assert (query.outcome, query.code) == ("TRANSIENT", "MISMATCH")
    assert "total_fee: 1 (expected 2)" in query.message
    assert query.response["trade_state"] == "SUCCESS"  # the evidence is kept
