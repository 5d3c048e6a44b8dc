"""The `reconcile` command, by download and with --file, and the beat job and task that run it daily."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from reconciliation.models import Bill, Difference
from tests.reconciliation.test_reconcile import DAY, NEXT_MORNING, NOON, a_day_of_trade, pay

SAMPLE = (Path(__file__).parent / "bills" / "wechat_all_direct.csv").read_bytes()


@pytest.fixture
def day_shop(shop):
    shop.clock.current = NOON
    return shop


def test_the_command_prints_the_days_result_as_json(day_shop, capsys):
    trade = a_day_of_trade(day_shop)
    from sandbox.services import sandbox_plant_bill_difference

    sandbox_plant_bill_difference(order_no=trade["paid"].out_trade_no, kind="AMOUNT")
    day_shop.clock.current = NEXT_MORNING

    call_command("reconcile", "--date", DAY.isoformat(), "--json")

    printed = json.loads(capsys.readouterr().out)
    assert printed["date"] == "2026-03-10"
    [merchant] = printed["merchants"]
    assert (merchant["merchant"], merchant["rows"], merchant["matched"]) == (day_shop.merchant.pk, 4, 3)
    [difference] = merchant["differences"]
    assert (difference["kind"], difference["out_trade_no"], difference["refund_no"]) == (
        "AMOUNT_DIFFERS",
        trade["paid"].out_trade_no,
        "",
    )
    assert difference["ours"]["total_fee"] == 1200 and difference["theirs"]["total_fee"] == 1201


def test_the_command_imports_a_file_for_one_merchant(day_shop, tmp_path, capsys):
    paid = pay(day_shop, 1200)
    from payments import channels

    day_shop.clock.current = NEXT_MORNING
    path = tmp_path / "bill.csv.gz"
    path.write_bytes(gzip.compress(channels.download_bill(merchant=day_shop.merchant, bill_date="20260310").content))

    call_command("reconcile", "--date", "2026-03-10", "--merchant", str(day_shop.merchant.pk), "--file", str(path))

    assert "rows 1, matched 1, differences 0" in capsys.readouterr().out
    bill = Bill.objects.get()
    assert (bill.source, bill.status) == ("FILE", "IMPORTED")
    assert Difference.objects.count() == 0
    assert paid.status == "SUCCESS"


def test_the_command_refuses_a_bad_file_and_says_why(day_shop, tmp_path, capsys):
    path = tmp_path / "bill.csv"
    path.write_bytes(SAMPLE.replace(b"`3,`33.80", b"`9,`33.80"))

    with pytest.raises(CommandError):
        call_command("reconcile", "--date", "2026-03-10", "--merchant", str(day_shop.merchant.pk), "--file", str(path))

    assert "总交易单数 says 9" in capsys.readouterr().err
    assert list(Bill.objects.values_list("status", flat=True)) == ["REFUSED"]


def test_the_command_needs_a_merchant_for_a_file(tmp_path):
    with pytest.raises(CommandError, match="--merchant"):
        call_command("reconcile", "--date", "2026-03-10", "--file", str(tmp_path / "x"))


def test_the_beat_schedule_fetches_bills_after_wechat_publishes(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["reconciliation-fetch-bills"]
    assert entry["task"] == "reconciliation.tasks.fetch_bills"
    assert settings.CELERY_TIMEZONE == "Asia/Shanghai"
    assert entry["schedule"].hour == {10} and entry["schedule"].minute == {15}


def test_the_beat_job_queues_yesterday_for_every_wechat_merchant(day_shop, make_shop, monkeypatch):
    from portal.models import Merchant
    from reconciliation import tasks

    make_shop(Merchant.Channel.UMPAY)  # offers no bill download: not queued
    queued = []
    monkeypatch.setattr(tasks.reconcile_merchant_day_task, "delay", lambda *args: queued.append(args))
    monkeypatch.setattr(tasks.timezone, "localdate", lambda: DAY.replace(day=11))

    assert tasks.fetch_bills_task() == 1
    assert queued == [(day_shop.merchant.pk, "2026-03-10")]


def test_the_task_records_the_day_or_gives_up_after_its_retries(day_shop, settings):
    from reconciliation import tasks

    pay(day_shop, 1200)
    settings.RECONCILIATION_RETRY_MAX = 0
    assert tasks.reconcile_merchant_day_task(day_shop.merchant.pk, "2026-03-10") == "NOT_READY"  # Bill Creating
    day_shop.clock.current = NEXT_MORNING
    assert tasks.reconcile_merchant_day_task(day_shop.merchant.pk, "2026-03-10") == "IMPORTED"
    assert tasks.reconcile_merchant_day_task(day_shop.merchant.pk, "2026-03-10") == "IMPORTED"
    assert Bill.objects.count() == 1
