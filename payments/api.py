"""Terminal API for payments (device-signed) and the staff refund API (console session)."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import permissions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from payments import channels, selectors, services
from payments.models import Payment
from payments.representation import PaymentOutputSerializer, RefundOutputSerializer, payment_output
from portal import wakeup
from portal.api import ErrorSerializer, StrictIntegerField, TerminalApiView, Wait
from portal.errors import Forbidden
from portal.models import StaffMembership
from portal.selectors import membership_of


def _answer(payment: Payment, seconds: float, status_code: int) -> Response:
    """The order now; if it is still moving, a Response that `waiting_view` keeps open up to `seconds` for its
    outcome."""
    response = Response(payment_output(payment), status=status_code)
    if seconds > 0 and not services.payment_is_settled(payment):

        def refresh() -> tuple[dict, bool]:
            payment.refresh_from_db()
            return payment_output(payment), services.payment_is_settled(payment)

        response.wait = Wait(wakeup.topic_for("payment", payment.pk), seconds, refresh)
    return response


class AuthinfoApi(TerminalApiView):
    @extend_schema_serializer(component_name="AuthinfoRequest")
    class InputSerializer(serializers.Serializer):
        rawdata = serializers.CharField(max_length=2048, help_text="From the SDK's getWxpayfaceRawdata.")

    @extend_schema_serializer(component_name="Authinfo")
    class OutputSerializer(serializers.Serializer):
        authinfo = serializers.CharField()
        expires_in = serializers.IntegerField()
        appid = serializers.CharField(allow_blank=True)
        mch_id = serializers.CharField(allow_blank=True)
        sub_appid = serializers.CharField(allow_blank=True)
        sub_mch_id = serializers.CharField(allow_blank=True)
        store_id = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, 400: ErrorSerializer, 503: ErrorSerializer},
        summary="SDK call credential (authinfo) for getWxpayfaceCode",
        tags=["terminal"],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        info = services.authinfo_get(device=self.device, rawdata=serializer.validated_data["rawdata"])
        return Response({**info.__dict__, "store_id": self.device.store.store_id})


class PaymentCreateApi(TerminalApiView):
    @extend_schema_serializer(component_name="PaymentRequest")
    class InputSerializer(serializers.Serializer):
        out_trade_no = serializers.RegexField(
            services.OUT_TRADE_NO,
            max_length=32,
            required=False,
            allow_blank=True,
            default="",
            error_messages={"invalid": "1-32 characters of 0-9 A-Z a-z _ - | *."},
        )
        # Money is an integer in the JSON, never "100" or 1.0; WeChat's total_fee is an Int.
        total_fee = StrictIntegerField(min_value=1, max_value=2**31 - 1, help_text="Amount in fen.")
        body = serializers.CharField(max_length=128)
        auth_code = serializers.RegexField(
            services.FACE_CODE,  # the widest code shape; the merchant's channel narrows it in the service
            help_text="face_code, or the 18-digit payment code.",
            error_messages={"invalid": "A face_code or payment code: 1-128 letters, digits, '_' or '-'."},
        )
        method = serializers.ChoiceField(choices=Payment.Method.choices)
        openid = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
        attach = serializers.CharField(max_length=127, required=False, allow_blank=True, default="")

    @extend_schema(
        request=InputSerializer,
        responses={
            200: PaymentOutputSerializer,
            201: PaymentOutputSerializer,
            400: ErrorSerializer,
            409: ErrorSerializer,
        },
        summary="Charge a face_code or payment code; waits briefly for a definite outcome",
        tags=["terminal"],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = services.PaymentInput(**serializer.validated_data)
        # A place for the payment call is taken before the order exists: refused (503), nothing was created.
        with channels.request_slot(self.device.store.merchant):
            payment, created = services.payment_create(device=self.device, data=data)
            if created:
                payment = services.payment_submit(payment=payment, auth_code=data.auth_code)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return _answer(payment, settings.PAYMENT_WAIT_SECONDS, code)


class PaymentDetailApi(TerminalApiView):
    @extend_schema(
        parameters=[OpenApiParameter("wait", int, description="Long-poll up to N seconds while PAYING")],
        responses={200: PaymentOutputSerializer, 404: ErrorSerializer},
        tags=["terminal"],
        summary="The payment's current state",
    )
    def get(self, request, out_trade_no: str):
        payment = selectors.payment_for_device(device=self.device, out_trade_no=out_trade_no)
        try:
            wait = float(request.query_params.get("wait", 0))
        except ValueError:
            wait = 0.0
        if wait != wait:  # NaN
            wait = 0.0
        return _answer(payment, min(max(wait, 0.0), settings.PAYMENT_LONG_POLL_MAX_SECONDS), status.HTTP_200_OK)


class PaymentCancelApi(TerminalApiView):
    @extend_schema(
        request=None,
        responses={200: PaymentOutputSerializer, 409: ErrorSerializer},
        tags=["terminal"],
        summary="The user walked away: reverse the payment",
    )
    def post(self, request, out_trade_no: str):
        payment = selectors.payment_for_device(device=self.device, out_trade_no=out_trade_no)
        payment = services.payment_cancel(payment=payment)
        return Response(payment_output(payment))


# --- staff API -----------------------------------------------------------------------------------------------------


class CanRefund(permissions.BasePermission):
    """Provider admins, merchant admins and superusers refund; reviewers and merchant staff cannot."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if user.is_superuser:
            return True
        membership = membership_of(user)
        if membership is None or membership.role not in (
            StaffMembership.Role.PROVIDER_ADMIN,
            StaffMembership.Role.MERCHANT_ADMIN,
        ):
            raise Forbidden("Your role cannot refund.", code="ROLE_CANNOT_REFUND")
        return True


class StaffRefundCreateApi(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [CanRefund]

    @extend_schema_serializer(component_name="RefundRequest")
    class InputSerializer(serializers.Serializer):
        refund_fee = StrictIntegerField(min_value=1, help_text="fen")
        reason = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")
        request_key = serializers.RegexField(
            services.REQUEST_KEY,
            required=False,
            default="",
            help_text="Optional, recommended: your key for this refund (8-64 of 0-9 A-Z a-z _ -). Sending the same "
            "key again — a retry after a timeout — returns the refund it made instead of refunding twice; the same "
            "key with another amount is 409 REQUEST_KEY_CONFLICT.",
        )

    @extend_schema(
        request=InputSerializer,
        responses={201: RefundOutputSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        tags=["staff"],
        summary="Refund part or all",
    )
    def post(self, request, payment_id: int):
        payment = get_object_or_404(selectors.payments_visible_to(request.user), pk=payment_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        refund = services.refund_create(payment=payment, user=request.user, **serializer.validated_data)
        return Response(RefundOutputSerializer(refund).data, status=status.HTTP_201_CREATED)
