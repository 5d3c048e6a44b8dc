"""The merchant API (`/api/merchant/v1/`, docs/merchant-api.md): merchants' own servers read their payments, refunds
and reconciliation differences and ask for refunds. Every view works on the requesting client's merchant only."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from oauth2_provider.views import TokenView
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from payments.representation import RefundOutputSerializer, payment_output, refund_output
from payments.services import REQUEST_KEY
from portal.api import ErrorSerializer
from portal.errors import InvalidInput
from portal.models import Merchant
from reconciliation.services import difference_output

from . import selectors, services
from .authentication import (
    ClientRateThrottle,
    IsActiveMerchantClient,
    MerchantTokenAuthentication,
    TokenAddressThrottle,
)
from .models import MerchantApiClient
from .pagination import keyset_page
from .serializers import (
    DifferencePageSerializer,
    DifferenceQuerySerializer,
    OAuthErrorSerializer,
    PaymentDetailSerializer,
    PaymentPageSerializer,
    PaymentQuerySerializer,
    RefundRequestSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)

TAGS = ["merchant"]
_ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="INVALID_INPUT: `details` names each bad field."),
    401: OpenApiResponse(ErrorSerializer, description="No token, or one unknown, expired or revoked."),
    403: OpenApiResponse(ErrorSerializer, description="MERCHANT_SUSPENDED or PROVIDER_SUSPENDED."),
    404: OpenApiResponse(ErrorSerializer, description="Not found among this merchant's rows."),
    409: OpenApiResponse(ErrorSerializer, description="REQUEST_KEY_CONFLICT, NOT_REFUNDABLE, …"),
    429: OpenApiResponse(ErrorSerializer, description="Over the client's request rate; see Retry-After."),
}


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: _ERRORS[code] for code in (401, 403, 429, *codes)}


class MerchantApiView(APIView):
    """Base of the merchant endpoints: bearer token, active client of an active merchant, rate per client."""

    authentication_classes = [MerchantTokenAuthentication]
    permission_classes = [IsActiveMerchantClient]
    throttle_classes = [ClientRateThrottle]
    client: MerchantApiClient  # set by IsActiveMerchantClient

    @property
    def merchant(self) -> Merchant:
        return self.client.merchant

    def query(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.query_params)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


_token_view = TokenView.as_view()


class TokenApi(APIView):
    """django-oauth-toolkit's token endpoint, for the client-credentials grant only, bounded per client address."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes = [TokenAddressThrottle]

    @extend_schema(
        request={"application/x-www-form-urlencoded": TokenRequestSerializer},
        responses={
            200: TokenSerializer,
            400: OpenApiResponse(OAuthErrorSerializer, description="invalid_request, unsupported_grant_type, …"),
            401: OpenApiResponse(OAuthErrorSerializer, description="invalid_client: unknown client or wrong secret."),
            429: OpenApiResponse(ErrorSerializer, description="Too many token requests from this address."),
        },
        auth=[],
        summary="Get an access token (OAuth2 client credentials; client id and secret by HTTP Basic or form)",
        operation_id="merchant_oauth_token_create",
        tags=TAGS,
    )
    def post(self, request):
        grant_type = request._request.POST.get("grant_type", "")
        if grant_type != "client_credentials":
            error = "invalid_request" if not grant_type else "unsupported_grant_type"
            description = "This endpoint issues tokens for grant_type=client_credentials only (form-encoded)."
            return Response({"error": error, "error_description": description}, status=status.HTTP_400_BAD_REQUEST)
        return _token_view(request._request)


class PaymentListApi(MerchantApiView):
    @extend_schema(
        parameters=[PaymentQuerySerializer],
        responses={200: PaymentPageSerializer, **_errors(400)},
        summary="The merchant's payments, newest first, filtered, a page at a time",
        operation_id="merchant_payments_list",
        tags=TAGS,
    )
    def get(self, request):
        params = self.query(PaymentQuerySerializer)
        payments = selectors.payments_of(
            self.merchant,
            created_after=params.get("created_after"),
            created_before=params.get("created_before"),
            statuses=params.get("status", ()),
            store_id=params["store_id"],
            device_id=params["device_id"],
        )
        page = keyset_page(payments, key="created_at", cursor=params["cursor"], limit=params["limit"])
        return Response({"results": [payment_output(p) for p in page.rows], "next_cursor": page.next_cursor})


class PaymentDetailApi(MerchantApiView):
    @extend_schema(
        responses={200: PaymentDetailSerializer, **_errors(404)},
        summary="One payment with its refunds and its timeline",
        operation_id="merchant_payments_retrieve",
        tags=TAGS,
    )
    def get(self, request, out_trade_no: str):
        payment = selectors.payment_with_history(self.merchant, out_trade_no)
        return Response(PaymentDetailSerializer(payment).data)


IDEMPOTENCY_HEADER = "Idempotency-Key"


class RefundCreateApi(MerchantApiView):
    @extend_schema(
        request=RefundRequestSerializer,
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="The request key, if not in the body (both: they must be equal).",
            )
        ],
        responses={
            201: OpenApiResponse(RefundOutputSerializer, description="A new refund."),
            200: OpenApiResponse(RefundOutputSerializer, description="The refund this request key already made."),
            **_errors(400, 404, 409),
        },
        summary="Refund part or all of a payment (idempotent per request key)",
        operation_id="merchant_payments_refunds_create",
        tags=TAGS,
    )
    def post(self, request, out_trade_no: str):
        payment = selectors.payment_of(self.merchant, out_trade_no)
        serializer = RefundRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        body_key, header_key = data.get("request_key", ""), request.headers.get(IDEMPOTENCY_HEADER, "")
        if header_key and not REQUEST_KEY.match(header_key):
            raise InvalidInput(details={IDEMPOTENCY_HEADER: "8-64 characters of 0-9 A-Z a-z _ -."})
        if body_key and header_key and body_key != header_key:
            raise InvalidInput(details={"request_key": f"Differs from the {IDEMPOTENCY_HEADER} header."})
        refund, created = services.refund_create(
            client=self.client,
            payment=payment,
            refund_fee=data["refund_fee"],
            reason=data["reason"],
            request_key=body_key or header_key,
        )
        return Response(refund_output(refund), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class RefundDetailApi(MerchantApiView):
    @extend_schema(
        responses={200: RefundOutputSerializer, **_errors(404)},
        summary="One refund, with its payment's out_trade_no",
        operation_id="merchant_refunds_retrieve",
        tags=TAGS,
    )
    def get(self, request, out_refund_no: str):
        return Response(refund_output(selectors.refund_of(self.merchant, out_refund_no)))


class DifferenceListApi(MerchantApiView):
    @extend_schema(
        parameters=[DifferenceQuerySerializer],
        responses={200: DifferencePageSerializer, **_errors(400)},
        summary="The merchant's reconciliation differences, latest bill day first, a page at a time",
        operation_id="merchant_reconciliation_differences_list",
        tags=TAGS,
    )
    def get(self, request):
        params = self.query(DifferenceQuerySerializer)
        differences = selectors.differences_of(
            self.merchant,
            bill_date_from=params.get("bill_date_from"),
            bill_date_to=params.get("bill_date_to"),
            kinds=params.get("kind", ()),
            statuses=params.get("status", ()),
        )
        page = keyset_page(differences, key="bill_date", cursor=params["cursor"], limit=params["limit"])
        return Response({"results": [difference_output(d) for d in page.rows], "next_cursor": page.next_cursor})
