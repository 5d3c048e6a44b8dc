"""Input validation for PayScore requests (terminal API, staff services' callers, management commands).

Limits are WeChat's (docs/protocols.md, "PayScore service orders"): service_introduction ≤20, attach ≤256,
≤100 post_payments, ≤30 post_discounts, risk_fund.name ∈ DEPOSIT|ADVANCE|CASH_DEPOSIT|ESTIMATE_ORDER_COST,
reason ≤50. Amounts are JSON integers in fen: "100", 1.0 and true are refused, never coerced.
"""

from __future__ import annotations

from datetime import datetime

from rest_framework import serializers

from payscore.models import OUT_ORDER_NO_PATTERN, ServiceOrder
from portal.api import StrictIntegerField

RISK_FUND_NAMES = tuple(ServiceOrder.RiskFund.values)
OPENID_PATTERN = r"^[0-9A-Za-z_\-]{1,128}$"


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "true or false (JSON boolean) is required."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class _Clean(serializers.Serializer):
    def to_representation(self, instance):  # pragma: no cover - inputs only
        return instance

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        # Drop absent optional values so what is sent upstream carries only what the caller gave.
        return {k: v for k, v in values.items() if v is not None and v != ""}


class PostPaymentSerializer(_Clean):
    name = serializers.CharField(max_length=20)
    amount = StrictIntegerField(min_value=0, required=False, help_text="fen")
    description = serializers.CharField(max_length=30, required=False, allow_blank=True)
    count = StrictIntegerField(min_value=1, required=False)


class PostDiscountSerializer(_Clean):
    name = serializers.CharField(max_length=20)
    description = serializers.CharField(max_length=30)
    amount = StrictIntegerField(min_value=0, required=False, help_text="fen")
    count = StrictIntegerField(min_value=1, required=False)


class RiskFundSerializer(_Clean):
    name = serializers.ChoiceField(choices=RISK_FUND_NAMES)
    amount = StrictIntegerField(min_value=1, help_text="fen")
    description = serializers.CharField(max_length=30, required=False, allow_blank=True)


class WechatTimeField(serializers.RegexField):
    """yyyyMMddHHmmss that is a real moment (not 20241345999900); `also` lists literal words allowed too."""

    def __init__(self, *, also: tuple[str, ...] = (), **kwargs):
        self.also = also
        words = "".join(f"|{word}" for word in also)
        kwargs.setdefault("help_text", "yyyyMMddHHmmss" + "".join(f" or {word}" for word in also))
        super().__init__(rf"^(\d{{14}}{words})$", max_length=14, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value not in self.also:
            try:
                datetime.strptime(value, "%Y%m%d%H%M%S")
            except ValueError:
                raise serializers.ValidationError("Not a real date and time (yyyyMMddHHmmss).") from None
        return value


class TimeRangeSerializer(_Clean):
    start_time = WechatTimeField(also=("OnAccept",), required=False)
    start_time_remark = serializers.CharField(max_length=20, required=False, allow_blank=True)
    end_time = WechatTimeField(required=False)
    end_time_remark = serializers.CharField(max_length=20, required=False, allow_blank=True)


class LocationSerializer(_Clean):
    start_location = serializers.CharField(max_length=50, required=False, allow_blank=True)
    end_location = serializers.CharField(max_length=50, required=False, allow_blank=True)


class ServiceOrderCreateSerializer(_Clean):
    out_order_no = serializers.RegexField(
        OUT_ORDER_NO_PATTERN,
        max_length=32,
        help_text="Required: the out_trade_no the terminal passed to getUserPayScoreStatus (1-32 of 0-9A-Za-z_-|*).",
        error_messages={"invalid": "1-32 characters of 0-9 A-Z a-z _ - | *."},
    )
    service_introduction = serializers.CharField(max_length=20)
    risk_fund = RiskFundSerializer()
    time_range = TimeRangeSerializer()
    post_payments = PostPaymentSerializer(many=True, required=False, max_length=100)
    post_discounts = PostDiscountSerializer(many=True, required=False, max_length=30)
    location = LocationSerializer(required=False)
    attach = serializers.CharField(max_length=256, required=False, allow_blank=True)
    openid = serializers.RegexField(OPENID_PATTERN, required=False, help_text="Required when need_user_confirm=false.")
    need_user_confirm = StrictBooleanField(required=False, default=True)
    face_sid = serializers.CharField(max_length=256, required=False, allow_blank=True, help_text="SDK face_sid.")
    ask_unionid = StrictBooleanField(required=False, default=False, help_text="Look the union_id up by face_sid.")

    def validate_time_range(self, value):
        if not value.get("start_time"):
            raise serializers.ValidationError({"start_time": "Required: yyyyMMddHHmmss or OnAccept."})
        return value

    def validate(self, attrs):
        if attrs.get("need_user_confirm") is False and not attrs.get("openid"):
            raise serializers.ValidationError({"openid": "Required when need_user_confirm is false."})
        if attrs.get("ask_unionid") and not attrs.get("face_sid"):
            raise serializers.ValidationError({"face_sid": "Required when ask_unionid is true."})
        return attrs


class ServiceOrderCompleteSerializer(_Clean):
    post_payments = PostPaymentSerializer(many=True, min_length=1, max_length=100)
    post_discounts = PostDiscountSerializer(many=True, required=False, max_length=30)
    total_amount = StrictIntegerField(min_value=0, help_text="fen = Σ post_payments − Σ post_discounts")
    time_range = TimeRangeSerializer(required=False)
    location = LocationSerializer(required=False)

    def validate_post_payments(self, value):
        for index, item in enumerate(value):
            if "amount" not in item:
                raise serializers.ValidationError(f"Item {index} has no amount; every item needs one (fen).")
        return value


class ServiceOrderCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=50)


class ServiceOrderSyncSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["Order_Paid"], default="Order_Paid", required=False)
    paid_time = WechatTimeField(help_text="yyyyMMddHHmmss (China time)")


def validated(serializer_class: type[serializers.Serializer], data) -> dict:
    """Run a serializer, raising DRF's ValidationError (mapped to INVALID_INPUT with per-field details)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
