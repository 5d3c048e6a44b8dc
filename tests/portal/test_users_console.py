"""The users page and its services: admins manage staff within their own scope only, no path escalates a role,
generated passwords are shown once and must be changed at the first sign-in, and every change is audited."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal import users
from portal.errors import DomainError, Forbidden, InvalidState
from portal.models import AuditLog, StaffMembership
from portal.permissions import ROLE_ACTIONS, Action, can
from portal.selectors import audit_visible_to
from tests.factories import (
    PASSWORD,
    MerchantFactory,
    ServiceProviderFactory,
    enrol_totp,
    login_verified,
    make_user,
    totp_code,
)

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role
User = get_user_model()


@pytest.fixture
def world():
    p1, p2 = ServiceProviderFactory(name="华南服务商"), ServiceProviderFactory(name="华北服务商")
    m_a, m_b = MerchantFactory(provider=p1, name="Merchant A"), MerchantFactory(provider=p1, name="Merchant B")
    m_c = MerchantFactory(provider=p2, name="Merchant C")
    return {
        "p1": p1,
        "p2": p2,
        "m_a": m_a,
        "m_b": m_b,
        "m_c": m_c,
        "root": make_user("root", superuser=True),
        "p1_admin": make_user("p1-admin", role=Role.PROVIDER_ADMIN, provider=p1),
        "p1_reviewer": make_user("p1-reviewer", role=Role.PROVIDER_REVIEWER, provider=p1),
        "p2_admin": make_user("p2-admin", role=Role.PROVIDER_ADMIN, provider=p2),
        "a_admin": make_user("a-admin", role=Role.MERCHANT_ADMIN, merchant=m_a),
        "a_staff": make_user("a-staff", role=Role.MERCHANT_STAFF, merchant=m_a),
        "b_admin": make_user("b-admin", role=Role.MERCHANT_ADMIN, merchant=m_b),
        "b_staff": make_user("b-staff", role=Role.MERCHANT_STAFF, merchant=m_b),
        "c_admin": make_user("c-admin", role=Role.MERCHANT_ADMIN, merchant=m_c),
    }


def as_user(client, user, language="en"):
    login_verified(client, user)
    client.cookies["django_language"] = language
    return client


def url(name: str, *args) -> str:
    return reverse(f"portal:{name}", args=args)


def snapshot(user) -> tuple:
    """Everything a refused change must leave as it was."""
    user.refresh_from_db()
    membership = StaffMembership.objects.get(user=user)
    devices = TOTPDevice.objects.filter(user=user).count() + StaticDevice.objects.filter(user=user).count()
    return (user.password, user.is_active, user.is_superuser, membership.role, membership.must_change_password, devices)


CHANGES = {
    "role": lambda actor, m: users.staff_update_role(actor=actor, membership=m, role=Role.MERCHANT_STAFF),
    "promote": lambda actor, m: users.staff_update_role(actor=actor, membership=m, role=Role.PROVIDER_ADMIN),
    "disable": lambda actor, m: users.staff_set_active(actor=actor, membership=m, active=False),
    "reset_password": lambda actor, m: users.staff_reset_password(actor=actor, membership=m),
    "reset_two_factor": lambda actor, m: users.staff_reset_two_factor(actor=actor, membership=m),
}


def refused_without_change(actor, target, change: str) -> None:
    enrol_totp(target)
    before, audit_rows = snapshot(target), AuditLog.objects.count()
    with pytest.raises(DomainError):
        CHANGES[change](actor, target.membership)
    assert snapshot(target) == before
    assert AuditLog.objects.count() == audit_rows


# --- who may manage users ------------------------------------------------------------------------------------------


def test_only_admins_may_manage_users(world):
    allowed = {
        name
        for name in ("root", "p1_admin", "p1_reviewer", "a_admin", "a_staff")
        if can(world[name], Action.MANAGE_USERS)
    }
    assert allowed == {"root", "p1_admin", "a_admin"}


def test_nobody_can_grant_a_role_that_can_do_more_than_their_own(world):
    assert set(users.grantable_roles(world["root"])) == set(Role.values)
    assert set(users.grantable_roles(world["p1_admin"])) == set(Role.values)
    assert users.grantable_roles(world["a_admin"]) == [Role.MERCHANT_ADMIN, Role.MERCHANT_STAFF]
    assert users.grantable_roles(world["p1_reviewer"]) == []
    assert users.grantable_roles(world["a_staff"]) == []


def test_each_admin_sees_only_the_staff_of_their_scope(world):
    def seen(actor) -> set[str]:
        return set(users.staff_visible_to(world[actor]).values_list("user__username", flat=True))

    assert seen("p1_admin") == {"p1-admin", "p1-reviewer", "a-admin", "a-staff", "b-admin", "b-staff"}
    assert seen("a_admin") == {"a-admin", "a-staff"}
    assert seen("p1_reviewer") == set() and seen("a_staff") == set()
    assert len(seen("root")) == 8


def test_an_account_whose_role_can_do_more_than_the_admins_is_out_of_their_reach(world, monkeypatch):
    monkeypatch.setitem(ROLE_ACTIONS, Role.MERCHANT_STAFF, ROLE_ACTIONS[Role.MERCHANT_STAFF] | {Action.RESOLVE})
    assert Role.MERCHANT_STAFF not in users.grantable_roles(world["a_admin"])
    with pytest.raises(Forbidden):
        users.staff_create(
            actor=world["a_admin"], username="x", name="X", role=Role.MERCHANT_STAFF, merchant=world["m_a"]
        )
    for change in ("disable", "reset_password", "reset_two_factor"):
        refused_without_change(world["a_admin"], world["a_staff"], change)


@pytest.mark.parametrize("actor", ["p1_reviewer", "a_staff"])
def test_reviewers_and_merchant_staff_can_do_nothing_here(client, world, actor):
    with pytest.raises(Forbidden):
        users.staff_create(actor=world[actor], username="x", name="X", role=Role.MERCHANT_STAFF, merchant=world["m_a"])
    for change in CHANGES:
        refused_without_change(world[actor], world["b_staff"], change)

    as_user(client, world[actor])
    target = world["a_staff"].membership.pk
    pages = [
        ("get", url("staff_list")),
        ("get", url("staff_create")),
        ("post", url("staff_create")),
        ("get", url("staff_detail", target)),
        ("post", url("staff_role", target)),
        ("post", url("staff_disable", target)),
        ("post", url("staff_enable", target)),
        ("post", url("staff_reset_password", target)),
        ("post", url("staff_reset_two_factor", target)),
    ]
    for method, address in pages:
        assert getattr(client, method)(address, {"confirm": "yes"}).status_code == 403, address
    assert not User.objects.filter(username="x").exists()
    assert "/users/" not in client.get(url("home")).content.decode()  # no link to the page either


# --- no escalation: merchant admins -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.PROVIDER_ADMIN, Role.PROVIDER_REVIEWER])
def test_a_merchant_admin_cannot_create_a_provider_role(world, role):
    for owner in ({"provider": world["p1"]}, {"merchant": world["m_a"]}):
        with pytest.raises(DomainError):
            users.staff_create(actor=world["a_admin"], username="sneaky", name="S", role=role, **owner)
    assert not User.objects.filter(username="sneaky").exists()


@pytest.mark.parametrize("change", ["promote", "role", "disable", "reset_password", "reset_two_factor"])
@pytest.mark.parametrize("target", ["b_staff", "b_admin", "p1_reviewer", "p1_admin", "c_admin"])
def test_a_merchant_admin_cannot_touch_another_merchants_or_the_providers_users(world, target, change):
    refused_without_change(world["a_admin"], world[target], change)


def test_a_merchant_admin_cannot_promote_their_staff_to_a_provider_role(world):
    for role in (Role.PROVIDER_ADMIN, Role.PROVIDER_REVIEWER):
        with pytest.raises(DomainError):
            users.staff_update_role(actor=world["a_admin"], membership=world["a_staff"].membership, role=role)
    assert StaffMembership.objects.get(user=world["a_staff"]).role == Role.MERCHANT_STAFF


def test_a_merchant_admin_cannot_create_staff_for_another_merchant(world):
    for merchant in ("m_b", "m_c"):
        with pytest.raises(Forbidden):
            users.staff_create(
                actor=world["a_admin"], username="x", name="X", role=Role.MERCHANT_STAFF, merchant=world[merchant]
            )
    assert not User.objects.filter(username="x").exists()


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("actor", ["a_admin", "p1_admin"])
def test_nobody_changes_their_own_account_here(world, actor, change):
    # Another admin exists, so only the rule about oneself can refuse.
    other = "a_admin2" if actor == "a_admin" else "p1_admin2"
    owner = {"merchant": world["m_a"]} if actor == "a_admin" else {"provider": world["p1"]}
    make_user(other, role=world[actor].membership.role, **owner)
    refused_without_change(world[actor], world[actor], change)


# --- no escalation: provider admins ---------------------------------------------------------------------------------


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("target", ["p2_admin", "c_admin"])
def test_a_provider_admin_cannot_manage_another_providers_users(world, target, change):
    refused_without_change(world["p1_admin"], world[target], change)


def test_a_provider_admin_cannot_add_staff_to_another_provider_or_its_merchants(world):
    attempts = [
        {"role": Role.PROVIDER_REVIEWER, "provider": world["p2"]},
        {"role": Role.MERCHANT_STAFF, "merchant": world["m_c"]},
        {"role": Role.PROVIDER_ADMIN, "provider": world["p2"]},
    ]
    for attempt in attempts:
        with pytest.raises(Forbidden):
            users.staff_create(actor=world["p1_admin"], username="x", name="X", **attempt)
    assert not User.objects.filter(username="x").exists()


def test_a_provider_admin_cannot_manage_a_platform_superuser(world):
    operator = make_user("operator", role=Role.MERCHANT_STAFF, merchant=world["m_a"])
    User.objects.filter(pk=operator.pk).update(is_superuser=True, is_staff=True)
    operator.refresh_from_db()
    for change in CHANGES:
        refused_without_change(world["p1_admin"], operator, change)


def test_a_role_must_match_its_owner(world):
    with pytest.raises(DomainError):
        users.staff_create(
            actor=world["p1_admin"], username="x", name="X", role=Role.PROVIDER_REVIEWER, merchant=world["m_a"]
        )
    with pytest.raises(DomainError):
        users.staff_update_role(
            actor=world["p1_admin"], membership=world["a_staff"].membership, role=Role.PROVIDER_ADMIN
        )
    assert not User.objects.filter(username="x").exists()


# --- the last admin ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("actor", "target"), [("p1_admin", "a_admin"), ("root", "p1_admin")])
def test_the_last_active_admin_can_be_neither_disabled_nor_demoted(world, actor, target):
    membership = world[target].membership
    demoted_role = Role.MERCHANT_STAFF if target == "a_admin" else Role.PROVIDER_REVIEWER
    for change in (
        lambda: users.staff_set_active(actor=world[actor], membership=membership, active=False),
        lambda: users.staff_update_role(actor=world[actor], membership=membership, role=demoted_role),
    ):
        with pytest.raises(InvalidState, match="last active admin"):
            change()
    assert snapshot(world[target])[1:4] == (True, False, membership.role)

    # A disabled second admin does not count; an active one does.
    owner = {"merchant": world["m_a"]} if target == "a_admin" else {"provider": world["p1"]}
    second = make_user("second-admin", role=membership.role, **owner)
    User.objects.filter(pk=second.pk).update(is_active=False)
    with pytest.raises(InvalidState):
        users.staff_set_active(actor=world[actor], membership=membership, active=False)
    User.objects.filter(pk=second.pk).update(is_active=True)
    users.staff_update_role(actor=world[actor], membership=membership, role=demoted_role)
    assert StaffMembership.objects.get(pk=membership.pk).role == demoted_role


# --- the pages ------------------------------------------------------------------------------------------------------


def test_the_list_shows_the_scope_with_role_owner_status_and_two_factor(client, world):
    enrol_totp(world["a_admin"])
    User.objects.filter(pk=world["b_staff"].pk).update(is_active=False)
    body = as_user(client, world["p1_admin"]).get(url("staff_list")).content.decode()
    for shown in ("a-admin", "b-staff", "p1-reviewer", "Merchant A", "华南服务商", "Merchant admin", "Disabled", "On"):
        assert shown in body, shown
    assert "c-admin" not in body and "p2-admin" not in body and "root" not in body

    body = as_user(client, world["a_admin"]).get(url("staff_list")).content.decode()
    assert "a-staff" in body and "b-staff" not in body and "p1-reviewer" not in body


def test_the_users_page_is_in_chinese_by_default(client, world):
    body = as_user(client, world["p1_admin"], language="zh-hans").get(url("staff_list")).content.decode()
    assert "用户" in body and "添加用户" in body and "Add a user" not in body and "Last sign-in" not in body
    body = client.get(url("staff_create")).content.decode()
    assert "任职于" in body and "Works for" not in body


def test_the_create_form_offers_only_what_the_admin_may_grant(client, world):
    body = as_user(client, world["a_admin"]).get(url("staff_create")).content.decode()
    assert "Merchant A" in body and "Merchant B" not in body and "华南服务商" not in body
    assert 'value="MERCHANT_STAFF"' in body and 'value="PROVIDER_ADMIN"' not in body

    body = as_user(client, world["p1_admin"]).get(url("staff_create")).content.decode()
    assert "Merchant A" in body and "Merchant B" in body and "华南服务商" in body and "Merchant C" not in body


def test_posting_another_owners_ids_is_refused_with_nothing_changed(client, world):
    as_user(client, world["a_admin"])
    audit_rows = AuditLog.objects.count()
    for owner in (f"merchant:{world['m_b'].pk}", f"provider:{world['p1'].pk}", f"merchant:{world['m_c'].pk}"):
        response = client.post(
            url("staff_create"), {"username": "x", "name": "X", "role": Role.MERCHANT_STAFF, "owner": owner}
        )
        assert response.status_code == 400
    response = client.post(
        url("staff_create"),
        {"username": "x", "name": "X", "role": Role.PROVIDER_ADMIN, "owner": f"merchant:{world['m_a'].pk}"},
    )
    assert response.status_code == 400
    assert not User.objects.filter(username="x").exists()

    for target in ("b_staff", "p1_reviewer", "c_admin"):
        before = snapshot(world[target])
        pk = world[target].membership.pk
        for name in ("staff_detail", "staff_role", "staff_disable", "staff_reset_password", "staff_reset_two_factor"):
            assert client.post(url(name, pk), {"confirm": "yes", "role": Role.MERCHANT_ADMIN}).status_code == 404
        assert snapshot(world[target]) == before
    assert AuditLog.objects.count() == audit_rows


def test_posted_extras_make_no_superuser_or_staff(client, world):
    as_user(client, world["p1_admin"])
    client.post(
        url("staff_create"),
        {
            "username": "new-admin",
            "name": "新管理员",
            "role": Role.PROVIDER_ADMIN,
            "owner": f"provider:{world['p1'].pk}",
            "is_superuser": "on",
            "is_staff": "on",
        },
    )
    created = User.objects.get(username="new-admin")
    assert (created.is_superuser, created.is_staff) == (False, False)
    assert created.membership.provider == world["p1"]


def test_create_shows_the_password_once_and_stores_only_its_hash(client, world, caplog):
    caplog.set_level(logging.DEBUG)
    as_user(client, world["a_admin"])
    response = client.post(
        url("staff_create"),
        {
            "username": "cashier-2",
            "name": "王小二",
            "role": Role.MERCHANT_STAFF,
            "owner": f"merchant:{world['m_a'].pk}",
        },
    )
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert page["Cache-Control"] == "no-store"
    password = page.content.decode().split('id="one-time-password">')[1].split("<")[0]
    assert len(password) == 19

    created = User.objects.get(username="cashier-2")
    assert created.check_password(password) and password not in created.password
    assert created.first_name == "王小二" and created.membership.must_change_password
    entry = AuditLog.objects.get(action="staff.created")
    assert (entry.actor, entry.merchant, entry.details) == (
        world["a_admin"],
        world["m_a"],
        {"username": "cashier-2", "role": "MERCHANT_STAFF"},
    )
    assert password not in caplog.text

    again = client.get(response["Location"]).content.decode()
    assert password not in again and 'id="password-gone"' in again
    assert password not in client.get(url("staff_detail", created.membership.pk)).content.decode()


def test_a_taken_username_is_refused_whatever_its_case(client, world):
    as_user(client, world["a_admin"])
    response = client.post(
        url("staff_create"),
        {"username": "A-STAFF", "name": "X", "role": "MERCHANT_STAFF", "owner": f"merchant:{world['m_a'].pk}"},
    )
    assert response.status_code == 400 and "already taken" in response.content.decode()
    assert User.objects.filter(username__iexact="a-staff").count() == 1


def test_every_change_is_audited_and_visible_to_the_owners_admins(client, world):
    as_user(client, world["p1_admin"])
    reviewer = world["p1_reviewer"].membership.pk
    enrol_totp(world["p1_reviewer"])
    assert client.post(url("staff_role", reviewer), {"role": Role.PROVIDER_ADMIN}).status_code == 302
    assert client.post(url("staff_role", reviewer), {"role": Role.PROVIDER_REVIEWER}).status_code == 302
    assert client.post(url("staff_disable", reviewer), {"confirm": "yes"}).status_code == 302
    assert client.post(url("staff_enable", reviewer)).status_code == 302
    password_page = client.post(url("staff_reset_password", reviewer), {"confirm": "yes"})
    password = client.get(password_page["Location"]).content.decode().split('id="one-time-password">')[1].split("<")[0]
    assert client.post(url("staff_reset_two_factor", reviewer), {"confirm": "yes"}).status_code == 302

    entries = AuditLog.objects.filter(object_type="StaffMembership", object_id=str(reviewer)).order_by("id")
    assert [entry.action for entry in entries] == [
        "staff.role_changed",
        "staff.role_changed",
        "staff.disabled",
        "staff.enabled",
        "staff.password_reset",
        "staff.two_factor_reset",
    ]
    assert entries[0].details == {"username": "p1-reviewer", "from": "PROVIDER_REVIEWER", "to": "PROVIDER_ADMIN"}
    assert all(entry.provider == world["p1"] and entry.actor == world["p1_admin"] for entry in entries)
    assert set(audit_visible_to(world["p1_admin"])) >= set(entries)
    assert not set(audit_visible_to(world["p2_admin"])) & set(entries)
    assert all(password not in str(entry.details) for entry in entries)

    reviewer_user = User.objects.get(pk=world["p1_reviewer"].pk)
    assert reviewer_user.check_password(password) and reviewer_user.membership.must_change_password
    assert not TOTPDevice.objects.filter(user=reviewer_user).exists()


def test_a_refused_change_says_why(client, world):
    as_user(client, world["p1_admin"])
    response = client.post(url("staff_disable", world["a_admin"].membership.pk), {"confirm": "yes"}, follow=True)
    assert "last active admin" in response.content.decode()
    assert User.objects.get(pk=world["a_admin"].pk).is_active


def test_disabling_ends_the_users_session_at_once(client, world):
    other = type(client)()
    login_verified(other, world["a_staff"])
    assert other.get(url("home")).status_code == 200
    as_user(client, world["a_admin"]).post(url("staff_disable", world["a_staff"].membership.pk), {"confirm": "yes"})
    assert other.get(url("home")).status_code == 302
    assert not other.login(username="a-staff", password=PASSWORD)


# --- the first sign-in ------------------------------------------------------------------------------------------------


def sign_in(client, username: str, password: str):
    return client.post(url("login"), {"username": username, "password": password})


def test_the_first_sign_in_forces_a_password_change_before_anything_else(client, world):
    _, password = users.staff_create(
        actor=world["a_admin"], username="newbie", name="新人", role=Role.MERCHANT_STAFF, merchant=world["m_a"]
    )
    client.cookies["django_language"] = "en"
    assert sign_in(client, "newbie", password).status_code == 302
    for address in (url("home"), url("payment_list"), url("two_factor_setup"), url("two_factor_verify")):
        response = client.get(address)
        assert response.status_code == 302 and response["Location"].startswith(url("password_change")), address
    page = client.get(url("password_change")).content.decode()
    assert "one-time password" in page
    assert client.get("/healthz").status_code == 200  # not the console

    response = client.post(
        url("password_change") + "?next=/payments/",
        {"old_password": password, "new_password1": "my-own-Secret-42", "new_password2": "my-own-Secret-42"},
    )
    assert response.status_code == 302 and response["Location"] == "/payments/"
    assert client.get(url("home")).status_code == 200
    assert not StaffMembership.objects.get(user__username="newbie").must_change_password
    assert AuditLog.objects.filter(action="staff.password_changed", actor__username="newbie").exists()


def test_sign_out_stays_possible_before_the_password_change(client, world):
    _, password = users.staff_create(
        actor=world["a_admin"], username="newbie", name="新人", role=Role.MERCHANT_STAFF, merchant=world["m_a"]
    )
    sign_in(client, "newbie", password)
    assert client.post(url("logout")).status_code == 302
    assert "_auth_user_id" not in client.session


def test_a_reset_password_ends_old_sessions_and_must_be_changed(client, world):
    session = type(client)()
    login_verified(session, world["a_staff"])
    password = users.staff_reset_password(actor=world["a_admin"], membership=world["a_staff"].membership)
    assert session.get(url("home")).status_code == 302 and "_auth_user_id" not in session.session
    assert not client.login(username="a-staff", password=PASSWORD)

    # The second factor comes first (a one-time password alone changes nothing), then the new password.
    sign_in(client, "a-staff", password)
    assert client.get(url("password_change"))["Location"].startswith(url("two_factor_verify"))
    client.post(url("two_factor_verify"), {"code": totp_code(enrol_totp(world["a_staff"]))})
    assert client.get(url("home"))["Location"].startswith(url("password_change"))


def test_a_new_admin_changes_the_password_then_enrols(client, world):
    _, password = users.staff_create(
        actor=world["a_admin"], username="new-admin", name="新管理员", role=Role.MERCHANT_ADMIN, merchant=world["m_a"]
    )
    sign_in(client, "new-admin", password)
    assert client.get(url("home"))["Location"].startswith(url("password_change"))
    client.post(
        url("password_change"),
        {"old_password": password, "new_password1": "my-own-Secret-42", "new_password2": "my-own-Secret-42"},
    )
    assert client.get(url("home"))["Location"].startswith(url("two_factor_setup"))
