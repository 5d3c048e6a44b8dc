"""Tokens: issued for the right secret only, by the client-credentials grant only, expiring, deleted when the client
is revoked; every refusal in the API's error body; the token endpoint and each client rate-limited."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from oauth2_provider.models import AccessToken

from merchant_api import services
from portal.models import AuditLog, Merchant

from .conftest import BASE, basic, make_api, token_request

pytestmark = pytest.mark.django_db


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == code, body
    return body


def test_the_right_secret_gets_an_expiring_bearer_token_by_basic_or_form(world):
    api = world.api_a
    basic_answer = token_request(
        api.http, auth=basic(api.client.client_id, api.secret), grant_type="client_credentials"
    ).json()
    form_answer = token_request(
        api.http, grant_type="client_credentials", client_id=api.client.client_id, client_secret=api.secret
    ).json()

    for answer in (basic_answer, form_answer):
        assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600 and answer["scope"] == "merchant"
        checksum = hashlib.sha256(answer["access_token"].encode()).hexdigest()
        token = AccessToken.objects.get(application=api.client.application, token_checksum=checksum)
        assert timedelta(minutes=59) < token.expires - timezone.now() <= timedelta(hours=1)
        assert token.token == ""  # stored as its checksum only
    api.client.application.refresh_from_db()
    assert api.client.application.client_secret.startswith("md5$")  # kept hashed (the tests' fast hasher)


def test_a_wrong_secret_or_unknown_client_gets_no_token_and_no_secret_is_logged(world, caplog):
    api = world.api_a
    caplog.set_level(logging.DEBUG)
    wrong = token_request(
        api.http, auth=basic(api.client.client_id, "wrong" + api.secret), grant_type="client_credentials"
    )
    unknown = token_request(api.http, auth=basic("no-such-client", api.secret), grant_type="client_credentials")

    for response in (wrong, unknown):
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert AccessToken.objects.filter(application=api.client.application).count() == 1  # the fixture's
    assert caplog.records and all(api.secret not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("form", "error_code"),
    [
        ({"grant_type": "password", "username": "a", "password": "b"}, "unsupported_grant_type"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
    ],
)
def test_other_grants_are_refused(world, form, error_code):
    api = world.api_a
    response = token_request(api.http, auth=basic(api.client.client_id, api.secret), **form)

    assert response.status_code == 400 and response.json()["error"] == error_code
    assert AccessToken.objects.filter(application=api.client.application).count() == 1


def test_calls_without_a_token_or_with_a_bad_one_are_401_in_the_error_body(world):
    http = Client()
    missing = error(http.get(BASE + "payments"), 401, "AUTH_HEADER_MISSING")
    assert "Bearer" in missing["message"]
    error(http.get(BASE + "payments", HTTP_AUTHORIZATION="Basic abc"), 401, "AUTH_HEADER_INVALID")
    unknown = http.get(BASE + "payments", HTTP_AUTHORIZATION="Bearer not-a-token")
    error(unknown, 401, "TOKEN_INVALID")
    assert unknown["WWW-Authenticate"].startswith("Bearer")


def test_a_token_in_the_query_string_is_not_accepted(world):
    response = Client().get(BASE + "payments", {"access_token": world.api_a.token})

    error(response, 401, "AUTH_HEADER_MISSING")


def test_an_expired_token_is_401(world):
    api = world.api_a
    assert api.get("payments").status_code == 200
    AccessToken.objects.filter(application=api.client.application).update(expires=timezone.now() - timedelta(seconds=1))

    error(api.get("payments"), 401, "TOKEN_INVALID")


def test_revoking_stops_the_tokens_at_once_and_the_secret_gets_no_new_one(world):
    api, other = world.api_a, world.api_b
    assert api.get("payments").status_code == 200

    services.api_client_revoke(client=api.client, actor=None)

    error(api.get("payments"), 401, "TOKEN_INVALID")
    assert not AccessToken.objects.filter(application=api.client.application).exists()
    again = token_request(api.http, auth=basic(api.client.client_id, api.secret), grant_type="client_credentials")
    assert again.status_code == 401 and again.json()["error"] == "invalid_client"
    assert other.get("payments").status_code == 200  # another client is untouched
    revoked = AuditLog.objects.get(action="merchant_api.client_revoke")
    assert revoked.details == {"name": "POS", "client_id": api.client.client_id, "tokens_deleted": 1}
    assert revoked.merchant == world.a


def test_a_token_whose_client_was_deactivated_is_refused_even_if_it_survived(world):
    """A token issued in the instant of a revocation outlives the deletion: the active client is checked anyway."""
    api = world.api_a
    type(api.client).objects.filter(pk=api.client.pk).update(is_active=False, revoked_at=timezone.now())

    error(api.get("payments"), 401, "TOKEN_INVALID")


def test_a_suspended_merchant_or_provider_is_403(world):
    api = world.api_a
    Merchant.objects.filter(pk=world.a.pk).update(status=Merchant.Status.SUSPENDED)
    error(api.get("payments"), 403, "MERCHANT_SUSPENDED")

    Merchant.objects.filter(pk=world.a.pk).update(status=Merchant.Status.ACTIVE)
    world.a.provider.is_active = False
    world.a.provider.save()
    error(api.get("payments"), 403, "PROVIDER_SUSPENDED")


def test_the_token_endpoint_is_bounded_per_client_address(world, settings):
    settings.MERCHANT_API_TOKEN_THROTTLE_RATE = "3/min"
    api, guesser = world.api_a, Client(REMOTE_ADDR="192.0.2.7")
    guesses = [
        token_request(guesser, auth=basic(api.client.client_id, f"guess-{i}"), grant_type="client_credentials")
        for i in range(3)
    ]
    assert [r.status_code for r in guesses] == [401, 401, 401]

    refused = token_request(guesser, auth=basic(api.client.client_id, api.secret), grant_type="client_credentials")
    error(refused, 429, "THROTTLED")
    assert int(refused["Retry-After"]) > 0
    elsewhere = token_request(
        Client(REMOTE_ADDR="192.0.2.8"), auth=basic(api.client.client_id, api.secret), grant_type="client_credentials"
    )
    assert elsewhere.status_code == 200


def test_each_client_has_its_own_request_rate(world, settings):
    settings.MERCHANT_API_THROTTLE_RATE = "2/min"
    api = world.api_a
    assert [api.get("payments").status_code for _ in range(2)] == [200, 200]

    error(api.get("payments"), 429, "THROTTLED")
    second_token = make_api(world.a, name="ERP")  # another client of the same merchant: its own budget
    assert second_token.get("payments").status_code == 200
    api.fetch_token()  # a new token of the same client: the same budget
    assert api.get("payments").status_code == 429
