"""Console member pages: list/search (scoped), detail with history, erasure (ERASE_MEMBER only, audited)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from members import services
from members.models import ERASED_PREFIX, Member
from payments.models import Payment
from portal.models import AuditLog, StaffMembership
from tests.factories import (
    MerchantFactory,
    ServiceProviderFactory,
    StoreFactory,
    login_verified,
    make_device,
    make_user,
)

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


@pytest.fixture
def world():
    provider = ServiceProviderFactory()
    a, b = MerchantFactory(provider=provider, name="Merchant A"), MerchantFactory(name="Merchant B")
    device_a, _ = make_device(StoreFactory(merchant=a))
    device_b, _ = make_device(StoreFactory(merchant=b))
    services.member_identify(device=device_a, data=services.IdentifyInput(openid=OPENID, nickname="小明"))
    services.member_identify(device=device_a, data=services.IdentifyInput(openid="oOtherUserOfA", nickname="Lily"))
    services.member_identify(device=device_b, data=services.IdentifyInput(openid="oUserOfB", nickname="Bob"))
    Member.objects.filter(openid="oOtherUserOfA").update(card_activated=True, activated_at="2026-01-01T00:00Z")
    return {
        "a": a,
        "b": b,
        "member": Member.objects.get(merchant=a, openid=OPENID),
        "member_b": Member.objects.get(merchant=b),
        "device_a": device_a,
        "p_admin": make_user("p_admin", role=Role.PROVIDER_ADMIN, provider=provider),
        "p_reviewer": make_user("p_reviewer", role=Role.PROVIDER_REVIEWER, provider=provider),
        "a_admin": make_user("a_admin", role=Role.MERCHANT_ADMIN, merchant=a),
        "a_staff": make_user("a_staff", role=Role.MERCHANT_STAFF, merchant=a),
        "b_admin": make_user("b_admin", role=Role.MERCHANT_ADMIN, merchant=b),
    }


def as_user(client, user):
    login_verified(client, user)
    client.cookies["django_language"] = "en"
    return client


def url(name, *args):
    return reverse(f"portal:{name}", args=args)


@pytest.mark.parametrize(("name", "with_id"), [("member_list", False), ("member_detail", True), ("member_erase", True)])
def test_anonymous_is_sent_to_login(client, world, name, with_id):
    response = client.get(url(name, world["member"].pk) if with_id else url(name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("portal:login"))


@pytest.mark.parametrize("role", ["p_admin", "p_reviewer", "a_admin", "a_staff"])
def test_list_and_detail_render_for_every_role_in_scope(client, world, role):
    user = as_user(client, world[role])

    listing = user.get(url("member_list"))
    detail = user.get(url("member_detail", world["member"].pk))

    assert listing.status_code == detail.status_code == 200
    assert OPENID in listing.content.decode() and "oUserOfB" not in listing.content.decode()
    assert OPENID in detail.content.decode()


def rows(body: str) -> set[str]:
    """openids listed in the table (the search box and the language form echo the query itself)."""
    return {openid for openid in (OPENID, "oOtherUserOfA", "oUserOfB") if f"<code>{openid}</code>" in body}


def test_list_search_and_activation_filter(client, world):
    user = as_user(client, world["a_staff"])

    def listed(**params):
        return rows(user.get(url("member_list"), params).content.decode())

    assert listed(q=OPENID) == {OPENID}
    assert listed(q="lil") == {"oOtherUserOfA"}
    assert listed(activated="yes") == {"oOtherUserOfA"}
    assert listed(activated="no") == {OPENID}
    assert listed(q="oUserOfB") == set()
    assert "No member matches these filters." in user.get(url("member_list"), {"q": "oUserOfB"}).content.decode()


def test_list_is_empty_for_a_merchant_without_members(client, world):
    lonely = MerchantFactory()
    body = as_user(client, make_user("lonely", role=Role.MERCHANT_ADMIN, merchant=lonely)).get(url("member_list"))

    assert "No members yet" in body.content.decode()


def test_list_paginates(client, world):
    for n in range(30):
        services.member_identify(device=world["device_a"], data=services.IdentifyInput(openid=f"oBulk{n:02d}"))
    user = as_user(client, world["a_admin"])

    first = user.get(url("member_list")).content.decode()
    last = user.get(url("member_list"), {"page": 2}).content.decode()

    assert "Page 1 of 2 (32 in all)" in first and "?page=2" in first
    assert "Page 2 of 2" in last


def test_detail_shows_visits_and_payments(client, world):
    Payment.objects.create(
        merchant=world["a"], store=world["device_a"].store, channel=world["a"].channel, method=Payment.Method.FACE,
        out_trade_no="MEMBER-PAY-1", total_fee=2500, body="coffee", openid=OPENID, request_fingerprint="x" * 64,
    )  # fmt: skip

    body = as_user(client, world["a_staff"]).get(url("member_detail", world["member"].pk)).content.decode()

    assert "MEMBER-PAY-1" in body and "¥25.00" in body
    assert "Identified (visit)" in body
    assert url("member_erase", world["member"].pk) not in body  # staff may not erase: no button


@pytest.mark.parametrize("role", ["b_admin"])
@pytest.mark.parametrize("name", ["member_detail", "member_erase"])
def test_another_merchants_member_is_404(client, world, role, name):
    user = as_user(client, world[role])

    assert user.get(url(name, world["member"].pk)).status_code == 404
    assert user.post(url("member_erase", world["member"].pk), {"confirm": "yes"}).status_code == 404
    assert not Member.objects.get(pk=world["member"].pk).is_anonymised


@pytest.mark.parametrize("role", ["p_reviewer", "a_staff"])
def test_roles_without_erase_get_403(client, world, role):
    user = as_user(client, world[role])

    assert user.get(url("member_erase", world["member"].pk)).status_code == 403
    assert user.post(url("member_erase", world["member"].pk), {"confirm": "yes"}).status_code == 403
    assert not Member.objects.get(pk=world["member"].pk).is_anonymised
    assert not AuditLog.objects.filter(action="member.erase").exists()


def test_erase_needs_confirmation_then_erases_and_audits(client, world):
    user = as_user(client, world["a_admin"])
    member = world["member"]

    assert url("member_erase", member.pk) in user.get(url("member_detail", member.pk)).content.decode()
    confirm_page = user.get(url("member_erase", member.pk))
    unconfirmed = user.post(url("member_erase", member.pk))
    assert confirm_page.status_code == unconfirmed.status_code == 200
    assert not Member.objects.get(pk=member.pk).is_anonymised

    response = user.post(url("member_erase", member.pk), {"confirm": "yes"})

    erased = Member.objects.get(pk=member.pk)
    assert response["Location"] == url("member_detail", member.pk)
    assert erased.openid.startswith(ERASED_PREFIX) and erased.nickname == ""
    audit = AuditLog.objects.get(action="member.erase")
    assert (audit.actor, audit.object_id) == (world["a_admin"], str(member.pk))
    detail = user.get(url("member_detail", member.pk)).content.decode()
    assert OPENID not in detail and "小明" not in detail and erased.openid not in detail
    assert url("member_erase", member.pk) not in detail
    assert rows(user.get(url("member_list"), {"q": OPENID}).content.decode()) == set()


def test_chinese_by_default(client, world):
    login_verified(client, world["a_admin"])

    body = client.get(url("member_list")).content.decode()

    assert "会员卡" in body and "Member card" not in body
