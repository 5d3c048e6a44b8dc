"""Console: API clients for provider and merchant admins only, over the merchants they may see; the secret shown
once, on the page after the form, and never again; revoking behind a confirmation; every change audited without a
secret; the pages in Chinese."""

from __future__ import annotations

import logging

import pytest
from oauth2_provider.models import AccessToken

from merchant_api import services
from merchant_api.models import MerchantApiClient
from portal.models import AuditLog, StaffMembership
from tests.factories import MerchantFactory, ServiceProviderFactory, login_verified, make_user

from .conftest import basic, token_request

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role
LIST = "/api-clients/"
NEW = "/api-clients/new"


@pytest.fixture
def people(db):
    provider, other_provider = ServiceProviderFactory(), ServiceProviderFactory()
    a = MerchantFactory(provider=provider, name="Merchant A")
    a2 = MerchantFactory(provider=provider, name="Merchant A2")
    b = MerchantFactory(provider=other_provider, name="Merchant B")
    return {
        "a": a, "a2": a2, "b": b,
        "client_a": services.api_client_create(merchant=a, name="POS of A", actor=None)[0],
        "client_a2": services.api_client_create(merchant=a2, name="ERP of A2", actor=None)[0],
        "client_b": services.api_client_create(merchant=b, name="POS of B", actor=None)[0],
        "a_admin": make_user("a_admin", role=Role.MERCHANT_ADMIN, merchant=a),
        "a_staff": make_user("a_staff", role=Role.MERCHANT_STAFF, merchant=a),
        "p_admin": make_user("p_admin", role=Role.PROVIDER_ADMIN, provider=provider),
        "p_reviewer": make_user("p_reviewer", role=Role.PROVIDER_REVIEWER, provider=provider),
    }  # fmt: skip


def as_user(client, user, language="en"):
    login_verified(client, user)
    client.cookies["django_language"] = language
    return client


def clients_table(response) -> str:
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    return html.split('id="api-clients"')[1] if 'id="api-clients"' in html else ""


