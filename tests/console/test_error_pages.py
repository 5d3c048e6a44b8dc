"""The console's error pages (403, 404, 500, 400, a refused form): in the console's look, in the user's language,
saying what happened and what to do, with a way back to the console home. With DEBUG off, as in production."""

from __future__ import annotations

from unittest import mock

import pytest
from django.test import Client, RequestFactory
from django.utils import translation

from portal.api_errors import server_error
from portal.models import StaffMembership
from portal.permissions import DENIED, Action
from tests.factories import MerchantFactory, login_verified, make_user

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role
HOME_LINK = 'href="/"'


@pytest.fixture
def staff(db):
    return make_user("staff", role=Role.MERCHANT_STAFF, merchant=MerchantFactory())


def html(response) -> str:
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


def in_language(client, language: str):
    client.cookies["django_language"] = language
    return client


@pytest.mark.parametrize(
    ("language", "heading", "reason"),
    [
        ("zh-hans", "您无权访问此页面", "您的角色无法管理 Webhook 和 API 客户端。"),
        ("en", "You have no access to this page", "Your role cannot manage webhooks and API clients."),
    ],
)
def test_a_signed_in_user_without_the_right_gets_the_styled_403_in_their_language(
    client, staff, language, heading, reason
):
    login_verified(in_language(client, language), staff)

    response = client.get("/webhooks/")

    assert response.status_code == 403
    page = html(response)
    assert f'<html lang="{language}">' in page
    assert heading in page and reason in page
    assert 'class="topbar"' in page and "staff" in page  # the console's header, signed in
    assert HOME_LINK in page


def test_every_action_has_a_reason_for_its_refusal():
    assert set(DENIED) == set(Action)


@pytest.mark.parametrize(
    ("language", "heading", "advice"),
    [
        ("zh-hans", "页面不存在", "请检查地址，或从管理台首页重新进入。"),
        ("en", "Page not found", "Check the address, or start again from the console home."),
    ],
)
@pytest.mark.parametrize("signed_in", [False, True])
def test_an_unknown_address_gets_the_styled_404(client, staff, language, heading, advice, signed_in):
    if signed_in:
        login_verified(client, staff)
    in_language(client, language)

    response = client.get("/no-such-page/")

    assert response.status_code == 404
    page = html(response)
    assert heading in page and advice in page and HOME_LINK in page
    assert 'class="topbar"' in page
    assert ('class="main"' in page) == signed_in  # the console's navigation for a signed-in user


def test_an_object_outside_the_users_scope_is_the_same_404(client, staff):
    login_verified(in_language(client, "zh-hans"), staff)

    response = client.get("/members/999999/")

    assert response.status_code == 404
    assert "页面不存在" in html(response)


@pytest.mark.parametrize(
    ("language", "heading", "advice"),
    [
        ("zh-hans", "系统出错了", "修改可能已经生效"),
        ("en", "Something went wrong", "it may already have been made"),
    ],
)
def test_a_crash_gets_the_styled_500_in_the_users_language(client, staff, language, heading, advice):
    client.raise_request_exception = False
    login_verified(in_language(client, language), staff)

    with mock.patch("members.views.render", side_effect=RuntimeError("a bug")):
        response = client.get("/members/")

    assert response.status_code == 500
    page = html(response)
    assert heading in page and advice in page and HOME_LINK in page
    assert "a bug" not in page


def test_the_500_page_needs_neither_the_database_nor_the_session(django_assert_num_queries):
    request = RequestFactory().get("/payments/")  # no session, no user: what a failure early in a request leaves

    with translation.override("zh-hans"), django_assert_num_queries(0):
        response = server_error(request)

    assert response.status_code == 500
    assert "系统出错了" in html(response)


@pytest.mark.parametrize(("language", "heading"), [("zh-hans", "请求无效"), ("en", "Bad request")])
def test_a_request_for_a_host_not_served_gets_the_styled_400(client, settings, language, heading):
    settings.ALLOWED_HOSTS = ["pay.example.com"]

    response = in_language(client, language).get("/login/", HTTP_HOST="evil.example.net")

    assert response.status_code == 400
    page = html(response)
    assert heading in page and 'class="topbar"' in page
    assert "evil.example.net" not in page


@pytest.mark.parametrize(("language", "heading"), [("zh-hans", "表单已失效"), ("en", "This form has expired")])
def test_a_form_sent_without_its_csrf_token_gets_the_styled_page(language, heading):
    client = Client(enforce_csrf_checks=True)

    response = in_language(client, language).post("/login/", {"username": "staff", "password": "x"})

    assert response.status_code == 403
    page = html(response)
    assert heading in page and 'class="topbar"' in page and HOME_LINK in page
