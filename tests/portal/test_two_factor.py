"""Two-factor sign-in: who must have it, enrolment with a QR code and recovery codes shown once, the second step of
signing in (an authenticator code once, a recovery code once, wrong codes limited), and every console page, Django
admin and the staff API held behind it."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from portal import two_factor
from portal.models import AuditLog, StaffMembership
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
    provider = ServiceProviderFactory()
    merchant = MerchantFactory(provider=provider)
    return {
        "root": make_user("root", superuser=True),
        "p_admin": make_user("p-admin", role=Role.PROVIDER_ADMIN, provider=provider),
        "p_reviewer": make_user("p-reviewer", role=Role.PROVIDER_REVIEWER, provider=provider),
        "m_admin": make_user("m-admin", role=Role.MERCHANT_ADMIN, merchant=merchant),
        "m_staff": make_user("m-staff", role=Role.MERCHANT_STAFF, merchant=merchant),
    }


def url(name: str, *args) -> str:
    return reverse(f"portal:{name}", args=args)


def sign_in(client, username: str, password: str = PASSWORD, path: str = "/login/"):
    return client.post(path, {"username": username, "password": password})


def verify(client, code: str):
    return client.post(url("two_factor_verify"), {"code": code})


def verified(client) -> bool:
    return DEVICE_ID_SESSION_KEY in client.session


def recovery_codes_of(client, response) -> list[str]:
    page = client.get(response["Location"]).content.decode()
    return re.findall(
        r"\b[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}\b", page.split('id="recovery-codes"')[1].split("</pre>")[0]
    )


def enrol_through_the_page(client, user) -> list[str]:
    """Enrol as a person does: the page's secret into the app, its code back; returns the recovery codes shown."""
    client.get(url("two_factor_setup"))
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(url("two_factor_setup"), {"code": totp_code(device)})
    assert response.status_code == 302, response.content.decode()
    return recovery_codes_of(client, response)


# --- who must have it -------------------------------------------------------------------------------------------------


def test_required_for_roles_that_refund_or_settle_and_for_superusers(world):
    assert {name for name, user in world.items() if two_factor.required(user)} == {
        "root",
        "p_admin",
        "p_reviewer",
        "m_admin",
    }


@pytest.mark.parametrize("name", ["root", "p_admin", "p_reviewer", "m_admin"])
def test_a_user_who_must_have_it_and_has_none_is_sent_to_enrolment_first(client, world, name):
    assert sign_in(client, world[name].username).status_code == 302
    for address in (url("home"), url("payment_list"), url("password_change"), url("two_factor_verify")):
        response = client.get(address)
        assert response.status_code == 302 and response["Location"].startswith(url("two_factor_setup")), address
    assert client.get(url("two_factor_setup")).status_code == 200


def test_merchant_staff_may_sign_in_without_it(client, world):
    sign_in(client, "m-staff")
    assert client.get(url("home")).status_code == 200


# --- enrolment ------------------------------------------------------------------------------------------------------


