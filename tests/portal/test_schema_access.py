"""The OpenAPI schema and its viewers: public in development, for signed-in console staff in production
(API_SCHEMA_PUBLIC)."""

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

from portal.models import StaffMembership
from tests.factories import MerchantFactory, make_user

pytestmark = pytest.mark.django_db

VIEWERS = ["/api/schema/docs/", "/api/schema/redoc/"]


def test_development_serves_the_schema_and_viewers_to_anyone(client, settings):
    settings.API_SCHEMA_PUBLIC = True
    assert client.get("/api/schema/").status_code == 200
    for path in VIEWERS:
        assert client.get(path).status_code == 200


def test_production_default_is_not_public_and_development_is():
    from tests.portal.test_commands_and_ops import PRODUCTION

    def value(**env):
        code = "import django; django.setup(); from django.conf import settings as s; print(s.API_SCHEMA_PUBLIC)"
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", **env}
        env.pop("API_SCHEMA_PUBLIC", None)
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert value(**PRODUCTION) == "False"
    assert value(DJANGO_ENV="development") == "True"


def test_anonymous_gets_json_for_the_schema_and_the_sign_in_page_for_the_viewers(client, settings):
    settings.API_SCHEMA_PUBLIC = False
    response = client.get("/api/schema/")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "LOGIN_REQUIRED"
    assert b"openapi" not in response.content
    for path in VIEWERS:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next={path}"


def test_signed_in_staff_read_the_schema_and_viewers(client, settings):
    settings.API_SCHEMA_PUBLIC = False
    user = make_user("cashier", role=StaffMembership.Role.MERCHANT_STAFF, merchant=MerchantFactory())
    client.force_login(user)
    response = client.get("/api/schema/")
    assert response.status_code == 200 and b"openapi" in response.content
    for path in VIEWERS:
        assert client.get(path).status_code == 200


def test_a_signed_in_user_who_is_not_console_staff_is_refused(client, settings):
    settings.API_SCHEMA_PUBLIC = False
    client.force_login(make_user("nobody"))
    response = client.get("/api/schema/")
    assert (response.status_code, response.json()["code"]) == (403, "FORBIDDEN")
    assert client.get(VIEWERS[0]).status_code == 403
