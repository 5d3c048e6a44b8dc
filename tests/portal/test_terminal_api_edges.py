"""The terminal API at its edges: malformed authentication, oversized or absurd input, unknown paths and crashes all
answer in the documented error shape with nothing changed — never a 5xx or an HTML page."""

import json
import time

import pytest

from payments.models import Payment
from payments.terminal_client import authorization_header
from tests.factories import make_device

pytestmark = pytest.mark.django_db

PATH = "/api/terminal/v1/heartbeat"


def _post(client, path, body, header):
    return client.post(path, data=body, content_type="application/json", HTTP_AUTHORIZATION=header)


def _signed(client, device, secret, path, payload):
    body = json.dumps(payload).encode()
    header = authorization_header(
        device_id=device.device_id, secret=secret, method="POST", path_with_query=path, body=body
    )
    return _post(client, path, body, header)


def _header(device, *, timestamp=None, signature="A" * 43 + "="):
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    return (
        f'TERMINAL-HMAC-SHA256 device="{device.device_id}",timestamp="{timestamp}",nonce="{"a" * 20}",'
        f'signature="{signature}"'
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"timestamp": "1" * 5000},  # int() refuses more than 4,300 digits
        {"timestamp": "9" * 400},  # too large for a float
        {"timestamp": "\u00b2"},  # str.isdigit() takes '²' (the latin-1 header byte 0xB2); int() does not
        {"signature": "\u00e9" * 44},  # hmac.compare_digest refuses non-ASCII text
        {"signature": "\u00b2"},
        {"signature": "AAAA"},  # not the length of an HMAC-SHA256 in base64
    ],
)
def test_malformed_timestamp_or_signature_is_a_401(client, device_and_secret, changes):
    device, _ = device_and_secret
    client.raise_request_exception = False
    response = _post(client, PATH, b"{}", _header(device, **changes))
    assert response.status_code == 401
    assert response.json()["code"] == "AUTH_HEADER_INVALID"


def test_oversized_body_is_413_in_the_error_shape(client, device_and_secret, settings):
    device, secret = device_and_secret
    client.raise_request_exception = False
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = _signed(client, device, secret, PATH, {"sdk_version": "1", "pad": "x" * 4096})
    assert response.status_code == 413
    assert response.json()["code"] == "BODY_TOO_LARGE"
    device.refresh_from_db()
    assert device.last_seen_at is None


def test_unknown_path_and_crash_answer_json_under_api(client, device_and_secret, monkeypatch):
    device, secret = device_and_secret
    client.raise_request_exception = False
    missing = _signed(client, device, secret, "/api/terminal/v1/no-such-endpoint", {})
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")

    from portal import services

    def crash(**kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(services, "device_record_heartbeat", crash)
    crashed = _signed(client, device, secret, PATH, {})
    assert (crashed.status_code, crashed.json()["code"]) == (500, "SERVER_ERROR")
    assert set(crashed.json()) == {"code", "message", "details"}
    # Pages for people keep Django's HTML.
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("total_fee", [2**31, 10**19, 2**63])
def test_absurd_total_fee_is_400_and_nothing_is_stored(client, device_and_secret, total_fee):
    device, secret = device_and_secret
    payload = {"total_fee": total_fee, "body": "x", "auth_code": "abcdef", "method": "FACE"}
    response = _signed(client, device, secret, "/api/terminal/v1/payments", payload)
    assert response.status_code == 400
    assert set(response.json()["details"]) == {"total_fee"}
    assert Payment.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "bad"),
    [
        (
            {"total_fee": "100", "body": "", "auth_code": "", "method": "CASH"},
            {"total_fee", "body", "auth_code", "method"},
        ),
        (
            {"out_trade_no": "含中文", "total_fee": 100, "body": "x", "auth_code": "12 34", "method": "CODE"},
            {"out_trade_no", "auth_code"},
        ),
    ],
)
def test_payment_validation_names_every_bad_field(client, device_and_secret, payload, bad):
    device, secret = device_and_secret
    response = _signed(client, device, secret, "/api/terminal/v1/payments", payload)
    assert response.status_code == 400
    assert set(response.json()["details"]) == bad
    assert Payment.objects.count() == 0


