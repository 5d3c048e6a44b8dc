"""The credentials page's "platform keys" section: mode, certificates with their expiry and days left, the warning,
the public key id, the last refresh and its error — in Chinese, never a secret — and the "refresh now" button for
whoever may edit those credentials (audited), while the manual paste fields keep working."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditLog, ChannelCredentials, StaffMembership
from tests.factories import MerchantFactory, ServiceProviderFactory, login_verified, make_user
from tests.payments.test_platform_certificates import (
    API_V3_KEY,
    PUB_KEY_ID,
    platform_certificate,
    wechat,  # noqa: F401 - the fixture
    wechat_credentials,
)

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role


@pytest.fixture
def world(wechat):  # noqa: F811 - the imported fixture
    p1, p2 = ServiceProviderFactory(name="甲服务商"), ServiceProviderFactory(name="乙服务商")
    direct = MerchantFactory(provider=p1, name="甲直连商户")
    expiring = platform_certificate(days=10, name="expiring")
    return {
        "p1": p1,
        "p2": p2,
        "direct": direct,
        "expiring": expiring,
        "p1_credentials": wechat_credentials(p1, wechat, certificates=[expiring]),
        "users": {
            "root": make_user("root", superuser=True),
            "p1_admin": make_user("p1_admin", role=Role.PROVIDER_ADMIN, provider=p1),
            "p1_reviewer": make_user("p1_reviewer", role=Role.PROVIDER_REVIEWER, provider=p1),
            "p2_admin": make_user("p2_admin", role=Role.PROVIDER_ADMIN, provider=p2),
            "m_admin": make_user("m_admin", role=Role.MERCHANT_ADMIN, merchant=direct),
            "m_staff": make_user("m_staff", role=Role.MERCHANT_STAFF, merchant=direct),
        },
    }


def as_user(client, user, language="zh-hans"):
    login_verified(client, user)
    client.cookies["django_language"] = language
    return client


def url(name, *args):
    return reverse(f"portal:{name}", args=args)


def section(html: str) -> str:
    start = html.index('id="platform-keys"')
    return html[start : html.index("</section>", start)]


def test_the_section_shows_the_certificates_their_expiry_and_the_warning_in_chinese(client, world):
    page = as_user(client, world["users"]["p1_admin"]).get(url("provider_credentials", world["p1"].pk))

    html = page.content.decode()
    keys = section(html)
    assert page.status_code == 200
    assert "平台密钥" in keys and "模式" in keys and "平台证书" in keys
    assert world["expiring"].serial in keys
    assert "有效期至" in keys and "剩余天数" in keys and ">9<" in keys.replace(" ", "")  # 10 days, a moment ago
    assert "即将过期" in keys and "需处理" in keys
    assert "立即刷新" in keys and url("provider_refresh_platform_keys", world["p1"].pk) in keys
    assert "—" in keys  # never refreshed yet
    assert API_V3_KEY not in html and "PRIVATE KEY" not in html


def test_a_healthy_certificate_has_no_warning_and_a_public_key_only_row_no_button(client, world, wechat):  # noqa: F811
    merchant = world["direct"]
    wechat_credentials(merchant, wechat, public_key=platform_certificate(days=3000))

    keys = section(
        as_user(client, world["users"]["root"]).get(url("merchant_credentials", merchant.pk)).content.decode()
    )

    assert "微信支付公钥" in keys and PUB_KEY_ID in keys
    assert "需处理" not in keys and "立即刷新" not in keys
    assert "尚未保存平台证书" in keys


def test_refresh_now_downloads_audits_and_says_what_came_of_it(client, world, wechat):  # noqa: F811
    new = platform_certificate(days=1800, name="new")
    wechat.listed, wechat.signer = [world["expiring"], new], world["expiring"]
    user = as_user(client, world["users"]["p1_admin"])

    response = user.post(url("provider_refresh_platform_keys", world["p1"].pk), follow=True)

    html = response.content.decode()
    assert response.redirect_chain == [(url("provider_credentials", world["p1"].pk), 302)]
    assert "平台密钥已刷新：现有 2 张证书（新增 1 张，移除过期 0 张）。" in html
    assert new.serial in section(html) and "需处理" not in section(html)  # the newest now expires in 1800 days
    audit = AuditLog.objects.get(action="credentials.platform_keys_refresh")
    assert (audit.actor, audit.provider, audit.details["certificates_added"]) == (
        world["users"]["p1_admin"],
        world["p1"],
        [new.serial],
    )
    assert wechat.calls == [world["p1"].wechat_mch_id]


def test_a_failed_refresh_is_explained_in_chinese_and_shown_on_the_page(client, world, wechat):  # noqa: F811
    wechat.listed, wechat.refusal = [world["expiring"]], (403, "NO_AUTH")
    user = as_user(client, world["users"]["p1_admin"])

    html = user.post(url("provider_refresh_platform_keys", world["p1"].pk), follow=True).content.decode()

    assert "平台密钥未刷新（NO_AUTH）：微信支付拒绝了下载请求。已保存的平台密钥保持不变。" in html
    keys = section(html)
    assert "刷新失败" in keys and "<code>NO_AUTH</code>" in keys and "上次刷新错误" in keys
    assert "无权限" not in keys  # WeChat's wording stays in the log; the page explains the code
    assert world["expiring"].serial in keys
    assert AuditLog.objects.get(action="credentials.platform_keys_refresh").details["result"] == "FAILED"


def test_a_direct_merchants_keys_are_refreshed_on_its_own_page(client, world, wechat):  # noqa: F811
    merchant = world["direct"]
    wechat_credentials(merchant, wechat)
    wechat.listed = [platform_certificate(days=900)]

    response = as_user(client, world["users"]["p1_admin"]).post(url("merchant_refresh_platform_keys", merchant.pk))

    assert response.status_code == 302 and response["Location"] == url("merchant_credentials", merchant.pk)
    assert wechat.calls == [merchant.mch_id]
    assert ChannelCredentials.objects.get(merchant=merchant).wechat_platform_keys_refreshed_at is not None


def test_credentials_that_cannot_sign_are_not_sent_and_say_what_is_missing(client, world, wechat):  # noqa: F811
    merchant = world["direct"]

    html = (
        as_user(client, world["users"]["root"])
        .post(url("merchant_refresh_platform_keys", merchant.pk), follow=True)
        .content.decode()
    )

    assert "请先填写 APIv3 密钥、商户 API 私钥及其证书，再刷新。" in html
    assert wechat.calls == [] and not AuditLog.objects.filter(action="credentials.platform_keys_refresh").exists()


@pytest.mark.parametrize(
    ("role", "target", "status"),
    [
        ("m_staff", "merchant", 403),
        ("m_admin", "merchant", 403),  # merchant admins do not manage credentials
        ("p1_reviewer", "merchant", 403),
        ("p1_reviewer", "provider", 403),
        ("p2_admin", "merchant", 404),  # another provider's: as if it did not exist
        ("p2_admin", "provider", 404),
        ("m_admin", "provider", 404),
    ],
)
def test_only_who_may_edit_the_credentials_can_refresh(client, world, wechat, role, target, status):  # noqa: F811
    merchant = world["direct"]
    wechat_credentials(merchant, wechat)
    wechat.listed = [platform_certificate(days=900)]
    name, pk = (
        ("merchant_refresh_platform_keys", merchant.pk)
        if target == "merchant"
        else ("provider_refresh_platform_keys", world["p1"].pk)
    )

    response = as_user(client, world["users"][role]).post(url(name, pk))

    assert response.status_code == status
    assert wechat.calls == []
    assert not AuditLog.objects.filter(action="credentials.platform_keys_refresh").exists()


def test_refreshing_takes_a_post(client, world):
    response = as_user(client, world["users"]["p1_admin"]).get(url("provider_refresh_platform_keys", world["p1"].pk))

    assert response.status_code == 405


def test_a_pasted_public_key_still_works_and_makes_the_transition(client, world):
    public = platform_certificate(days=3000)
    pem = (
        x509.load_pem_x509_certificate(public.cert_pem.encode())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    user = as_user(client, world["users"]["p1_admin"])

    response = user.post(
        url("provider_credentials", world["p1"].pk),
        {
            "wechat_platform_public_key": SimpleUploadedFile("pub_key.pem", pem),
            "wechat_platform_public_key_id": PUB_KEY_ID,
        },
    )

    assert response.status_code == 302
    keys = section(user.get(url("provider_credentials", world["p1"].pk)).content.decode())
    assert "平台证书切换至微信支付公钥中" in keys and PUB_KEY_ID in keys
    assert "需处理" not in keys  # the public key covers the expiring certificate
    assert "立即刷新" in keys  # in the transition the certificates are still refreshed


def test_a_refresh_failing_for_long_shows_the_warning_and_since_when(client, world, settings):
    settings.PLATFORM_CERTIFICATE_REFRESH_SECONDS = 3600
    since = timezone.now() - dt.timedelta(hours=3)
    ChannelCredentials.objects.filter(pk=world["p1_credentials"].pk).update(
        wechat_platform_keys_error="TIMEOUT: ReadTimeout", wechat_platform_keys_failing_since=since
    )

    keys = section(
        as_user(client, world["users"]["p1_admin"]).get(url("provider_credentials", world["p1"].pk)).content.decode()
    )

    assert "微信支付未及时应答。" in keys and "ReadTimeout" not in keys
    assert "自 " in keys and "起一直失败" in keys


def test_the_section_in_english(client, world):
    keys = section(
        as_user(client, world["users"]["p1_admin"], "en")
        .get(url("provider_credentials", world["p1"].pk))
        .content.decode()
    )

    assert "Platform keys" in keys and "Valid until" in keys and "Expires soon" in keys and "Refresh now" in keys
