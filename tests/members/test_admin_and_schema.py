"""Django admin registration (read-only, audited erase action) and the OpenAPI schema of the member endpoints."""

import pytest
from django.test import Client

from members import services
from members.models import Member
from portal.models import AuditLog
from tests.factories import login_verified, make_device, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def member():
    device = make_device()[0]
    return services.member_identify(device=device, data=services.IdentifyInput(openid="oAdmin_1", nickname="n")).member


@pytest.fixture
def admin_client():
    client = login_verified(Client(), make_user("root", superuser=True))
    return client


def test_admin_lists_and_searches_members_and_events(admin_client, member):
    assert admin_client.get("/admin/members/member/?q=oAdmin_1").status_code == 200
    assert admin_client.get(f"/admin/members/member/{member.pk}/change/").status_code == 200
    assert admin_client.get("/admin/members/memberevent/?kind__exact=IDENTIFIED").status_code == 200
    assert admin_client.get("/admin/members/member/add/").status_code == 403


def test_admin_erase_action_is_audited_with_the_user(admin_client, member):
    response = admin_client.post(
        "/admin/members/member/", {"action": "erase_personal_data", "_selected_action": [member.pk]}
    )

    assert response.status_code == 302
    member.refresh_from_db()
    assert member.openid.startswith("erased:")
    assert list(AuditLog.objects.filter(action="member.erase").values_list("actor_label", flat=True)) == ["root"]
    assert Member.objects.count() == 1


def test_schema_documents_both_terminal_endpoints():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/json")

    paths = response.json()["paths"]
    assert list(paths["/api/terminal/v1/members/identify"]) == ["post"]
    assert list(paths["/api/terminal/v1/members/activations"]) == ["post"]
