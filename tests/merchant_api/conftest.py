"""Two merchants under two providers, each with a store, a device, payments and an API client; a helper that speaks
to the merchant API with a client's token."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone

from merchant_api import services
from merchant_api.models import MerchantApiClient
from payments.models import Payment
from portal.models import Merchant, Store
from tests.factories import MerchantFactory, ServiceProviderFactory, StoreFactory, make_device

BASE = "/api/merchant/v1/"
TOKEN_URL = BASE + "oauth/token"


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def token_request(http: Client, *, auth: str = "", **form):
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return http.post(TOKEN_URL, urlencode(form), content_type="application/x-www-form-urlencoded", **headers)


@dataclass
class Api:
    """A merchant API client with a fresh access token, calling through Django's test client."""

    http: Client
    client: MerchantApiClient
    secret: str
    token: str = ""

    def fetch_token(self) -> str:
        response = token_request(
            self.http, auth=basic(self.client.client_id, self.secret), grant_type="client_credentials"
        )
        assert response.status_code == 200, response.content
        self.token = response.json()["access_token"]
        return self.token

    def get(self, path: str, params=None, **headers):
        return self.http.get(BASE + path, params or {}, HTTP_AUTHORIZATION=f"Bearer {self.token}", **headers)

    def post(self, path: str, body: dict, **headers):
        return self.http.post(
            BASE + path, body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {self.token}", **headers
        )


def make_api(merchant: Merchant, name: str = "POS") -> Api:
    client, secret = services.api_client_create(merchant=merchant, name=name, actor=None)
    api = Api(http=Client(), client=client, secret=secret)
    api.fetch_token()
    return api


def make_payment(store: Store, out_trade_no: str, *, total_fee: int = 1000, status: str = "SUCCESS", device=None,
                 created_at=None) -> Payment:  # fmt: skip
    payment = Payment.objects.create(
        merchant=store.merchant, store=store, device=device, channel=store.merchant.channel,
        method=Payment.Method.CODE, out_trade_no=out_trade_no, total_fee=total_fee, body="x",
        request_fingerprint="f" * 64, status=status, paid_at=timezone.now() if status == "SUCCESS" else None,
    )  # fmt: skip
    if created_at is not None:  # auto_now_add: set afterwards
        Payment.objects.filter(pk=payment.pk).update(created_at=created_at)
        payment.refresh_from_db()
    return payment


@dataclass
class World:
    a: Merchant
    b: Merchant
    store_a: Store
    store_a2: Store
    store_b: Store
    device_a: object
    api_a: Api
    api_b: Api


@pytest.fixture
def world(db) -> World:
    a = MerchantFactory(provider=ServiceProviderFactory(), name="Merchant A")
    b = MerchantFactory(provider=ServiceProviderFactory(), name="Merchant B")
    store_a, store_a2, store_b = StoreFactory(merchant=a), StoreFactory(merchant=a), StoreFactory(merchant=b)
    device_a, _secret = make_device(store_a)
    return World(
        a=a, b=b, store_a=store_a, store_a2=store_a2, store_b=store_b, device_a=device_a,
        api_a=make_api(a), api_b=make_api(b),
    )  # fmt: skip


def minutes_ago(minutes: float):
    return timezone.now() - timedelta(minutes=minutes)
