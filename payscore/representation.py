"""How a PayScore service order looks from outside: the terminal API's answers and the webhooks' event data."""

from __future__ import annotations

from rest_framework import serializers

from payscore.models import ServiceOrder


class ServiceOrderOutputSerializer(serializers.ModelSerializer):
    store_id = serializers.CharField(source="store.store_id")
    device_id = serializers.CharField(source="device.device_id", default="")
    is_final = serializers.BooleanField(read_only=True)
    confirming = serializers.SerializerMethodField(help_text="The outcome of `pending_action` is being confirmed.")

    class Meta:
        model = ServiceOrder
        fields = [
            "out_order_no",
            "service_id",
            "state",
            "state_description",
            "collection_state",
            "is_final",
            "confirming",
            "pending_action",
            "order_id",
            "package",
            "openid",
            "union_id",
            "service_introduction",
            "need_user_confirm",
            "risk_fund",
            "time_range",
            "location",
            "post_payments",
            "post_discounts",
            "attach",
            "total_amount",
            "paid_amount",
            "transaction_ids",
            "last_error_code",
            "last_error_message",
            "last_synced_at",
            "store_id",
            "device_id",
            "created_at",
        ]

    def get_confirming(self, order: ServiceOrder) -> bool:
        return bool(order.pending_action)


def service_order_output(order: ServiceOrder) -> dict:
    return dict(ServiceOrderOutputSerializer(order).data)
