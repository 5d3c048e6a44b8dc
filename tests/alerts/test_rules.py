"""Each rule fires when it should, once, and not when it should not (docs/alerts.md, "Rules")."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.utils import timezone

from alerts import rules
from alerts.models import Alert, Rule, Severity
from alerts.text import CHINA
from payments.models import Payment, PaymentEvent, PaymentStatus, Refund
from portal.models import Device, Store
from reconciliation.models import Bill, Difference

pytestmark = pytest.mark.django_db


def aligned(minutes: int) -> datetime:
    """A moment one minute into a `minutes`-long period, so that a few minutes later is the same period."""
    period = minutes * 60
    return datetime.fromtimestamp(math.ceil(timezone.now().timestamp() / period) * period + 60, tz=CHINA)


# --- payments and refunds in ATTENTION -----------------------------------------------------------------------------


def test_a_payment_in_attention_is_alerted_exactly_once(world):
    payment = world.payment(status=PaymentStatus.ATTENTION, err_code="SYSTEMERROR")

    assert rules.evaluate() == 1
    assert rules.evaluate() == 0
    assert rules.evaluate() == 0

    alert = Alert.objects.get()
    assert (alert.rule, alert.severity, alert.key) == (
        Rule.PAYMENT_ATTENTION,
        Severity.CRITICAL,
        f"attention:payment:{payment.pk}",
    )
    assert (alert.merchant, alert.provider) == (world.merchant, world.provider)
    assert alert.data["out_trade_no"] == payment.out_trade_no and alert.data["code"] == "SYSTEMERROR"


def test_a_payment_settled_before_the_check_is_not_alerted(world):
    payment = world.payment(status=PaymentStatus.ATTENTION)
    Payment.objects.filter(pk=payment.pk).update(status=PaymentStatus.SUCCESS)  # a person settled it meanwhile

    assert rules.evaluate() == 0
    assert not Alert.objects.exists()


def test_a_missed_run_loses_nothing_and_an_alerted_payment_is_not_alerted_again(world):
    first, second = world.payment(status=PaymentStatus.ATTENTION), world.payment(status=PaymentStatus.ATTENTION)
    assert rules.evaluate() == 2
    Payment.objects.filter(pk=first.pk).update(status=PaymentStatus.SUCCESS)
    Payment.objects.filter(pk=first.pk).update(status=PaymentStatus.ATTENTION)  # back again: not a second alert
    third = world.payment(status=PaymentStatus.ATTENTION)

    assert rules.evaluate() == 1
    assert set(Alert.objects.values_list("key", flat=True)) == {
        f"attention:payment:{p.pk}" for p in (first, second, third)
    }


def test_a_refund_in_attention_is_alerted_once(world):
    payment = world.payment()
    refund = Refund.objects.create(
        payment=payment,
        out_refund_no=payment.out_trade_no + "R01",
        refund_fee=300,
        kind=Refund.Kind.REFUND,
        status=Refund.Status.ATTENTION,
        err_code="SYSTEMERROR",
    )
    Refund.objects.create(
        payment=payment, out_refund_no=payment.out_trade_no + "R02", refund_fee=100, kind=Refund.Kind.REFUND
    )

    assert rules.evaluate() == 1
    assert rules.evaluate() == 0
    alert = Alert.objects.get()
    assert (alert.rule, alert.key, alert.merchant) == (
        Rule.REFUND_ATTENTION,
        f"attention:refund:{refund.pk}",
        world.merchant,
    )
    assert alert.data["payment"] == payment.pk and alert.data["amount"] == 300


# --- devices offline during opening hours --------------------------------------------------------------------------


def china(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 10, hour, minute, tzinfo=CHINA)


def hours(world, opens: time | None, closes: time | None) -> None:
    Store.objects.filter(pk=world.device.store_id).update(opens_at=opens, closes_at=closes)


def seen(world, moment: datetime | None) -> None:
    Device.objects.filter(pk=world.device.pk).update(last_seen_at=moment)


def offline_alerts(now: datetime) -> list[str]:
    return [finding.key for finding in rules.devices_offline(now)]


def test_a_device_offline_while_its_store_is_open_is_alerted_china_time(world):
    hours(world, time(9), time(21))
    seen(world, china(9, 30))  # offline after DEVICE_OFFLINE_AFTER_SECONDS (300 s)
    assert offline_alerts(china(9, 34)) == []  # not yet offline
    assert len(offline_alerts(china(10, 0))) == 1

    seen(world, china(6, 0))
    assert offline_alerts(china(8, 59)) == []  # not open yet
    assert offline_alerts(china(21, 0)) == []  # closed
    assert len(offline_alerts(china(20, 59))) == 1
    # The hours are China time whatever the moment's time zone: 02:00 UTC is 10:00 in China.
    assert len(offline_alerts(china(10, 0).astimezone(UTC))) == 1
    assert offline_alerts(datetime(2026, 3, 10, 21, 30, tzinfo=UTC)) == []  # 05:30 in China


def test_terminals_switched_on_at_opening_time_are_not_alerted_at_once(world, settings):
    settings.ALERT_OFFLINE_AFTER_OPENING_MINUTES = 10
    hours(world, time(9), time(21))
    seen(world, china(8, 0) - timedelta(days=1))  # switched off last night

    assert offline_alerts(china(9, 5)) == []
    assert len(offline_alerts(china(9, 10))) == 1


def test_a_store_open_past_midnight_and_one_open_all_day(world):
    seen(world, china(0, 0) - timedelta(hours=3))
    hours(world, time(22), time(2))
    assert len(offline_alerts(china(1, 0))) == 1
    assert offline_alerts(china(3, 0)) == []
    hours(world, time(0), time(0))
    assert len(offline_alerts(china(3, 0))) == 1


def test_no_alert_without_opening_hours_for_a_device_never_seen_or_disabled(world):
    seen(world, china(6, 0))
    hours(world, None, None)
    assert offline_alerts(china(12, 0)) == []
    hours(world, time(9), time(21))
    Device.objects.filter(pk=world.device.pk).update(is_active=False)
    assert offline_alerts(china(12, 0)) == []
    Device.objects.filter(pk=world.device.pk).update(is_active=True, last_seen_at=None)
    assert offline_alerts(china(12, 0)) == []


def test_a_device_is_alerted_once_per_offline_spell(world):
    hours(world, time(9), time(21))
    seen(world, china(9, 30))

    assert rules.evaluate(now=china(10, 0)) == 1
    assert rules.evaluate(now=china(11, 0)) == 0  # the same spell
    seen(world, china(12, 0))  # back, then gone again
    assert rules.evaluate(now=china(12, 3)) == 0
    assert rules.evaluate(now=china(12, 30)) == 1

    alerts = Alert.objects.filter(rule=Rule.DEVICE_OFFLINE).order_by("id")
    assert [datetime.fromisoformat(a.data["last_seen_at"]) for a in alerts] == [china(9, 30), china(12, 0)]
    assert alerts[0].data["store"] == "南山店" and alerts[0].data["opens_at"] == "09:00"


# --- failed payments -------------------------------------------------------------------------------------------------


def payments(world, merchant, now, *, failed: int, succeeded: int, paying: int = 0) -> None:
    """Payments made a minute before `now`."""
    statuses = [PaymentStatus.FAILED] * failed + [PaymentStatus.SUCCESS] * succeeded + [PaymentStatus.PAYING] * paying
    made = [world.payment(merchant, status=status).pk for status in statuses]
    Payment.objects.filter(pk__in=made).update(created_at=now - timedelta(minutes=1))


def test_a_merchant_with_many_failed_payments_is_alerted_once_per_window(world, settings):
    now = aligned(settings.ALERT_FAILURE_RATE_WINDOW_MINUTES)
    payments(world, world.merchant, now, failed=6, succeeded=14, paying=10)  # 30 % of 20 settled
    payments(world, world.other, now, failed=5, succeeded=15)  # 25 %

    assert rules.evaluate(now=now) == 1
    assert rules.evaluate(now=now + timedelta(minutes=5)) == 0  # the same window-long period

    alert = Alert.objects.get()
    assert (alert.rule, alert.merchant) == (Rule.FAILURE_RATE, world.merchant)
    assert alert.data == {"failed": 6, "total": 20, "percent": 30, "minutes": 10}

    later = now + timedelta(minutes=10)  # the next period: the old payments are out of the window
    assert rules.evaluate(now=later) == 0
    payments(world, world.merchant, later, failed=10, succeeded=10)
    assert rules.evaluate(now=later) == 1


def test_too_few_payments_are_not_a_failure_rate(world, settings):
    now = aligned(settings.ALERT_FAILURE_RATE_WINDOW_MINUTES)
    payments(world, world.merchant, now, failed=19, succeeded=0, paying=5)
    assert rules.failure_rates(now) == []


# --- channel errors ---------------------------------------------------------------------------------------------------


def upstream(payment, now, *outcomes: str, minutes_ago: float = 1) -> None:
    """The payment's calls with these outcomes, `minutes_ago` before `now`."""
    made = [
        PaymentEvent.objects.create(payment=payment, action="orderquery", outcome=outcome, actor="WORKER").pk
        for outcome in outcomes
    ]
    PaymentEvent.objects.filter(pk__in=made).update(created_at=now - timedelta(minutes=minutes_ago))