def test_the_query_string_is_signed(client, device_and_secret):
    device, secret = device_and_secret
    header = authorization_header(
        device_id=device.device_id,
        secret=secret,
        method="GET",
        path_with_query="/api/terminal/v1/payments/NOPE?wait=0",
        body=b"",
    )
    response = client.get("/api/terminal/v1/payments/NOPE?wait=5", HTTP_AUTHORIZATION=header)
    assert (response.status_code, response.json()["code"]) == (401, "SIGNATURE_INVALID")


def test_a_percent_encoded_path_verifies_as_sent(client, device_and_secret):
    """out_trade_no may hold '*' and '|'; a client that percent-encodes them (urllib's quote does) signs the path
    as it sends it, and that verifies as well as Django's canonical form."""
    device, secret = device_and_secret
    for path in ("/api/terminal/v1/payments/A%2AB%7CC", "/api/terminal/v1/payments/A*B%7CC"):
        header = authorization_header(
            device_id=device.device_id, secret=secret, method="GET", path_with_query=path, body=b""
        )
        response = client.get(path, HTTP_AUTHORIZATION=header)
        assert response.json()["code"] == "PAYMENT_NOT_FOUND", path


def test_a_deactivated_service_provider_stops_its_devices(client, device_and_secret):
    device, secret = device_and_secret
    provider = device.store.merchant.provider
    provider.is_active = False
    provider.save()
    response = _signed(client, device, secret, PATH, {})
    assert (response.status_code, response.json()["code"]) == (403, "PROVIDER_SUSPENDED")


def test_schema_documents_the_authentication_answers_of_every_terminal_operation():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    missing = [
        f"{method.upper()} {path}: {sorted({'401', '403', '429'} - set(operation['responses']))}"
        for path, operations in schema["paths"].items()
        if path.startswith("/api/terminal/v1/")
        for method, operation in operations.items()
        if method != "parameters" and {"401", "403", "429"} - set(operation["responses"])
    ]
    assert missing == []


@pytest.mark.django_db(transaction=True)
def test_under_asgi_the_path_verifies_exactly_as_sent():
    """The web tier serves ASGI: the request line as sent reaches the signature check as the scope's raw_path. Here
    lower-case escapes, which neither Django's canonical form nor a re-encoding reproduces."""
    import asyncio

    import httpx

    from portal.handlers import application

    device, secret = make_device()
    path = "/api/terminal/v1/payments/A%2aB%7cC"

    async def send():
        transport = httpx.ASGITransport(app=application())
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            request = client.build_request("GET", path)
            assert request.url.raw_path == path.encode()  # sent as written
            request.headers["Authorization"] = authorization_header(
                device_id=device.device_id, secret=secret, method="GET", path_with_query=path, body=b""
            )
            return await client.send(request)

    response = asyncio.run(send())
    assert response.json()["code"] == "PAYMENT_NOT_FOUND"


@pytest.mark.django_db(transaction=True)
def test_under_asgi_terminal_requests_take_their_own_middleware_chain():
    """The terminal API runs TERMINAL_API_MIDDLEWARE (security headers, Content-Length) without the console's
    session, CSRF and clickjacking middleware; the console keeps the full chain."""
    import asyncio

    import httpx

    from portal.handlers import application

    device, secret = make_device()
    path = "/api/terminal/v1/payments/NOPE1"

    async def send():
        transport = httpx.ASGITransport(app=application())
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            request = client.build_request("GET", path)
            request.headers["Authorization"] = authorization_header(
                device_id=device.device_id, secret=secret, method="GET", path_with_query=path, body=b""
            )
            return await client.send(request), await client.get("/login/")

    terminal, console = asyncio.run(send())
    assert terminal.json()["code"] == "PAYMENT_NOT_FOUND"
    assert terminal.headers["X-Content-Type-Options"] == "nosniff"
    assert terminal.headers["Content-Length"] == str(len(terminal.content))
    assert "X-Frame-Options" not in terminal.headers
    assert console.status_code == 200
    assert console.headers["X-Frame-Options"] == "DENY"
    assert "csrftoken" in console.cookies
