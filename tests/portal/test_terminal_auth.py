"""Device authentication of the terminal API: every failure has its status and stable code."""

import json
import time

import pytest

from payments.terminal_client import authorization_header
from portal import services
from portal.models import AuditLog, DeviceNonce, Merchant

pytestmark = pytest.mark.django_db

PATH = "/api/terminal/v1/heartbeat"


def signed_post(client, device_id, secret, body=b"{}", **overrides):
    header = overrides.pop("header", None) or authorization_header(
        device_id=device_id, secret=secret, method="POST", path_with_query=PATH, body=body, **overrides
    )
    return client.post(PATH, data=body, content_type="application/json", HTTP_AUTHORIZATION=header)


def test_heartbeat_updates_last_seen_and_versions(terminal, device_and_secret):
    device, _ = device_and_secret
    response = terminal.post("heartbeat", {"sdk_version": "2.15.120", "app_version": "1.4.0"})

    assert response.status_code == 200
    body = response.json()
    assert body["device_id"] == device.device_id
    assert body["store_id"] == device.store.store_id
    device.refresh_from_db()
    assert (device.sdk_version, device.app_version) == ("2.15.120", "1.4.0")
    assert device.last_seen_at is not None


def test_missing_header_is_401(client):
    response = client.post(PATH, data=b"{}", content_type="application/json")
    assert response.status_code == 401
    assert response.json()["code"] == "AUTH_HEADER_MISSING"
    assert response["WWW-Authenticate"] == "TERMINAL-HMAC-SHA256"


def test_malformed_header_is_401(client):
    response = client.post(PATH, data=b"{}", content_type="application/json", HTTP_AUTHORIZATION="Bearer abc")
    assert response.status_code == 401
    assert response.json()["code"] == "AUTH_HEADER_INVALID"


def test_unknown_device_answers_exactly_like_a_wrong_signature(client, device_and_secret, caplog):
    """Telling "no such device" from "wrong signature" would let anyone enumerate device ids: one answer for both;
    only the server log tells them apart."""
    device, secret = device_and_secret
    with caplog.at_level("WARNING", logger="portal.terminal_auth"):
        unknown = signed_post(client, "NO-SUCH-DEVICE", "whatever-secret")
        wrong = signed_post(client, device.device_id, secret + "x")
    expected = {
        "code": "SIGNATURE_INVALID",
        "message": "The device id or the request signature is not valid.",
        "details": {},
    }
    assert (unknown.status_code, unknown.json()) == (401, expected)
    assert (wrong.status_code, wrong.json()) == (401, expected)
    assert unknown["WWW-Authenticate"] == wrong["WWW-Authenticate"] == "TERMINAL-HMAC-SHA256"
    messages = [record.getMessage() for record in caplog.records]
    assert "Terminal request refused: no device 'NO-SUCH-DEVICE' is registered" in messages
    assert f"Terminal request refused: bad signature for device {device.device_id}" in messages


def test_a_stale_timestamp_answers_alike_for_unknown_and_known_devices(client, device_and_secret):
    device, secret = device_and_secret
    stale = int(time.time()) - 3600
    unknown = signed_post(client, "NO-SUCH-DEVICE", "whatever-secret", timestamp=stale)
    known = signed_post(client, device.device_id, secret + "x", timestamp=stale)
    assert (unknown.status_code, unknown.json()) == (known.status_code, known.json())
    assert known.json()["code"] == "TIMESTAMP_EXPIRED"


def test_wrong_secret_is_401(client, device_and_secret):
    device, secret = device_and_secret
    response = signed_post(client, device.device_id, secret + "x")
    assert response.status_code == 401
    assert response.json()["code"] == "SIGNATURE_INVALID"


def test_body_tampered_after_signing_is_401(client, device_and_secret):
    device, secret = device_and_secret
    header = authorization_header(
        device_id=device.device_id, secret=secret, method="POST", path_with_query=PATH, body=b'{"sdk_version":"1"}'
    )
    response = client.post(
        PATH, data=b'{"sdk_version":"2"}', content_type="application/json", HTTP_AUTHORIZATION=header
    )
    assert response.status_code == 401
    assert response.json()["code"] == "SIGNATURE_INVALID"
    device.refresh_from_db()
    assert device.sdk_version == ""


def test_path_is_part_of_the_signature(client, device_and_secret):
    device, secret = device_and_secret
    header = authorization_header(
        device_id=device.device_id,
        secret=secret,
        method="POST",
        path_with_query="/api/terminal/v1/payments",
        body=b"{}",
    )
    response = client.post(PATH, data=b"{}", content_type="application/json", HTTP_AUTHORIZATION=header)
    assert response.json()["code"] == "SIGNATURE_INVALID"