def test_a_providers_failing_channel_calls_are_one_alert_per_window(world, settings):
    now = aligned(settings.ALERT_UPSTREAM_ERRORS_WINDOW_MINUTES)
    upstream(world.payment(), now, *["TRANSIENT"] * 3, *["UNKNOWN"] * 2)
    upstream(world.payment(world.other), now, *["TRANSIENT"] * 5)  # the same provider and channel: counted together
    upstream(world.payment(world.foreign), now, *["REJECTED"] * 20, "SUCCESS")  # definite answers are not errors

    assert rules.evaluate(now=now) == 1
    assert rules.evaluate(now=now + timedelta(minutes=2)) == 0

    alert = Alert.objects.get()
    assert (alert.rule, alert.severity, alert.merchant, alert.provider) == (
        Rule.UPSTREAM_ERRORS,
        Severity.CRITICAL,
        None,
        world.provider,
    )
    assert alert.data == {"channel": world.merchant.channel, "count": 10, "minutes": 5}


def test_fewer_or_older_channel_errors_are_not_alerted(world, settings):
    now = aligned(settings.ALERT_UPSTREAM_ERRORS_WINDOW_MINUTES)
    upstream(world.payment(), now, *["TRANSIENT"] * 9)
    upstream(world.payment(), now, *["TRANSIENT"] * 5, minutes_ago=6)
    assert rules.upstream_errors(now) == []


