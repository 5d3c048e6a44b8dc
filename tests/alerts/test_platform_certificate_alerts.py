"""The platform keys rule: a platform certificate about to expire is alerted once per certificate, a refresh failing
for two periods once per China day, both for the credentials' owner (a provider, or a direct merchant and its
provider); healthy keys, a public key, and a failure not yet two periods old are not alerted."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone, translation

from alerts import rules, text
from alerts.models import Alert, AlertDelivery, Rule, Severity
from portal.models import ChannelCredentials
from tests.payments.test_platform_certificates import (
    platform_certificate,
    wechat,  # noqa: F401 - the fixture
    wechat_credentials,
)

pytestmark = pytest.mark.django_db


def failing(credentials, *, hours: float, code: str = "TIMEOUT: ReadTimeout") -> None:
    ChannelCredentials.objects.filter(pk=credentials.pk).update(
        wechat_platform_keys_error=code,
        wechat_platform_keys_failing_since=timezone.now() - dt.timedelta(hours=hours),
    )


def test_an_expiring_certificate_of_a_provider_is_alerted_once(world, wechat, chat):  # noqa: F811
    channel, _robot = chat.wecom(world.provider)
    old, newest = platform_certificate(days=3), platform_certificate(days=12)
    credentials = wechat_credentials(world.provider, wechat, certificates=[old, newest])

    assert rules.evaluate() == 1
    assert rules.evaluate() == 0

    alert = Alert.objects.get()
    assert (alert.rule, alert.severity, alert.provider, alert.merchant) == (
        Rule.PLATFORM_KEYS,
        Severity.WARNING,
        world.provider,
        None,
    )
    assert alert.key == f"platform_keys:expiring:credentials:{credentials.pk}:{newest.serial}"
    assert (alert.data["serial"], alert.data["days_left"]) == (newest.serial, 11)
    assert AlertDelivery.objects.get(alert=alert).channel == channel
    with translation.override("zh-hans"):
        assert text.title(alert) == f"微信支付平台证书将于 {text.china_time(alert.data['valid_until'])[:10]} 过期"
        assert f"{world.provider.name} 最新的微信支付平台证书（{newest.serial}）" in text.body(alert)
        assert "还剩 11 天" in text.body(alert)
    assert text.subject_url(alert) == f"/providers/{world.provider.pk}/credentials/"


def test_a_new_certificate_after_the_warning_is_its_own_alert(world, wechat):  # noqa: F811
    first = platform_certificate(days=20)
    credentials = wechat_credentials(world.provider, wechat, certificates=[first])
    assert rules.evaluate() == 1

    second = platform_certificate(days=25)
    ChannelCredentials.objects.filter(pk=credentials.pk).update(
        wechat_platform_certificates=first.cert_pem + second.cert_pem
    )

    assert rules.evaluate() == 1
    assert [a.data["serial"] for a in Alert.objects.order_by("id")] == [first.serial, second.serial]


def test_healthy_keys_a_public_key_and_the_transition_are_not_alerted(world, wechat):  # noqa: F811
    wechat_credentials(world.provider, wechat, certificates=[platform_certificate(days=400)])
    wechat_credentials(world.merchant, wechat, public_key=platform_certificate(days=5))
    wechat_credentials(
        world.foreign, wechat, certificates=[platform_certificate(days=5)], public_key=platform_certificate(days=900)
    )

    assert rules.evaluate() == 0


def test_a_direct_merchants_failing_refresh_is_alerted_once_a_day_to_it_and_its_provider(
    world,
    wechat,  # noqa: F811
    settings,
):
    settings.PLATFORM_CERTIFICATE_REFRESH_SECONDS = 6 * 3600
    credentials = wechat_credentials(world.merchant, wechat, certificates=[platform_certificate(days=400)])
    failing(credentials, hours=13)
    now = timezone.now()

    assert rules.evaluate(now=now) == 1
    assert rules.evaluate(now=now + dt.timedelta(minutes=5)) == 0
    assert rules.evaluate(now=now + dt.timedelta(days=1)) == 1

    first = Alert.objects.order_by("id").first()
    assert (first.merchant, first.provider) == (world.merchant, world.provider)
    assert first.topic == f"{Rule.PLATFORM_KEYS}:merchant:{world.merchant.pk}"
    assert first.key.startswith(f"platform_keys:failing:credentials:{credentials.pk}:")
    assert first.data["code"] == "TIMEOUT"
    with translation.override("zh-hans"):
        assert text.title(first) == "微信支付平台密钥无法刷新"
        assert "的微信支付平台证书一直下载失败（错误码 TIMEOUT）" in text.body(first)
    assert text.subject_url(first) == f"/merchants/{world.merchant.pk}/credentials/"


def test_a_failure_younger_than_two_periods_is_not_alerted(world, wechat, settings):  # noqa: F811
    settings.PLATFORM_CERTIFICATE_REFRESH_SECONDS = 6 * 3600
    credentials = wechat_credentials(world.merchant, wechat, certificates=[platform_certificate(days=400)])
    failing(credentials, hours=11)

    assert rules.evaluate() == 0


def test_an_expired_only_certificate_is_alerted_as_expired(world, wechat):  # noqa: F811
    wechat_credentials(world.provider, wechat, certificates=[platform_certificate(days=-1)])

    assert rules.evaluate() == 1
    alert = Alert.objects.get()
    with translation.override("zh-hans"):
        assert "已于" in text.body(alert) and "过期" in text.body(alert)