def test_enrolment_shows_a_qr_code_and_the_secret_then_recovery_codes_once(client, world, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # a person takes longer than the wait after a wrong code
    client.cookies["django_language"] = "en"
    sign_in(client, "m-admin")
    page = client.get(url("two_factor_setup"))
    body = page.content.decode()
    device = TOTPDevice.objects.get(user=world["m_admin"], confirmed=False)
    secret = two_factor.secret_text(device)
    assert "<svg" in body and "<path" in body and secret in body and "no-store" in page["Cache-Control"]
    assert "http" not in body.split("<svg")[1].split("</svg>")[0].replace("http://www.w3.org/2000/svg", "")
    assert client.get(url("two_factor_setup")).content.decode().count(secret) == 1  # the same secret on reload

    wrong = client.post(url("two_factor_setup"), {"code": "000000" if totp_code(device) != "000000" else "111111"})
    assert wrong.status_code == 200 and "does not match" in wrong.content.decode()
    assert not verified(client)

    response = client.post(url("two_factor_setup") + "?next=/payments/", {"code": totp_code(device)})
    codes = recovery_codes_of(client, response)
    assert len(set(codes)) == 10
    assert verified(client) and client.get(url("home")).status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    assert AuditLog.objects.filter(action="staff.two_factor_enrolled", actor=world["m_admin"]).exists()

    # Stored hashed; shown once; the secret is not shown again either.
    stored = set(StaticToken.objects.filter(device__user=world["m_admin"]).values_list("token", flat=True))
    assert len(stored) == 10 and not stored & {code.replace("-", "") for code in codes} and not stored & set(codes)
    again = client.get(response["Location"]).content.decode()
    assert 'id="codes-gone"' in again and not any(code in again for code in codes)
    settings_page = client.get(url("two_factor_setup")).content.decode()
    assert secret not in settings_page and 'id="codes-left">10<' in settings_page


def test_the_qr_code_carries_the_otpauth_uri_of_the_secret(world):
    device = two_factor.pending_authenticator(world["m_admin"])
    uri = two_factor.provisioning_uri(device)
    assert uri.startswith("otpauth://totp/Face-pay%20console%3Am-admin?secret=")
    assert "issuer=Face-pay%20console" in uri and "digits=6" in uri and "period=30" in uri
    assert two_factor.secret_text(device).replace(" ", "") in uri


# --- the second step of signing in ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["root", "p_admin", "p_reviewer", "m_admin", "m_staff"])
def test_an_enrolled_user_enters_a_code_before_any_page(client, world, name):
    device = enrol_totp(world[name])
    sign_in(client, world[name].username)
    assert not verified(client)
    for address in (url("home"), url("staff_list"), url("two_factor_setup"), url("password_change")):
        response = client.get(address)
        assert response.status_code == 302 and response["Location"].startswith(url("two_factor_verify")), address

    response = client.get(url("payment_list"))
    assert response["Location"] == url("two_factor_verify") + "?next=%2Fpayments%2F"
    session_before = client.session.session_key
    answer = client.post(response["Location"], {"code": totp_code(device), "next": "/payments/"})
    assert answer.status_code == 302 and answer["Location"] == "/payments/"
    assert verified(client) and client.session.session_key != session_before
    assert client.get("/payments/").status_code == 200


def test_a_used_code_is_refused(client, world):
    device = enrol_totp(world["m_admin"])
    sign_in(client, "m-admin")
    code = totp_code(device)
    assert verify(client, code).status_code == 302 and verified(client)
    client.post(url("logout"))

    sign_in(client, "m-admin")
    refused = verify(client, code)
    assert refused.status_code == 200 and "验证码无效" in refused.content.decode()
    assert not verified(client)


def test_a_code_for_another_secret_is_refused(client, world):
    enrol_totp(world["m_admin"])
    sign_in(client, "m-admin")
    other = TOTP(bytes.fromhex(TOTPDevice(user=world["m_admin"]).key))
    assert verify(client, f"{other.token():06d}").status_code == 200 and not verified(client)


def test_a_recovery_code_works_once(client, world, settings):
    settings.OTP_STATIC_THROTTLE_FACTOR = 0  # only the rule under test refuses
    login_verified(client, world["p_admin"])
    codes = recovery_codes_of(client, client.post(url("two_factor_new_codes")))
    client.post(url("logout"))

    sign_in(client, "p-admin")
    assert verify(client, codes[3].upper().replace("-", " ")).status_code == 302 and verified(client)
    assert two_factor.recovery_codes_left(world["p_admin"]) == 9
    client.post(url("logout"))

    sign_in(client, "p-admin")
    assert verify(client, codes[3]).status_code == 200 and not verified(client)
    assert verify(client, codes[4]).status_code == 302 and verified(client)


def test_new_recovery_codes_replace_the_old_ones(client, world, settings):
    settings.OTP_STATIC_THROTTLE_FACTOR = 0  # only the rule under test refuses
    login_verified(client, world["p_admin"])
    old = recovery_codes_of(client, client.post(url("two_factor_new_codes")))
    new = recovery_codes_of(client, client.post(url("two_factor_new_codes")))
    assert not set(old) & set(new)
    assert two_factor.verify(world["p_admin"], old[0]) == (None, False)
    assert two_factor.verify(world["p_admin"], new[0])[0] is not None
    assert AuditLog.objects.filter(action="staff.recovery_codes_regenerated").count() == 2


def test_wrong_codes_count_against_the_sign_in_limit(client, world, settings):
    settings.LOGIN_MAX_FAILURES, settings.LOGIN_IP_MAX_FAILURES, settings.LOGIN_LOCKOUT_SECONDS = 3, 30, 900
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # only the sign-in limit refuses here
    device = enrol_totp(world["m_admin"])
    sign_in(client, "m-admin")
    wrong = "000000" if totp_code(device) != "000000" else "111111"
    for _ in range(3):
        assert verify(client, wrong).status_code == 200
    refused = verify(client, totp_code(device))
    assert "登录失败次数过多" in refused.content.decode() and not verified(client)

    # The username is locked at the password step too, from this address.
    client.post(url("logout"))
    assert sign_in(client, "m-admin").status_code == 200
    assert "_auth_user_id" not in client.session


def test_each_device_slows_guessing_down_on_its_own(client, world):
    device = enrol_totp(world["m_admin"])
    sign_in(client, "m-admin")
    wrong = "000000" if totp_code(device) != "000000" else "111111"
    verify(client, wrong)
    throttled = verify(client, totp_code(device))  # at once: the device waits a second after a wrong code
    assert throttled.status_code == 200 and "错误的验证码次数过多" in throttled.content.decode()
    assert not verified(client)


def test_the_password_limit_still_locks_a_user_with_two_factor(client, world, settings):
    settings.LOGIN_MAX_FAILURES, settings.LOGIN_IP_MAX_FAILURES, settings.LOGIN_LOCKOUT_SECONDS = 3, 30, 900
    enrol_totp(world["m_admin"])
    for _ in range(3):
        assert sign_in(client, "m-admin", "wrong-password").status_code == 200
    refused = sign_in(client, "m-admin")
    assert "登录失败次数过多" in refused.content.decode() and "_auth_user_id" not in client.session


# --- what the verified session guards ---------------------------------------------------------------------------


def test_django_admin_requires_the_second_factor(client, world):
    device = enrol_totp(world["root"])
    assert sign_in(client, "root", path="/admin/login/").status_code == 302
    response = client.get("/admin/portal/merchant/")
    assert response.status_code == 302 and response["Location"].startswith(url("two_factor_verify"))
    answer = client.post(response["Location"], {"code": totp_code(device), "next": "/admin/portal/merchant/"})
    assert answer["Location"] == "/admin/portal/merchant/"
    assert client.get("/admin/portal/merchant/").status_code == 200


def test_django_admin_sends_a_superuser_without_a_second_factor_to_enrolment(client, world):
    sign_in(client, "root", path="/admin/login/")
    assert client.get("/admin/")["Location"].startswith(url("two_factor_setup"))


def test_the_staff_api_refuses_a_session_without_the_second_factor(client, world):
    enrol_totp(world["m_admin"])
    sign_in(client, "m-admin")
    response = client.post("/api/staff/v1/payments/1/refunds", {"refund_fee": 1}, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (403, "TWO_FACTOR_REQUIRED")


def test_machine_endpoints_and_signing_out_stay_open(client, world):
    sign_in(client, "m-admin")
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/terminal/v1/heartbeat").status_code in (401, 405)  # its own authentication answers
    assert client.post("/i18n/setlang/", {"language": "en", "next": "/"}).status_code == 302
    assert client.post(url("logout")).status_code == 302 and "_auth_user_id" not in client.session


def test_a_polled_fragment_is_told_to_load_the_step_page(client, world):
    enrol_totp(world["m_admin"])
    sign_in(client, "m-admin")
    response = client.get(url("dashboard_live"), HTTP_HX_REQUEST="true")
    assert response.status_code == 204 and response["HX-Redirect"] == url("two_factor_verify")


def test_a_reset_by_an_admin_unverifies_the_session_and_requires_a_new_enrolment(client, world):
    from portal import users

    login_verified(client, world["m_admin"])
    assert client.get(url("home")).status_code == 200
    users.staff_reset_two_factor(actor=world["p_admin"], membership=world["m_admin"].membership)
    assert client.get(url("home"))["Location"].startswith(url("two_factor_setup"))
    enrol_through_the_page(client, world["m_admin"])
    assert client.get(url("home")).status_code == 200


# --- optional two-factor sign-in ------------------------------------------------------------------------------------


def test_merchant_staff_may_turn_it_on_and_off(client, world):
    sign_in(client, "m-staff")
    enrol_through_the_page(client, world["m_staff"])
    client.post(url("logout"))
    sign_in(client, "m-staff")
    assert client.get(url("home"))["Location"].startswith(url("two_factor_verify"))
    verify(client, totp_code(TOTPDevice.objects.get(user=world["m_staff"])))

    assert client.post(url("two_factor_turn_off"), {"confirm": "yes"}).status_code == 302
    assert not TOTPDevice.objects.filter(user=world["m_staff"]).exists()
    assert AuditLog.objects.filter(action="staff.two_factor_disabled").exists()
    client.post(url("logout"))
    sign_in(client, "m-staff")
    assert client.get(url("home")).status_code == 200


def test_a_role_that_requires_it_cannot_turn_it_off(client, world):
    login_verified(client, world["m_admin"])
    assert "two-factor/turn-off" not in client.get(url("two_factor_setup")).content.decode()
    client.post(url("two_factor_turn_off"), {"confirm": "yes"})
    assert TOTPDevice.objects.filter(user=world["m_admin"], confirmed=True).exists()


def test_promotion_to_a_role_that_requires_it_asks_for_enrolment(client, world):
    from portal import users

    login_verified(client, world["p_admin"])
    other = type(client)()
    sign_in(other, "m-staff")
    assert other.get(url("home")).status_code == 200
    users.staff_update_role(actor=world["p_admin"], membership=world["m_staff"].membership, role=Role.MERCHANT_ADMIN)
    assert other.get(url("home"))["Location"].startswith(url("two_factor_setup"))


# --- the demo ---------------------------------------------------------------------------------------------------------


def test_the_demo_logins_sign_in_with_the_printed_key(client):
    output = io.StringIO()
    call_command("seed_demo", stdout=output)
    printed = output.getvalue()
    for username in ("admin", "demo-provider", "demo-reviewer", "demo-merchant", "demo-staff"):
        assert username in printed
    key = re.search(r"bytes\.fromhex\('([0-9a-f]+)'\)", printed).group(1)
    assert {device.user.username for device in TOTPDevice.objects.filter(key=key, confirmed=True)} == {
        "admin",
        "demo-provider",
        "demo-reviewer",
        "demo-merchant",
    }

    from sandbox.management.commands.seed_demo import DEMO_PASSWORD

    sign_in(client, "demo-provider", DEMO_PASSWORD)
    assert verify(client, f"{TOTP(bytes.fromhex(key)).token():06d}").status_code == 302
    assert client.get(url("home")).status_code == 200
    client.post(url("logout"))
    sign_in(client, "demo-staff", DEMO_PASSWORD)
    assert client.get(url("home")).status_code == 200