# --- reconciliation differences --------------------------------------------------------------------------------------


def bill(merchant, day: date, version: int) -> Bill:
    return Bill.objects.create(
        merchant=merchant, bill_date=day, channel=merchant.channel, source=Bill.Source.DOWNLOAD,
        status=Bill.Status.IMPORTED, version=version, sha256=f"{version:064d}",
    )  # fmt: skip


def difference(merchant, day, first_bill, kind, number, status=Difference.Status.OPEN) -> Difference:
    return Difference.objects.create(
        merchant=merchant, bill_date=day, kind=kind, out_trade_no=f"D{number:06d}", first_bill=first_bill,
        last_bill=first_bill, status=status,
    )  # fmt: skip


def test_new_differences_are_one_alert_per_merchant_day_and_bill(world):
    day = timezone.localdate() - timedelta(days=1)
    first = bill(world.merchant, day, 1)
    difference(world.merchant, day, first, "AMOUNT_DIFFERS", 1)
    difference(world.merchant, day, first, "AMOUNT_DIFFERS", 2)
    difference(world.merchant, day, first, "MISSING_THERE", 3)
    difference(world.merchant, day, first, "MISSING_THERE", 4, status=Difference.Status.EXPLAINED)

    assert rules.evaluate() == 1
    assert rules.evaluate() == 0
    alert = Alert.objects.get()
    assert (alert.rule, alert.severity, alert.merchant) == (Rule.RECONCILIATION, Severity.WARNING, world.merchant)
    assert alert.data == {"bill_date": day.isoformat(), "count": 3, "kinds": {"AMOUNT_DIFFERS": 2, "MISSING_THERE": 1}}

    second = bill(world.merchant, day, 2)  # a new bill of the same day finds money at risk
    difference(world.merchant, day, second, "CHARGED_NOT_SUCCESSFUL", 5)
    assert rules.evaluate() == 1
    newest = Alert.objects.order_by("-id").first()
    assert newest.severity == Severity.CRITICAL and newest.data["kinds"] == {"CHARGED_NOT_SUCCESSFUL": 1}


def test_differences_explained_before_the_check_or_of_old_days_are_not_alerted(world, settings):
    old = timezone.localdate() - timedelta(days=settings.ALERT_RECONCILIATION_DAYS + 1)
    difference(world.merchant, old, bill(world.merchant, old, 1), "AMOUNT_DIFFERS", 1)
    day = timezone.localdate()
    difference(world.merchant, day, bill(world.merchant, day, 1), "AMOUNT_DIFFERS", 2, Difference.Status.EXPLAINED)

    assert rules.reconciliation_differences(timezone.now()) == []


# --- evaluation -------------------------------------------------------------------------------------------------------


def test_a_failing_rule_does_not_keep_the_others_from_running(world, monkeypatch, caplog):
    def broken(now):
        raise RuntimeError("boom")

    monkeypatch.setattr(rules, "RULES", (broken, rules.payments_in_attention))
    world.payment(status=PaymentStatus.ATTENTION)

    assert rules.evaluate() == 1
    assert "rule broken failed" in caplog.text
