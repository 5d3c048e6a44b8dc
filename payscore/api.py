"""Terminal API for PayScore service orders (device-signed, under /api/terminal/v1/payscore/…).

Answers carry the order. HTTP 202 with `"confirming": true` means WeChat's answer to the last call was lost (timeout
or similar): the order is being re-queried and `pending_action` names the call whose outcome is being confirmed;
poll `GET payscore/orders/{out_order_no}`.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from payscore import inputs, selectors, services
from payscore.models import ServiceOrder
from payscore.representation import ServiceOrderOutputSerializer
from portal.api import ErrorSerializer, TerminalApiView


class ServiceOrderCreateOutputSerializer(ServiceOrderOutputSerializer):
    unionid_lookup = serializers.CharField(help_text="NOT_REQUESTED, SUCCESS or FAILED (failures never fail create).")

    class Meta(ServiceOrderOutputSerializer.Meta):
        fields = [*ServiceOrderOutputSerializer.Meta.fields, "unionid_lookup"]


def _order_response(order: ServiceOrder, *, ok_status: int = status.HTTP_200_OK, extra: dict | None = None):
    data = dict(ServiceOrderOutputSerializer(order).data)
    data.update(extra or {})
    return Response(data, status=status.HTTP_202_ACCEPTED if order.pending_action else ok_status)


_RESPONSES = {200: ServiceOrderOutputSerializer, 202: ServiceOrderOutputSerializer, 400: ErrorSerializer}


class ServiceOrderCreateApi(TerminalApiView):
    @extend_schema(
        request=inputs.ServiceOrderCreateSerializer,
        responses={
            201: ServiceOrderCreateOutputSerializer,
            200: ServiceOrderCreateOutputSerializer,
            202: ServiceOrderCreateOutputSerializer,
            400: ErrorSerializer,
            409: ErrorSerializer,
        },
        summary="Create a PayScore service order (after getUserPayScoreStatus returned the openid)",
        tags=["terminal"],
    )
    def post(self, request):
        data = inputs.validated(inputs.ServiceOrderCreateSerializer, request.data)
        result = services.service_order_create(device=self.device, data=services.CreateInput.from_validated(data))
        return _order_response(
            result.order,
            ok_status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
            extra={"unionid_lookup": result.unionid_lookup},
        )


class ServiceOrderDetailApi(TerminalApiView):
    @extend_schema(
        responses={200: ServiceOrderOutputSerializer, 202: ServiceOrderOutputSerializer, 404: ErrorSerializer},
        summary="The service order; re-queried from WeChat when the last answer is older than a few seconds",
        tags=["terminal"],
    )
    def get(self, request, out_order_no: str):
        order = selectors.service_order_for_device(device=self.device, out_order_no=out_order_no)
        return _order_response(services.service_order_refresh_if_stale(order=order))


class ServiceOrderCompleteApi(TerminalApiView):
    @extend_schema(
        request=inputs.ServiceOrderCompleteSerializer,
        responses={**_RESPONSES, 404: ErrorSerializer, 409: ErrorSerializer},
        summary="Complete (完结): WeChat then collects total_amount from the user",
        tags=["terminal"],
    )
    def post(self, request, out_order_no: str):
        order = selectors.service_order_for_device(device=self.device, out_order_no=out_order_no)
        data = inputs.validated(inputs.ServiceOrderCompleteSerializer, request.data)
        return _order_response(services.service_order_complete(order=order, data=data, device=self.device))


class ServiceOrderCancelApi(TerminalApiView):
    @extend_schema(
        request=inputs.ServiceOrderCancelSerializer,
        responses={**_RESPONSES, 404: ErrorSerializer, 409: ErrorSerializer},
        summary="Cancel (取消) a CREATED or DOING service order",
        tags=["terminal"],
    )
    def post(self, request, out_order_no: str):
        order = selectors.service_order_for_device(device=self.device, out_order_no=out_order_no)
        data = inputs.validated(inputs.ServiceOrderCancelSerializer, request.data)
        return _order_response(services.service_order_cancel(order=order, reason=data["reason"]))


class ServiceOrderSyncApi(TerminalApiView):
    @extend_schema(
        request=inputs.ServiceOrderSyncSerializer,
        responses={**_RESPONSES, 404: ErrorSerializer, 409: ErrorSerializer},
        summary="Sync Order_Paid: the user paid another way after the order was completed",
        tags=["terminal"],
    )
    def post(self, request, out_order_no: str):
        order = selectors.service_order_for_device(device=self.device, out_order_no=out_order_no)
        data = inputs.validated(inputs.ServiceOrderSyncSerializer, request.data)
        return _order_response(services.service_order_sync(order=order, paid_time=data["paid_time"]))
