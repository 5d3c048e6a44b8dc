"""OpenAPI description of the merchant API: its authentication (OAuth2 client credentials against its own token
endpoint, with the scopes of OAUTH2_PROVIDER) and a payment's detail as the terminal's payment plus its history."""

from django.urls import reverse
from drf_spectacular.contrib.django_oauth_toolkit import DjangoOAuthToolkitScheme
from drf_spectacular.extensions import OpenApiSerializerExtension
from oauth2_provider.scopes import get_scopes_backend

from payments.representation import PaymentOutputSerializer

from .serializers import PaymentHistorySerializer


class MerchantTokenScheme(DjangoOAuthToolkitScheme):
    target_class = "merchant_api.authentication.MerchantTokenAuthentication"
    name = "MerchantOAuth2"

    def get_security_requirement(self, auto_schema):
        return {self.name: []}

    def get_security_definition(self, auto_schema):
        return {
            "type": "oauth2",
            "description": "Client credentials from the console (API clients); the access token goes in "
            "`Authorization: Bearer <token>` and expires after an hour.",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": reverse("merchant:token"),
                    "scopes": get_scopes_backend().get_all_scopes(),
                }
            },
        }


class PaymentDetailSchema(OpenApiSerializerExtension):
    """allOf PaymentOutput and MerchantPaymentHistory: the payment's fields are documented once, in the component
    every API shares."""

    target_class = "merchant_api.serializers.PaymentDetailSerializer"

    def get_name(self, auto_schema, direction):
        return "MerchantPayment"

    def map_serializer(self, auto_schema, direction):
        payment = auto_schema.resolve_serializer(PaymentOutputSerializer, direction)
        history = auto_schema.resolve_serializer(PaymentHistorySerializer, direction)
        return {"allOf": [payment.ref, history.ref]}
