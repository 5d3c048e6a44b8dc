"""Device provisioning commands, demo seeding, health, schema and production settings."""

import io
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from portal import services
from portal.models import AuditLog, Device, Merchant
from tests.factories import StoreFactory, make_device

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_device_register_prints_secret_once_and_it_works(terminal, wsgi_transport):
    from payments.terminal_client import TerminalClient

    store = StoreFactory()
    output = run("device_register", "--store", str(store.pk), "--device-id", "POS-7")
    secret = output.split("secret:")[1].split()[0]
    client = TerminalClient("http://testserver", device_id="POS-7", secret=secret, transport=wsgi_transport)

    assert client.post("heartbeat").status_code == 200
    assert AuditLog.objects.filter(action="device.register", actor_label="cli").count() == 1
    with pytest.raises(CommandError, match="already exists"):
        run("device_register", "--store", str(store.pk), "--device-id", "POS-7")


def test_device_register_by_merchant_and_store_id():
    store = StoreFactory(store_id="SZ-1")
    output = run("device_register", "--merchant", str(store.merchant_id), "--store", "SZ-1")
    device_id = output.split("device_id:")[1].split()[0]
    assert Device.objects.get(device_id=device_id).store == store


def test_rotate_and_disable_commands(device_and_secret):
    device, old = device_and_secret
    output = run("device_rotate_secret", "--device", device.device_id)
    new = output.split("secret:")[1].split()[0]
    device.refresh_from_db()
    assert device.secret.reveal() == new != old
    run("device_set_active", "--device", device.device_id, "--disable")
    device.refresh_from_db()
    assert device.is_active is False


def test_seed_demo_is_idempotent():
    first = run("seed_demo")
    second = run("seed_demo")
    assert Merchant.objects.count() == 3  # WeChat direct (API v2), UMF, a provider's sub-merchant on API v3
    assert Merchant.objects.get(name__contains="Demo Books").wechat_api == Merchant.WechatApi.V3
    assert Device.objects.count() == 3
    # The demo device's secret stays the same across runs, so the printed credentials keep working.
    assert (
        first.split("DEMO-DEVICE-01")[1].split("secret ")[1].split()[0]
        == second.split("DEMO-DEVICE-01")[1].split("secret ")[1].split()[0]
    )


def test_healthz_reports_database_and_broker(client, tmp_path, settings):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["broker"] == "ok"


def test_healthz_fails_when_broker_is_unreachable(client):
    from portal.celery import app

    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = original
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("error")


def test_openapi_schema_documents_the_terminal_api(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/terminal/v1/heartbeat" in schema["paths"]
    assert "TerminalHmac" in schema["components"]["securitySchemes"]
    assert client.get("/api/schema/docs/").status_code == 200


# A complete production environment (README "Production deployment"), with fresh keys.
PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "s" * 50,
    "ALLOWED_HOSTS": "example.com",
    "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "DATABASE_URL": "postgres://u@127.0.0.1:1/db",
    "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
    "CACHE_URL": "redis://127.0.0.1:1/1",
    "PUBLIC_BASE_URL": "https://pay.example.com",
}


