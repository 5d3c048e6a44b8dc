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


# --- Behind the reverse proxy: every request arrives from the proxy's address ---------------------------------------

PROXY = "10.0.0.2"


def through_proxy(client, username, password, client_ip, sent_by_client=""):
    """A sign-in as the proxy forwards it: from the proxy's address, the client's appended to X-Forwarded-For (after
    whatever the client sent in that header itself)."""
    forwarded = f"{sent_by_client}, {client_ip}" if sent_by_client else client_ip
    return client.post(
        "/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded,
    )


@pytest.fixture
def behind_proxy(settings):
    """The production defaults (10 per username and address, 30 per address, 30 per username) behind one proxy."""
    settings.TRUSTED_PROXIES, settings.TRUSTED_PROXY_COUNT = [PROXY], 1
    settings.LOGIN_MAX_FAILURES, settings.LOGIN_IP_MAX_FAILURES, settings.LOGIN_LOCKOUT_SECONDS = 10, 30, 900
    settings.LOGIN_USERNAME_MAX_FAILURES, settings.LOGIN_USERNAME_LOCKOUT_SECONDS = 30, 300
    return settings


def test_one_address_behind_the_proxy_cannot_lock_out_everyone(client, behind_proxy):
    """30 wrong passwords for other usernames from one client, all through the proxy: that client is refused, and a
    real user behind the same proxy signs in with the right password."""
    make_user("cashier", role=StaffMembership.Role.MERCHANT_ADMIN, merchant=MerchantFactory())
    attacker = "198.51.100.7"
    for index in range(30):
        # What the client puts in X-Forwarded-For itself changes nothing: the proxy's entry counts.
        response = through_proxy(client, f"guess{index}", "wrong-password", attacker, sent_by_client=f"1.2.3.{index}")
        assert response.status_code == 200 and "登录失败次数过多" not in response.content.decode()
    refused = through_proxy(client, "cashier", PASSWORD, attacker, sent_by_client="9.9.9.9")
    assert "登录失败次数过多" in refused.content.decode()
    assert not signed_in(client)

    assert through_proxy(client, "cashier", PASSWORD, "203.0.113.20").status_code == 302
    assert signed_in(client)


def test_wrong_passwords_for_one_username_lock_it_from_that_address_only(client, behind_proxy):
    make_user("cashier", role=StaffMembership.Role.MERCHANT_ADMIN, merchant=MerchantFactory())
    for _ in range(10):
        through_proxy(client, "cashier", "wrong-password", "198.51.100.7")
    refused = through_proxy(client, "Cashier", PASSWORD, "198.51.100.7")
    assert "登录失败次数过多" in refused.content.decode() and not signed_in(client)
    # The real user elsewhere is not locked out by that address's guesses.
    assert through_proxy(client, "cashier", PASSWORD, "203.0.113.20").status_code == 302


def test_guessing_one_username_from_many_addresses_locks_it_for_a_short_while(client, settings):
    settings.LOGIN_MAX_FAILURES, settings.LOGIN_IP_MAX_FAILURES, settings.LOGIN_LOCKOUT_SECONDS = 3, 5, 900
    settings.LOGIN_USERNAME_MAX_FAILURES, settings.LOGIN_USERNAME_LOCKOUT_SECONDS = 6, 2
    make_user("cashier", role=StaffMembership.Role.MERCHANT_ADMIN, merchant=MerchantFactory())
    for address in ("198.51.100.1", "198.51.100.2"):
        for _ in range(3):
            client.post("/login/", {"username": "cashier", "password": "wrong"}, REMOTE_ADDR=address)
    refused = client.post("/login/", {"username": "cashier", "password": PASSWORD}, REMOTE_ADDR="203.0.113.20")
    assert "登录失败次数过多" in refused.content.decode() and not signed_in(client)

    time.sleep(settings.LOGIN_USERNAME_LOCKOUT_SECONDS + 0.5)
    response = client.post("/login/", {"username": "cashier", "password": PASSWORD}, REMOTE_ADDR="203.0.113.20")
    assert response.status_code == 302 and signed_in(client)


def test_forwarded_for_counts_only_from_a_trusted_proxy(client, behind_proxy):
    """A client that reaches the web tier directly cannot pick the address it is counted under."""
    make_user("cashier", role=StaffMembership.Role.MERCHANT_ADMIN, merchant=MerchantFactory())
    for index in range(30):
        client.post(
            "/login/",
            {"username": f"guess{index}", "password": "wrong"},
            REMOTE_ADDR="198.51.100.7",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{index}",
        )
    refused = client.post(
        "/login/",
        {"username": "cashier", "password": PASSWORD},
        REMOTE_ADDR="198.51.100.7",
        HTTP_X_FORWARDED_FOR="203.0.113.200",
    )
    assert "登录失败次数过多" in refused.content.decode()


def test_client_address_behind_two_proxies(rf, settings):
    from portal.client_address import client_address

    settings.TRUSTED_PROXIES, settings.TRUSTED_PROXY_COUNT = ["10.0.0.0/8"], 2
    # The client sent "1.1.1.1"; the edge proxy appended the client, the inner one the edge's address.
    request = rf.get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.7, 10.9.9.9")
    assert client_address(request) == "198.51.100.7"
    assert client_address(rf.get("/", REMOTE_ADDR="10.0.0.2")) == "10.0.0.2"  # no header: the connection's own
    assert client_address(rf.get("/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="1.1.1.1")) == "192.0.2.1"
    settings.TRUSTED_PROXIES = []
    assert client_address(request) == "10.0.0.2"
