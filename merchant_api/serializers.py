"""What the merchant API reads from a request (query filters, the refund body) and what it answers. A payment and a
refund have the shape the terminal API and the webhooks give them (`payments.representation`), a difference the
shape of the reconciliation webhooks (`reconciliation.services.difference_output`)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from payments.models import PaymentEvent, PaymentStatus
from payments.representation import PaymentOutputSerializer, RefundOutputSerializer, payment_output
from payments.services import REQUEST_KEY
from portal.api import StrictIntegerField
from reconciliation.models import Difference, DifferenceKind

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class ChoicesField(serializers.ListField):
    """One or more choices: a repeated query parameter (`status=A&status=B`), comma-separated values, or both."""

    def __init__(self, *, choices, **kwargs):
        super().__init__(child=serializers.ChoiceField(choices=choices), allow_empty=True, **kwargs)

    def to_internal_value(self, data):
        values = [part.strip() for item in data for part in str(item).split(",") if part.strip()]
        return sorted(set(super().to_internal_value(values)))


class PageQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT, help_text="Rows per page, 1-200."
    )
    cursor = serializers.CharField(
        required=False, default="", max_length=200, help_text="next_cursor of the previous page; absent for the first."
    )


class PaymentQuerySerializer(PageQuerySerializer):
    created_after = serializers.DateTimeField(
        required=False, help_text="ISO-8601 date-time (China time without an offset); inclusive."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="ISO-8601 date-time (China time without an offset); exclusive."
    )
    status = ChoicesField(
        choices=PaymentStatus.choices, required=False, help_text="One or more statuses (repeat it, or comma-separate)."
    )
    store_id = serializers.CharField(required=False, default="", max_length=32, help_text="The store's store_id.")
    device_id = serializers.CharField(required=False, default="", max_length=32, help_text="The terminal's device_id.")

    def validate(self, attrs):
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after is not None and before is not None and after >= before:
            raise serializers.ValidationError({"created_before": "Must be later than created_after."})
        return attrs


class DifferenceQuerySerializer(PageQuerySerializer):
    bill_date_from = serializers.DateField(required=False, help_text="First bill day (YYYY-MM-DD), inclusive.")
    bill_date_to = serializers.DateField(required=False, help_text="Last bill day (YYYY-MM-DD), inclusive.")
    kind = ChoicesField(choices=DifferenceKind.choices, required=False, help_text="One or more kinds.")
    status = ChoicesField(
        choices=Difference.Status.choices,
        required=False,
        help_text="OPEN (not settled yet), EXPLAINED (staff wrote why), CLOSED (gone on a later run); one or more.",
    )

    def validate(self, attrs):
        first, last = attrs.get("bill_date_from"), attrs.get("bill_date_to")
        if first is not None and last is not None and first > last:
            raise serializers.ValidationError({"bill_date_to": "Must not be before bill_date_from."})
        return attrs


@extend_schema_serializer(component_name="MerchantRefundRequest")
class RefundRequestSerializer(serializers.Serializer):
    refund_fee = StrictIntegerField(min_value=1, help_text="Amount to refund, in fen (JSON integer).")
    reason = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")
    request_key = serializers.RegexField(
        REQUEST_KEY,
        required=False,
        help_text="Your idempotency key for this refund (8-64 of 0-9 A-Z a-z _ -); required here or in the "
        "Idempotency-Key header. The same key again returns the refund it made (200); with another amount it is "
        "409 REQUEST_KEY_CONFLICT.",
        error_messages={"invalid": "8-64 characters of 0-9 A-Z a-z _ -."},
    )


# --- answers -------------------------------------------------------------------------------------------------------


@extend_schema_serializer(component_name="MerchantPaymentEvent")
class TimelineEventSerializer(serializers.ModelSerializer):
    out_refund_no = serializers.CharField(
        source="refund.out_refund_no", default=None, allow_null=True, help_text="The refund this event is about."
    )

    class Meta:
        model = PaymentEvent
        fields = [
            "created_at", "action", "from_status", "to_status", "outcome", "code", "message", "actor", "out_refund_no",
        ]  # fmt: skip


@extend_schema_serializer(component_name="MerchantPaymentHistory")
class PaymentHistorySerializer(serializers.Serializer):
    refunds = RefundOutputSerializer(many=True, help_text="Oldest first.")
    timeline = TimelineEventSerializer(many=True, source="events", help_text="What happened, oldest first.")


class PaymentDetailSerializer(PaymentHistorySerializer):
    """The payment as the terminal API shows it, with its refunds and its timeline: PaymentOutput's fields and
    PaymentHistory's side by side (in OpenAPI, allOf the two: merchant_api.schema)."""

    def to_representation(self, instance):
        return {**payment_output(instance), **super().to_representation(instance)}


@extend_schema_serializer(component_name="MerchantPaymentPage")
class PaymentPageSerializer(serializers.Serializer):
    results = PaymentOutputSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page; null: done.")


@extend_schema_field({"type": "object", "additionalProperties": True, "nullable": True})
class _EvidenceField(serializers.JSONField):
    pass


@extend_schema_serializer(component_name="MerchantDifference")
class DifferenceSerializer(serializers.Serializer):
    """Documents `reconciliation.services.difference_output`, the dict the API answers with."""

    bill_date = serializers.DateField()
    kind = serializers.ChoiceField(choices=DifferenceKind.choices)
    status = serializers.ChoiceField(choices=Difference.Status.choices)
    out_trade_no = serializers.CharField()
    out_refund_no = serializers.CharField(allow_blank=True, help_text="Refund differences only.")
    transaction_id = serializers.CharField(allow_blank=True)
    ours = _EvidenceField(help_text="Our record (status, amounts in fen), null when we have none.")
    theirs = _EvidenceField(help_text="The channel's bill row (amounts in fen), null when the bill has none.")
    note = serializers.CharField(allow_blank=True, help_text="The service provider's explanation, if any.")
    created_at = serializers.DateTimeField()


@extend_schema_serializer(component_name="MerchantDifferencePage")
class DifferencePageSerializer(serializers.Serializer):
    results = DifferenceSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for the next page; null: done.")


# --- the token endpoint (OAuth2's own shapes, RFC 6749 §4.4, §5) ---------------------------------------------------


@extend_schema_serializer(component_name="MerchantTokenRequest")
class TokenRequestSerializer(serializers.Serializer):
    grant_type = serializers.ChoiceField(choices=["client_credentials"])
    client_id = serializers.CharField(required=False, help_text="Unless sent with HTTP Basic authentication.")
    client_secret = serializers.CharField(required=False, help_text="Unless sent with HTTP Basic authentication.")


@extend_schema_serializer(component_name="MerchantToken")
class TokenSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.ChoiceField(choices=["Bearer"])
    expires_in = serializers.IntegerField(help_text="Seconds.")
    scope = serializers.CharField()


@extend_schema_serializer(component_name="OAuthError")
class OAuthErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="invalid_client, invalid_request, unsupported_grant_type, …")
    error_description = serializers.CharField(required=False)