def test_pages_need_a_sign_in(client, people):
    for url in (LIST, NEW, f"/api-clients/{people['client_a'].pk}/revoke"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


@pytest.mark.parametrize("who", ["a_staff", "p_reviewer"])
def test_merchant_staff_and_provider_reviewers_are_refused(client, people, who):
    as_user(client, people[who])
    target = people["client_a"]

    assert client.get(LIST).status_code == 403
    assert client.get(NEW).status_code == 403
    assert client.post(NEW, {"name": "x", "merchant": people["a"].pk}).status_code == 403
    assert client.post(f"/api-clients/{target.pk}/revoke", {"confirm": "yes"}).status_code == 403
    assert MerchantApiClient.objects.count() == 3
    target.refresh_from_db()
    assert target.is_active


def test_a_merchant_admin_sees_its_own_clients_only(client, people):
    table = clients_table(as_user(client, people["a_admin"]).get(LIST))

    assert "POS of A" in table and people["client_a"].client_id in table
    assert "ERP of A2" not in table and "POS of B" not in table
    assert "Merchant A<" not in table  # one merchant: no merchant column


def test_a_provider_admin_sees_its_providers_merchants_clients(client, people):
    table = clients_table(as_user(client, people["p_admin"]).get(LIST))

    assert "POS of A" in table and "ERP of A2" in table and "Merchant A2" in table
    assert "POS of B" not in table


def test_creating_shows_the_secret_once_and_keeps_only_its_hash(client, people, caplog):
    as_user(client, people["a_admin"])
    form = client.get(NEW).content.decode()
    assert "Merchant A<" in form and "Merchant B" not in form and "Merchant A2" not in form

    with caplog.at_level(logging.DEBUG):
        created = client.post(NEW, {"name": "Till system", "merchant": people["a"].pk})
        assert created.status_code == 302
        shown = client.get(created["Location"])
        again = client.get(created["Location"])

    new = MerchantApiClient.objects.get(name="Till system")
    assert new.merchant == people["a"] and new.created_by == people["a_admin"]
    page = shown.content.decode()
    secret = page.split('id="client-secret">')[1].split("<")[0]
    assert len(secret) >= 40 and new.client_id in page and "/api/merchant/v1/oauth/token" in page
    assert shown["Cache-Control"] == "no-store"
    assert secret not in again.content.decode() and 'id="secret-gone"' in again.content.decode()
    assert new.application.client_secret != secret  # hashed
    assert all(secret not in record.getMessage() for record in caplog.records)
    entry = AuditLog.objects.get(action="merchant_api.client_create", object_id=str(new.pk))
    assert entry.actor == people["a_admin"] and entry.merchant == people["a"]
    assert entry.details == {"name": "Till system", "client_id": new.client_id}
    assert secret not in str(entry.details)
    token = token_request(client, auth=basic(new.client_id, secret), grant_type="client_credentials")
    assert token.status_code == 200  # the secret shown works


def test_the_secret_waits_five_minutes_at_most(client, people):
    as_user(client, people["a_admin"])
    created = client.post(NEW, {"name": "Late", "merchant": people["a"].pk})
    session = client.session
    session["shown_once"]["until"] -= 301
    session.save()

    page = client.get(created["Location"]).content.decode()

    assert 'id="client-secret"' not in page and 'id="secret-gone"' in page


def test_a_merchant_admin_cannot_create_a_client_for_another_merchant(client, people):
    as_user(client, people["a_admin"])

    for foreign in (people["a2"], people["b"]):
        response = client.post(NEW, {"name": "Sneaky", "merchant": foreign.pk})
        assert response.status_code == 400 and "merchant" in response.context["form"].errors
    assert not MerchantApiClient.objects.filter(name="Sneaky").exists()


def test_a_provider_admin_creates_for_its_own_merchants_only(client, people):
    as_user(client, people["p_admin"])

    assert client.post(NEW, {"name": "ERP 2", "merchant": people["a2"].pk}).status_code == 302
    assert client.post(NEW, {"name": "ERP 3", "merchant": people["b"].pk}).status_code == 400
    assert list(MerchantApiClient.objects.filter(name__in=["ERP 2", "ERP 3"]).values_list("name", "merchant")) == [
        ("ERP 2", people["a2"].pk)
    ]


def test_revoking_asks_first_then_stops_the_tokens(client, people):
    target = people["client_a"]
    kiosk, kiosk_secret = services.api_client_create(merchant=people["a"], name="Kiosk", actor=None)
    token_request(client, auth=basic(kiosk.client_id, kiosk_secret), grant_type="client_credentials")
    assert AccessToken.objects.filter(application=kiosk.application).count() == 1
    as_user(client, people["a_admin"])

    confirm = client.get(f"/api-clients/{kiosk.pk}/revoke")
    assert confirm.status_code == 200 and 'name="confirm"' in confirm.content.decode()
    kiosk.refresh_from_db()
    assert kiosk.is_active
    done = client.post(f"/api-clients/{kiosk.pk}/revoke", {"confirm": "yes"})

    assert done.status_code == 302
    kiosk.refresh_from_db()
    assert not kiosk.is_active and kiosk.revoked_at is not None
    assert not AccessToken.objects.filter(application=kiosk.application).exists()
    assert AuditLog.objects.get(action="merchant_api.client_revoke").actor == people["a_admin"]
    target.refresh_from_db()
    assert target.is_active
    table = clients_table(client.get(LIST))
    assert "Revoked" in table
    again = client.post(f"/api-clients/{kiosk.pk}/revoke", {"confirm": "yes"}, follow=True)
    assert "This client was already revoked." in again.content.decode()
    assert AuditLog.objects.filter(action="merchant_api.client_revoke").count() == 1


def test_a_client_outside_ones_scope_is_not_found(client, people):
    as_user(client, people["a_admin"])
    for foreign in (people["client_a2"], people["client_b"]):
        assert client.post(f"/api-clients/{foreign.pk}/revoke", {"confirm": "yes"}).status_code == 404
        foreign.refresh_from_db()
        assert foreign.is_active
    as_user(client, people["p_admin"])
    assert client.post(f"/api-clients/{people['client_b'].pk}/revoke", {"confirm": "yes"}).status_code == 404
    assert client.post(f"/api-clients/{people['client_a2'].pk}/revoke", {"confirm": "yes"}).status_code == 302


def test_the_pages_are_in_chinese(client, people):
    as_user(client, people["p_admin"], language="zh-hans")

    listing = client.get(LIST).content.decode()
    assert "API 客户端" in listing and "新建 API 客户端" in listing and "撤销" in listing
    form = client.get(NEW).content.decode()
    assert "名称" in form and "商户" in form and "创建" in form
    created = client.post(NEW, {"name": "收银系统", "merchant": people["a"].pk})
    shown = client.get(created["Location"]).content.decode()
    assert "客户端密钥" in shown and "只显示这一次" in shown
    confirm = client.get(f"/api-clients/{people['client_a'].pk}/revoke").content.decode()
    assert "撤销 API 客户端" in confirm