@pytest.mark.parametrize("skew", [301, -301, 3600])
def test_stale_or_future_timestamp_is_401(client, device_and_secret, skew):
    device, secret = device_and_secret
    response = signed_post(client, device.device_id, secret, timestamp=int(time.time()) - skew)
    assert response.status_code == 401
    assert response.json()["code"] == "TIMESTAMP_EXPIRED"


def test_timestamp_inside_window_is_accepted(client, device_and_secret):
    device, secret = device_and_secret
    response = signed_post(client, device.device_id, secret, timestamp=int(time.time()) - 290)
    assert response.status_code == 200


def test_replayed_nonce_is_401_and_changes_nothing(client, device_and_secret):
    device, secret = device_and_secret
    body = json.dumps({"sdk_version": "1"}).encode()
    header = authorization_header(
        device_id=device.device_id, secret=secret, method="POST", path_with_query=PATH, body=body
    )
    first = client.post(PATH, data=body, content_type="application/json", HTTP_AUTHORIZATION=header)
    device.refresh_from_db()
    seen = device.last_seen_at
    replay = client.post(PATH, data=body, content_type="application/json", HTTP_AUTHORIZATION=header)

    assert first.status_code == 200
    assert replay.status_code == 401
    assert replay.json()["code"] == "NONCE_REPLAYED"
    device.refresh_from_db()
    assert device.last_seen_at == seen
    assert DeviceNonce.objects.filter(device=device).count() == 1


def test_short_nonce_is_rejected(client, device_and_secret):
    device, secret = device_and_secret
    response = signed_post(client, device.device_id, secret, nonce="short")
    assert response.status_code == 401
    assert response.json()["code"] == "AUTH_HEADER_INVALID"


def test_disabled_device_is_403(client, device_and_secret):
    device, secret = device_and_secret
    services.device_set_active(device=device, is_active=False, actor=None, actor_label="test")
    response = signed_post(client, device.device_id, secret)
    assert response.status_code == 403
    assert response.json()["code"] == "DEVICE_DISABLED"
    assert AuditLog.objects.filter(action="device.disable", object_id=str(device.pk)).count() == 1


def test_disabled_store_is_403(client, device_and_secret):
    device, secret = device_and_secret
    services.store_set_active(store=device.store, is_active=False, actor=None, actor_label="test")
    response = signed_post(client, device.device_id, secret)
    assert response.status_code == 403
    assert response.json()["code"] == "STORE_DISABLED"


def test_suspended_merchant_is_403(client, device_and_secret):
    device, secret = device_and_secret
    services.merchant_set_status(
        merchant=device.store.merchant, status=Merchant.Status.SUSPENDED, actor=None, actor_label="test"
    )
    response = signed_post(client, device.device_id, secret)
    assert response.status_code == 403
    assert response.json()["code"] == "MERCHANT_SUSPENDED"


def test_reenabled_device_works_again(terminal, device_and_secret):
    device, _ = device_and_secret
    services.device_set_active(device=device, is_active=False, actor=None, actor_label="test")
    assert terminal.post("heartbeat").status_code == 403
    services.device_set_active(device=device, is_active=True, actor=None, actor_label="test")
    assert terminal.post("heartbeat").status_code == 200


def test_rotated_secret_replaces_the_old_one(client, device_and_secret):
    device, old_secret = device_and_secret
    new_secret = services.device_rotate_secret(device=device, actor=None, actor_label="test")

    assert new_secret != old_secret
    assert signed_post(client, device.device_id, old_secret).json()["code"] == "SIGNATURE_INVALID"
    assert signed_post(client, device.device_id, new_secret).status_code == 200


def test_validation_error_names_the_field(terminal):
    response = terminal.post("heartbeat", {"sdk_version": "x" * 40})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "INVALID_INPUT"
    assert set(body["details"]) == {"sdk_version"}


def test_malformed_json_is_400_with_error_shape(terminal):
    response = terminal._http.post(
        "/api/terminal/v1/heartbeat",
        content=b"{not json",
        headers={
            "Content-Type": "application/json",
            "Authorization": authorization_header(
                device_id=terminal.device_id,
                secret=terminal._secret,
                method="POST",
                path_with_query="/api/terminal/v1/heartbeat",
                body=b"{not json",
            ),
        },
    )
    assert response.status_code == 400
    assert response.json()["code"] == "MALFORMED_BODY"


def test_throttle_limits_one_device(terminal, settings):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "device": "3/min"}
    SimpleRateThrottle.THROTTLE_RATES = rates
    try:
        responses = [terminal.post("heartbeat") for _ in range(4)]
    finally:
        SimpleRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert responses[-1].json()["code"] == "THROTTLED"
    assert int(responses[-1].headers["Retry-After"]) > 0
