"""Which robots an alert goes to: its merchant's and its provider's, at or above each robot's lowest severity, enabled
ones only; and each robot's quiet period per rule and merchant (the console still lists every alert)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts import rules, services
from alerts.models import Alert, AlertDelivery, Rule, Severity
from alerts.services import Finding
from payments.models import PaymentStatus

pytestmark = pytest.mark.django_db
Status = AlertDelivery.Status


def raise_for(merchant=None, *, severity=Severity.WARNING, provider_id=None, key="k", rule=Rule.REFUND_ATTENTION):
    alert = services.alert_raise(
        Finding(
            rule=rule,
            severity=severity,
            key=key,
            topic=f"{rule}:merchant:{merchant.pk if merchant else provider_id}",
            merchant=merchant,
            provider_id=provider_id,
        )
    )
    return {d.channel.name for d in alert.deliveries.select_related("channel")}


def test_routing_by_provider_merchant_and_severity(world, chat):
    chat.wecom(world.provider, name="provider")
    chat.wecom(world.merchant, name="merchant")
    chat.dingtalk(world.other, name="other")
    other_critical, _ = chat.wecom(world.other, name="other-critical-only", min_severity=Severity.CRITICAL)
    chat.wecom(world.foreign.provider, name="foreign provider")
    disabled, _ = chat.wecom(world.merchant, name="disabled")
    services.channel_set_active(channel=disabled, is_active=False, user=None)

    assert raise_for(world.merchant, key="a") == {"provider", "merchant"}
    assert raise_for(world.other, key="b") == {"provider", "other"}
    assert raise_for(world.other, key="c", severity=Severity.CRITICAL) == {"provider", "other", "other-critical-only"}
    assert raise_for(world.merchant, key="d", severity=Severity.INFO) == set()  # below every robot's lowest
    assert raise_for(provider_id=world.provider.pk, key="e", rule=Rule.UPSTREAM_ERRORS) == {"provider"}
    assert raise_for(world.foreign, key="f") == {"foreign provider"}
    assert Alert.objects.count() == 6  # the console lists every one, sent or not


def test_the_same_rule_and_merchant_wait_out_a_robots_quiet_period(world, chat):
    provider_robot, _ = chat.wecom(world.provider, name="provider", quiet_minutes=30)
    loud, _ = chat.wecom(world.merchant, name="no quiet period", quiet_minutes=0)
    now = timezone.now()

    def attention(merchant, at):
        payment = world.payment(merchant, status=PaymentStatus.ATTENTION)
        rules.evaluate(now=at)
        return {d.channel_id: d.status for d in AlertDelivery.objects.filter(alert__data__payment=payment.pk)}

    assert attention(world.merchant, now) == {provider_robot.pk: Status.PENDING, loud.pk: Status.PENDING}
    assert attention(world.merchant, now + timedelta(minutes=29)) == {
        provider_robot.pk: Status.SKIPPED,
        loud.pk: Status.PENDING,
    }
    assert attention(world.other, now + timedelta(minutes=29)) == {provider_robot.pk: Status.PENDING}  # another topic
    assert attention(world.merchant, now + timedelta(minutes=31)) == {
        provider_robot.pk: Status.PENDING,
        loud.pk: Status.PENDING,
    }
    assert Alert.objects.filter(rule=Rule.PAYMENT_ATTENTION).count() == 4


def test_disabling_a_robot_drops_what_waited_for_it(world, chat):
    channel, _ = chat.wecom(world.merchant)
    world.payment(status=PaymentStatus.ATTENTION)
    rules.evaluate()

    services.channel_set_active(channel=channel, is_active=False, user=None)

    assert AlertDelivery.objects.get(channel=channel).status == Status.SKIPPED