@pytest.mark.parametrize(
    "missing",
    ["SECRET_KEY", "FIELD_ENCRYPTION_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "PUBLIC_BASE_URL"],
)
def test_production_refuses_to_start_without_secrets(missing):
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION and k not in ("DEBUG", "SANDBOX_ENABLED")}
    env.update(PRODUCTION)
    del env[missing]
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=settings.BASE_DIR,
        env={**env, "DJANGO_SETTINGS_MODULE": "portal.settings"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert f"{missing} must be set in production" in result.stderr


def test_production_starts_with_its_secrets():
    env = {**os.environ, **PRODUCTION, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    env.pop("SANDBOX_ENABLED", None)
    env.pop("DEBUG", None)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.DEBUG, s.SANDBOX_ENABLED, s.WECHATPAY_API_BASE)",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "false", "https://api.mch.weixin.qq.com"]


def test_healthz_with_a_redis_broker(client):
    """Production's broker. CI starts Redis and sets REDIS_URL; elsewhere this test says it was skipped."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL not set (CI starts a Redis server)")
    from portal.celery import app

    original = app.conf.broker_url
    app.conf.broker_url = url
    try:
        response = client.get("/healthz")
    finally:
        app.conf.broker_url = original
    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == "ok"


def _settings_in_subprocess(**env_overrides):
    env = {**os.environ, **PRODUCTION, "DJANGO_SETTINGS_MODULE": "portal.settings", **env_overrides}
    env = {name: value for name, value in env.items() if value is not None}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "import portal.urls; print(s.SANDBOX_MOUNTED)",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )


def test_sandbox_cannot_be_switched_on_by_accident_in_production():
    refused = _settings_in_subprocess(SANDBOX_ENABLED="true")
    assert refused.returncode != 0
    assert "SANDBOX_ENABLED is on while DEBUG is off" in refused.stderr
    forced = _settings_in_subprocess(SANDBOX_ENABLED="force")
    assert forced.returncode == 0, forced.stderr
    assert forced.stdout.strip() == "True"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"DEBUG": "true"}, "DEBUG must be off in production"),
        ({"SECRET_KEY": "dev-only-insecure-secret-key-change-me"}, "SECRET_KEY is the development default"),
        (
            {"FIELD_ENCRYPTION_KEY": "ZGV2LW9ubHktZmllbGQta2V5LTMyLWJ5dGVzLWxvbmc="},
            "FIELD_ENCRYPTION_KEY is the development default",
        ),
        (
            {"FIELD_ENCRYPTION_KEY": "ZGV2LW9ubHktZmllbGQta2V5LTMyLWJ5dGVzLWxvbmc= ," + Fernet.generate_key().decode()},
            "FIELD_ENCRYPTION_KEY is the development default",
        ),
        ({"FIELD_ENCRYPTION_KEY": "not-a-fernet-key"}, "FIELD_ENCRYPTION_KEY must be url-safe base64"),
        ({"CELERY_BROKER_URL": "filesystem://"}, "CELERY_BROKER_URL is the development default"),
        ({"DJANGO_ENV": "prod"}, "DJANGO_ENV must be development or production"),
    ],
)
def test_production_refuses_to_start_on_development_settings(changes, message):
    """Debug pages show local variables (a revealed secret) and mount the sandbox; the development keys are public;
    a key that does not parse would fail every payment later instead of the start-up now."""
    result = _settings_in_subprocess(**changes)
    assert result.returncode != 0
    assert message in result.stderr


def test_demo_data_and_the_laptop_runner_refuse_a_real_production(settings):
    settings.IS_PRODUCTION, settings.DEBUG, settings.SANDBOX_MOUNTED = True, False, False
    with pytest.raises(CommandError, match="published password"):
        call_command("seed_demo", stdout=io.StringIO())
    with pytest.raises(CommandError, match="laptop"):
        call_command("run_embedded", stdout=io.StringIO())
    # The bench-only flag does not make a real production (no sandbox upstream) seed either.
    with pytest.raises(CommandError, match="only for a cluster whose upstream is the sandbox"):
        call_command("seed_demo", "--allow-in-production", stdout=io.StringIO())
    # Production settings with the sandbox forced on, without the flag: still refused.
    settings.SANDBOX_MOUNTED = True
    with pytest.raises(CommandError, match="pass --allow-in-production"):
        call_command("seed_demo", stdout=io.StringIO())
    assert not get_user_model().objects.filter(username="admin").exists()
    # A production-shaped cluster whose upstream is the sandbox (make bench / make faults, wheel-check) seeds when it
    # passes the flag.
    call_command("seed_demo", "--allow-in-production", stdout=io.StringIO())
    assert get_user_model().objects.filter(username="admin").exists()


def test_key_rotation_keeps_every_node_working_and_verifies_before_the_old_key_goes(settings):
    """README: every node gets new,old; rotate_field_keys; rotate_field_keys --verify; every node gets new."""
    old, new = settings.FIELD_ENCRYPTION_KEY, Fernet.generate_key().decode()
    device, secret = make_device()
    settings.FIELD_ENCRYPTION_KEY = f"{new},{old}"  # deployed to every node first
    with pytest.raises(CommandError, match="1 values still need an old key"):
        call_command("rotate_field_keys", "--verify", stdout=io.StringIO())
    call_command("rotate_field_keys", stdout=io.StringIO())
    rotated = services.device_rotate_secret(device=device, actor=None, actor_label="staff")  # a node, meanwhile
    out = io.StringIO()
    call_command("rotate_field_keys", "--verify", stdout=out)
    assert "opens with the primary key alone" in out.getvalue()
    settings.FIELD_ENCRYPTION_KEY = new  # the old key removed everywhere
    assert Device.objects.get(pk=device.pk).secret.reveal() == rotated != secret


def test_the_wsgi_entry_point_freezes_the_long_lived_objects():
    """portal/wsgi.py moves settings, models, URLconf and views into the collector's permanent generation, so a
    full collection in a web worker does not walk them (measured: an ~80 ms pause became ~2 ms)."""
    # In a process of its own: frozen objects are never collected, which a test process must not inherit.
    script = "import gc, portal.wsgi; print(gc.get_freeze_count())"
    frozen = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert int(frozen) > 10_000
