"""Channel and device secrets: encrypted at rest, rotatable, never shown in repr, admin pages or logs."""

import logging

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from portal import credentials as cred
from portal import services
from portal.fields import MASK, Secret
from portal.models import ChannelCredentials, Device
from tests.factories import MerchantFactory, login_verified, make_device, make_user

pytestmark = pytest.mark.django_db

V2_KEY = "192006250b4c09247ec02edce69f6a2d"


def raw_column(model, pk, column):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {model._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.fixture
def merchant_with_credentials():
    merchant = MerchantFactory()
    key_pem, cert_pem = cred.generate_key_and_certificate("test merchant")
    services.credentials_update(
        owner=merchant,
        values={"wechat_api_v2_key": V2_KEY, "wechat_private_key": key_pem, "wechat_certificate": cert_pem},
        actor=None,
        actor_label="test",
    )
    return merchant, key_pem


def test_round_trip_and_ciphertext_at_rest(merchant_with_credentials):
    merchant, key_pem = merchant_with_credentials
    stored = ChannelCredentials.objects.get(merchant=merchant)

    assert stored.wechat_api_v2_key.reveal() == V2_KEY
    assert stored.wechat_private_key.reveal() == key_pem
    raw = raw_column(ChannelCredentials, stored.pk, "wechat_api_v2_key")
    assert V2_KEY not in raw and raw.startswith("gAAAAA")  # a Fernet token
    assert "PRIVATE KEY" not in raw_column(ChannelCredentials, stored.pk, "wechat_private_key")


def test_device_secret_is_encrypted_at_rest():
    device, secret = make_device()
    assert secret not in raw_column(Device, device.pk, "secret")
    assert Device.objects.get(pk=device.pk).secret.reveal() == secret


def test_secret_never_prints():
    secret = Secret("192006250b4c09247ec02edce69f6a2d")
    assert str(secret) == MASK
    assert "1920" not in repr(secret)
    assert "1920" not in f"{secret} {secret!r} {[secret]} { ({'k': secret}) }"
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(secret)


def test_loaded_secrets_are_decrypted_only_when_revealed(merchant_with_credentials, settings, monkeypatch):
    from portal import fields

    merchant, key_pem = merchant_with_credentials
    calls = []
    real = fields.decrypt
    monkeypatch.setattr(fields, "decrypt", lambda token: calls.append(token) or real(token))

    stored = ChannelCredentials.objects.get(merchant=merchant)
    assert calls == []  # loading the row decrypts nothing
    assert stored.wechat_api_v2_key and not stored.umpay_private_key  # set / unset without decrypting
    assert calls == []
    assert stored.wechat_api_v2_key.reveal() == V2_KEY and stored.wechat_api_v2_key.reveal() == V2_KEY
    assert len(calls) == 1  # once, then kept
    assert stored.wechat_api_v2_key == Secret(V2_KEY)

    # A token no configured key opens fails where it is used, with a message that names neither token nor key.
    other = ChannelCredentials.objects.get(merchant=merchant)
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(ImproperlyConfigured) as failure:
        other.wechat_private_key.reveal()
    assert "gAAAA" not in str(failure.value) and settings.FIELD_ENCRYPTION_KEY not in str(failure.value)


def test_rotation_reencrypts_under_new_key(merchant_with_credentials, settings):
    merchant, _ = merchant_with_credentials
    device, device_secret = make_device()
    old_key = settings.FIELD_ENCRYPTION_KEY
    new_key = Fernet.generate_key().decode()
    stored = ChannelCredentials.objects.get(merchant=merchant)
    before = raw_column(ChannelCredentials, stored.pk, "wechat_api_v2_key")

    settings.FIELD_ENCRYPTION_KEY = f"{new_key},{old_key}"
    call_command("rotate_field_keys", stdout=open("/dev/null", "w"))
    after = raw_column(ChannelCredentials, stored.pk, "wechat_api_v2_key")

    assert after != before
    assert Fernet(new_key.encode()).decrypt(after.encode()).decode() == V2_KEY
    # With only the new key configured, everything still decrypts: the old key can be dropped.
    settings.FIELD_ENCRYPTION_KEY = new_key
    assert ChannelCredentials.objects.get(pk=stored.pk).wechat_api_v2_key.reveal() == V2_KEY
    assert Device.objects.get(pk=device.pk).secret.reveal() == device_secret


def test_repr_of_model_instances_has_no_secret(merchant_with_credentials):
    merchant, key_pem = merchant_with_credentials
    stored = ChannelCredentials.objects.get(merchant=merchant)
    text = repr(stored) + str(stored) + repr(stored.__dict__)
    assert V2_KEY not in text and "BEGIN PRIVATE KEY" not in text


def test_admin_pages_never_show_secrets(client, merchant_with_credentials):
    merchant, key_pem = merchant_with_credentials
    device, device_secret = make_device()
    admin = make_user("root", superuser=True)
    login_verified(client, admin)
    stored = ChannelCredentials.objects.get(merchant=merchant)

    pages = [
        "/admin/portal/channelcredentials/",
        f"/admin/portal/channelcredentials/{stored.pk}/change/",
        "/admin/portal/device/",
        f"/admin/portal/device/{device.pk}/change/",
        "/admin/portal/auditlog/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        for secret in (V2_KEY, device_secret, key_pem.splitlines()[1]):
            assert secret not in html, url
    change_page = client.get(f"/admin/portal/channelcredentials/{stored.pk}/change/").content.decode()
    assert "wechat_api_v2_key: yes" in change_page


def test_secrets_never_logged(caplog, client, merchant_with_credentials):
    caplog.set_level(logging.DEBUG)
    merchant, key_pem = merchant_with_credentials
    device, device_secret = make_device()
    # Exercise the paths that handle secrets: credential update, failed and successful device auth.
    services.credentials_update(owner=merchant, values={"wechat_api_v2_key": "A" * 32}, actor=None, actor_label="t")
    client.post(
        "/api/terminal/v1/heartbeat",
        data=b"{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f'TERMINAL-HMAC-SHA256 device="{device.device_id}",timestamp="1",nonce="'
        f'{"n" * 16}",signature="x"',
    )
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (V2_KEY, "A" * 32, device_secret):
        assert secret not in logged


def test_audit_records_field_names_not_values(merchant_with_credentials):
    from portal.models import AuditLog

    merchant, _ = merchant_with_credentials
    entry = AuditLog.objects.get(action="credentials.update", object_id=str(merchant.pk))
    assert entry.details == {
        "fields": ["wechat_api_v2_key", "wechat_cert_serial", "wechat_certificate", "wechat_private_key"]
    }
    assert V2_KEY not in str(entry.details)
