"""How a payment and a refund look from outside: the terminal API's answers, the merchant API and the webhooks'
event data all use these, so a merchant's systems see one shape everywhere."""

from __future__ import annotations

from rest_framework import serializers

from payments.models import UNSETTLED_PAYMENT_STATUSES, Payment, Refund


class PaymentOutputSerializer(serializers.ModelSerializer):
    store_id = serializers.CharField(source="store.store_id")
    device_id = serializers.CharField(source="device.device_id", default="")
    is_final = serializers.SerializerMethodField()

    class Meta:
        model = Payment
        fields = [
            "out_trade_no",
            "status",
            "is_final",
            "total_fee",
            "refunded_fee",
            "method",
            "wallet",
            "channel",
            "transaction_id",
            "openid",
            "err_code",
            "err_message",
            "store_id",
            "device_id",
            "paid_at",
            "created_at",
        ]

    def get_is_final(self, payment: Payment) -> bool:
        return payment.status not in UNSETTLED_PAYMENT_STATUSES


_payment_output = PaymentOutputSerializer()


def payment_output(payment: Payment) -> dict:
    """The terminal's view of a payment. One serializer instance serves every request: a ModelSerializer builds its
    fields on first use (a noticeable share of a payment request's CPU); turning a row into a dict is
    stateless."""
    return _payment_output.to_representation(payment)


class RefundOutputSerializer(serializers.ModelSerializer):
    out_trade_no = serializers.CharField(source="payment.out_trade_no", read_only=True)

    class Meta:
        model = Refund
        fields = [
            "out_refund_no",
            "out_trade_no",
            "refund_fee",
            "reason",
            "kind",
            "status",
            "refund_id",
            "request_key",
            "err_code",
            "err_message",
            "created_at",
        ]


_refund_output = RefundOutputSerializer()


def refund_output(refund: Refund) -> dict:
    return _refund_output.to_representation(refund)
