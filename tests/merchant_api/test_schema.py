"""The OpenAPI document describes the merchant API: its paths under the "merchant" tag, the OAuth2
client-credentials scheme with its token URL, and the error body on every refusal."""

from __future__ import annotations

import pytest
from django.test import Client

from merchant_api.serializers import DifferenceSerializer

pytestmark = pytest.mark.django_db

PATHS = {
    "/api/merchant/v1/oauth/token": ["post"],
    "/api/merchant/v1/payments": ["get"],
    "/api/merchant/v1/payments/{out_trade_no}": ["get"],
    "/api/merchant/v1/payments/{out_trade_no}/refunds": ["post"],
    "/api/merchant/v1/refunds/{out_refund_no}": ["get"],
    "/api/merchant/v1/reconciliation/differences": ["get"],
}


@pytest.fixture
def schema() -> dict:
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_documents_every_merchant_path_with_oauth2(schema):
    paths = {path: sorted(operations) for path, operations in schema["paths"].items() if "/merchant/" in path}
    assert paths == PATHS
    for path, methods in PATHS.items():
        operation = schema["paths"][path][methods[0]]
        assert operation["tags"] == ["merchant"]
        if path.endswith("/token"):
            assert "security" not in operation
            continue
        assert operation["security"] == [{"MerchantOAuth2": []}]
        for status in ("401", "403", "429"):
            assert operation["responses"][status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
    flow = schema["components"]["securitySchemes"]["MerchantOAuth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/api/merchant/v1/oauth/token" and "merchant" in flow["scopes"]


def test_the_schema_of_a_payment_is_the_terminals_plus_its_history(schema):
    components = schema["components"]["schemas"]
    assert components["MerchantPayment"] == {
        "allOf": [
            {"$ref": "#/components/schemas/PaymentOutput"},
            {"$ref": "#/components/schemas/MerchantPaymentHistory"},
        ]
    }
    assert set(components["MerchantPaymentHistory"]["properties"]) == {"refunds", "timeline"}
    parameters = {p["name"] for p in schema["paths"]["/api/merchant/v1/payments"]["get"]["parameters"]}
    assert parameters == {"created_after", "created_before", "status", "store_id", "device_id", "limit", "cursor"}


def test_the_documented_difference_is_the_one_answered(world):
    from reconciliation.models import Difference

    difference = Difference.objects.create(merchant=world.a, bill_date="2026-03-10", kind="MISSING_THERE",
                                           out_trade_no="A-1")  # fmt: skip
    answered = world.api_a.get("reconciliation/differences").json()["results"][0]

    assert set(answered) == set(DifferenceSerializer().fields)
    assert answered["out_trade_no"] == difference.out_trade_no
