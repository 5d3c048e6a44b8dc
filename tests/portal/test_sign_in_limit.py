"""Failed sign-ins are limited per username and per address, on the console and the admin (their users move money
and change channel credentials)."""

import time

import pytest

from portal.models import StaffMembership
from tests.factories import PASSWORD, MerchantFactory, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    # The counters live in the cache, which tests/conftest.py clears around every test.
    settings.LOGIN_MAX_FAILURES, settings.LOGIN_IP_MAX_FAILURES, settings.LOGIN_LOCKOUT_SECONDS = 3, 5, 2
    return settings


def sign_in(client, username, password, path="/login/"):
    return client.post(path, {"username": username, "password": password})


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_wrong_passwords_lock_the_username_for_a_while(client, limits):
    user = make_user("cashier", role=StaffMembership.Role.MERCHANT_ADMIN, merchant=MerchantFactory())
    for _ in range(3):
        assert sign_in(client, "cashier", "wrong-password").status_code == 200
    refused = sign_in(client, "Cashier", PASSWORD)  # the right password, any case of the name
    assert "登录失败次数过多" in refused.content.decode()  # Chinese by default
    assert not signed_in(client)

    other = make_user("other", role=StaffMembership.Role.MERCHANT_ADMIN, merchant=user.membership.merchant)
    assert sign_in(client, other.username, PASSWORD).status_code == 302  # only that username is locked
    client.logout()

    time.sleep(limits.LOGIN_LOCKOUT_SECONDS + 0.5)
    assert sign_in(client, "cashier", PASSWORD).status_code == 302
    assert signed_in(client)


def test_many_usernames_from_one_address_lock_the_address(client, limits):
    make_user("victim", role=StaffMembership.Role.MERCHANT_ADMIN, merchant=MerchantFactory())
    for index in range(5):
        sign_in(client, f"guess{index}", "wrong-password")
    assert sign_in(client, "victim", PASSWORD).status_code == 200
    assert not signed_in(client)


def test_the_admin_sign_in_has_the_same_limit(client, limits, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    for _ in range(3):
        sign_in(client, "root", "wrong-password", path="/admin/login/")
    refused = sign_in(client, "root", PASSWORD, path="/admin/login/")
    assert refused.status_code == 200 and not signed_in(client)
