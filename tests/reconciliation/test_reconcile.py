"""Reconciliation against the sandbox's bills (built from its own ledger): a clean day has no difference, every
planted difference is found and classified, re-runs are idempotent, a changed bill is a new version, refused bills
leave nothing, a day without trade is NO_BILL, unsettled orders are carried to the next day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from payments import services as payment_services
from payments.models import Payment, PaymentStatus, Refund
from portal.errors import InvalidInput
from portal.models import AuditLog, Merchant
from reconciliation import services
from reconciliation.models import Bill, CarriedOrder, DayResult, Difference
from sandbox.models import SandboxWechatOrder, SandboxWechatRefund
from sandbox.services import sandbox_plant_bill_difference
from tests.factories import make_user

DAY = date(2026, 3, 10)
NOON = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 China time
NEXT_MORNING = datetime(2026, 3, 11, 2, 30, tzinfo=UTC)  # 10:30 China time, after WeChat publishes


@pytest.fixture
def day_shop(shop):
    shop.clock.current = NOON
    return shop


def submit(shop, amount: int) -> Payment:
    """A payment-code payment through the services (the terminal API checks its timestamps against the real clock,
    and these tests run on a fixed day)."""
    code = "134567890123456789"
    data = payment_services.PaymentInput(total_fee=amount, body="测试商品", auth_code=code, method="CODE")
    payment, _ = payment_services.payment_create(device=shop.device, data=data)
    return payment_services.payment_submit(payment=payment, auth_code=code)


def pay(shop, amount: int) -> Payment:
    payment = submit(shop, amount)
    shop.run_worker(2)
    payment.refresh_from_db()
    return payment


def refund(shop, payment: Payment, amount: int) -> Refund:
    created = payment_services.refund_create(payment=payment, refund_fee=amount, user=None, actor_label="test")
    shop.run_worker(60)
    created.refresh_from_db()
    return created


def a_day_of_trade(shop) -> dict[str, object]:
    """Paid, paid and partly refunded, paid and reversed (a full refund inside the window), declined."""
    paid = pay(shop, 1200)
    refunded = pay(shop, 3000)
    part = refund(shop, refunded, 1000)
    reversed_ = pay(shop, 800)
    full = refund(shop, reversed_, 800)
    declined = pay(shop, 2104)  # NOTENOUGH
    assert (paid.status, refunded.status, declined.status) == ("SUCCESS", "SUCCESS", "FAILED")
    assert (part.kind, part.status, full.kind, full.status) == ("REFUND", "SUCCESS", "REVERSE", "SUCCESS")
    refunded.refresh_from_db()
    reversed_.refresh_from_db()
    assert (refunded.status, reversed_.status) == ("PARTIALLY_REFUNDED", "REVERSED")
    return {"paid": paid, "refunded": refunded, "part": part, "reversed": reversed_, "declined": declined}


def reconcile(shop, day: date = DAY, **kwargs) -> services.DayReport:
    shop.clock.current = max(shop.clock.current, NEXT_MORNING + (day - DAY))
    return services.reconcile_day(merchant=shop.merchant, bill_date=day, **kwargs)


def kinds(report) -> list[tuple[str, str, str]]:
    return [(d["kind"], d["out_trade_no"], d["refund_no"]) for d in report.differences]


def test_a_clean_day_matches_every_row_and_records_the_totals(day_shop):
    a_day_of_trade(day_shop)

    report = reconcile(day_shop)

    assert report.differences == []
    assert (report.status, report.rows, report.matched, report.carried) == ("IMPORTED", 4, 4, 0)
    result = DayResult.objects.get(merchant=day_shop.merchant, bill_date=DAY)
    assert (result.payment_count, result.refund_count) == (3, 1)
    assert result.payment_total == 1200 + 3000 + 800
    assert result.settlement_total == 1200 + 3000 + 800
    assert result.refund_total == 1000
    assert result.fee_total == 7 + 18 + 0 - 6  # 0.60 % per row, the reversed payment free, the refund returns its fee
    assert result.net_settlement == 5000 - 1000 - 19
    assert Difference.objects.count() == 0
    bill = Bill.objects.get()
    assert (bill.status, bill.version, bill.source, bill.rows) == ("IMPORTED", 1, "DOWNLOAD", 4)


def test_a_service_provider_merchant_is_reconciled_per_sub_mch_id(make_shop):
    shop = make_shop(Merchant.Channel.WECHAT_PROVIDER)
    shop.clock.current = NOON
    pay(shop, 1500)

    report = reconcile(shop)

    assert (report.rows, report.matched, report.differences) == (1, 1, [])


@pytest.mark.parametrize(
    ("plant", "kind"),
    [
        ("OMIT", "MISSING_THERE"),
        ("AMOUNT", "AMOUNT_DIFFERS"),
        ("DUPLICATE", "DUPLICATE_ROW"),
        ("REVOKED", "STATUS_DIFFERS"),
    ],
)
def test_planted_payment_differences_are_found_and_classified(day_shop, plant, kind):
    trade = a_day_of_trade(day_shop)
    target = trade["paid"]
    sandbox_plant_bill_difference(order_no=target.out_trade_no, kind=plant)

    report = reconcile(day_shop)

    assert kinds(report) == [(kind, target.out_trade_no, "")]
    difference = Difference.objects.get()
    assert (difference.kind, difference.status, difference.payment_id) == (kind, "OPEN", target.pk)
    assert difference.ours["total_fee"] == 1200 and difference.ours["status"] == "SUCCESS"
    if plant == "OMIT":
        assert difference.theirs is None
    else:
        assert difference.theirs["out_trade_no"] == target.out_trade_no
        assert difference.theirs["total_fee"] == (1201 if plant == "AMOUNT" else 1200)


@pytest.mark.parametrize(
    ("plant", "kind"), [("REFUND_OMIT", "REFUND_MISSING_THERE"), ("REFUND_AMOUNT", "REFUND_AMOUNT_DIFFERS")]
)
def test_planted_refund_differences_are_found_and_classified(day_shop, plant, kind):
    trade = a_day_of_trade(day_shop)
    part = trade["part"]
    sandbox_plant_bill_difference(order_no=part.out_refund_no, kind=plant)

    report = reconcile(day_shop)

    assert kinds(report) == [(kind, trade["refunded"].out_trade_no, part.out_refund_no)]
    difference = Difference.objects.get()
    assert difference.refund_id == part.pk and difference.ours["refund_fee"] == 1000


def test_charged_there_not_successful_here_is_money_at_risk(day_shop, caplog):
    trade = a_day_of_trade(day_shop)
    ours = trade["paid"]
    Payment.objects.filter(pk=ours.pk).update(status=PaymentStatus.FAILED)  # our side lost the success
    # And an order WeChat charged that we never recorded at all.
    known = SandboxWechatOrder.objects.get(out_trade_no=ours.out_trade_no)
    SandboxWechatOrder.objects.create(
        mch_id=known.mch_id, appid=known.appid, out_trade_no="STRANGER0001", transaction_id="4200000000000000099",
        total_fee=500, state="SUCCESS", scenario="SUCCESS", created_at=NOON, paid_at=NOON + timedelta(hours=1),
    )  # fmt: skip

    report = reconcile(day_shop)

    assert kinds(report) == [
        ("CHARGED_NOT_SUCCESSFUL", ours.out_trade_no, ""),
        ("CHARGED_NOT_SUCCESSFUL", "STRANGER0001", ""),
    ]
    stranger = Difference.objects.get(out_trade_no="STRANGER0001")
    assert stranger.ours is None and stranger.theirs["total_fee"] == 500
    alerts = [r for r in caplog.records if r.levelname == "ERROR" and "money at risk" in r.getMessage()]
    assert len(alerts) == 2 and ours.out_trade_no in alerts[0].getMessage() + alerts[1].getMessage()

    caplog.clear()
    reconcile(day_shop)  # the same differences again: already known, not raised twice
    assert not [r for r in caplog.records if "money at risk" in r.getMessage()]


def test_a_refund_on_the_bill_that_we_do_not_know(day_shop):
    trade = a_day_of_trade(day_shop)
    order = SandboxWechatOrder.objects.get(out_trade_no=trade["paid"].out_trade_no)
    SandboxWechatRefund.objects.create(
        order=order, out_refund_no="UNKNOWNR01", refund_id="5030000000099", refund_fee=200, state="SUCCESS",
        created_at=NOON + timedelta(hours=2), succeeds_at=NOON + timedelta(hours=2),
    )  # fmt: skip

    report = reconcile(day_shop)

    assert kinds(report) == [("REFUND_MISSING_HERE", trade["paid"].out_trade_no, "UNKNOWNR01")]


def test_re_running_the_same_bill_changes_nothing(day_shop):
    trade = a_day_of_trade(day_shop)
    sandbox_plant_bill_difference(order_no=trade["paid"].out_trade_no, kind="AMOUNT")
    first = reconcile(day_shop)
    difference = Difference.objects.get()

    second = reconcile(day_shop)

    assert kinds(second) == kinds(first)
    assert Bill.objects.count() == 1
    assert list(Difference.objects.values_list("pk", "status")) == [(difference.pk, "OPEN")]
    assert DayResult.objects.count() == 1


def test_a_changed_bill_is_a_new_version_and_a_gone_difference_is_closed(day_shop):
    trade = a_day_of_trade(day_shop)
    sandbox_plant_bill_difference(order_no=trade["paid"].out_trade_no, kind="AMOUNT")
    reconcile(day_shop)
    from sandbox.models import SandboxBillPlant

    SandboxBillPlant.objects.all().delete()  # the channel corrects its bill

    report = reconcile(day_shop)

    assert report.differences == [] and report.version == 2
    assert list(Bill.objects.order_by("version").values_list("version", "status")) == [(1, "IMPORTED"), (2, "IMPORTED")]
    assert len(set(Bill.objects.values_list("sha256", flat=True))) == 2
    difference = Difference.objects.get()
    assert difference.status == "CLOSED" and difference.closed_at is not None
    assert DayResult.objects.get().open_differences == 0


def _bill_bytes(shop) -> bytes:
    from payments import channels

    shop.clock.current = max(shop.clock.current, NEXT_MORNING)
    return channels.download_bill(merchant=shop.merchant, bill_date="20260310").content


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda text: text.rsplit("\r\n", 2)[0] + "\r\n", "summary row is missing"),  # truncated
        (lambda text: text.replace("`1900000109", "`1900000999"), "another merchant"),
        (lambda text: text.replace("`2026-03-10", "`2026-03-09"), "a row of 2026-03-09 on the bill of 2026-03-10"),
        (lambda text: text.replace("\r\n`4,", "\r\n`5,"), "总交易单数 says 5"),
    ],
)
def test_a_bad_bill_is_refused_and_nothing_is_imported(day_shop, change, reason):
    a_day_of_trade(day_shop)
    content = change(_bill_bytes(day_shop).decode("utf-8")).encode("utf-8")

    with pytest.raises(services.BillRefused, match=reason):
        reconcile(day_shop, content=content)

    refused = Bill.objects.get()
    assert (refused.status, refused.version, refused.source) == ("REFUSED", None, "FILE")
    assert reason.split(" ")[0] in refused.reason
    assert DayResult.objects.count() == Difference.objects.count() == CarriedOrder.objects.count() == 0
    with pytest.raises(services.BillRefused):
        reconcile(day_shop, content=content)
    assert Bill.objects.count() == 1  # the same bad bill again: recorded once


def test_a_day_without_trade_is_no_bill_not_an_error(day_shop):
    report = reconcile(day_shop)

    assert (report.status, report.rows, report.differences) == ("NO_BILL", 0, [])
    assert Bill.objects.get().status == "NO_BILL"
    reconcile(day_shop)
    assert Bill.objects.count() == 1  # asked again: the same answer, kept once


def test_no_bill_while_we_were_paid_is_a_difference(day_shop):
    paid = pay(day_shop, 1200)
    sandbox_plant_bill_difference(order_no=paid.out_trade_no, kind="OMIT")

    report = reconcile(day_shop)

    assert report.status == "NO_BILL"
    assert kinds(report) == [("MISSING_THERE", paid.out_trade_no, "")]


def test_the_bill_is_not_asked_for_before_it_is_published(day_shop):
    pay(day_shop, 1200)
    # The test shop has APIv3 configured, so the bill comes over v3 (STATEMENT_CREATING); over v2 it is "Bill
    # Creating" (tests/reconciliation/test_reconcile_v3.py).
    with pytest.raises(services.BillNotReady, match="Bill Creating|STATEMENT_CREATING"):
        services.reconcile_day(merchant=day_shop.merchant, bill_date=DAY)
    assert Bill.objects.count() == 0


def test_the_sandbox_serves_today_so_far_when_asked_to(day_shop, settings):
    """SANDBOX_BILLS_UNTIL_NOW (the fault run reconciles its own day): the bill of today up to now."""
    paid = pay(day_shop, 1200)
    settings.SANDBOX_BILLS_UNTIL_NOW = True

    report = services.reconcile_day(merchant=day_shop.merchant, bill_date=DAY)

    assert (report.rows, report.matched, report.differences) == (1, 1, [])
    assert Bill.objects.get().status == "IMPORTED" and paid.status == "SUCCESS"


LATE = datetime(2026, 3, 10, 15, 59, 45, tzinfo=UTC)  # 23:59:45 China time


def test_an_order_unsettled_at_the_cut_off_is_carried_to_the_next_day_not_reported(day_shop):
    day_shop.clock.current = LATE
    payment = submit(day_shop, 2101)  # USERPAYING; WeChat has it paid 10 s later, before midnight
    day_shop.clock.advance(16)  # 00:00:01: the bill of the 10th is out, the worker has not looked yet
    assert payment.status == "PAYING"

    first = services.reconcile_day(merchant=day_shop.merchant, bill_date=DAY)

    assert (first.differences, first.carried, first.rows, first.matched) == ([], 1, 1, 0)
    carried = CarriedOrder.objects.get()
    assert (carried.payment_id, carried.bill_date, carried.settled_on) == (payment.pk, DAY, None)
    assert carried.theirs["out_trade_no"] == payment.out_trade_no

    day_shop.run_worker(5)  # the worker finds it paid: on the 11th by our clock
    payment.refresh_from_db()
    assert payment.status == "SUCCESS" and payment.paid_at >= datetime(2026, 3, 10, 16, 0, tzinfo=UTC)
    second = reconcile(day_shop, DAY + timedelta(days=1))

    assert (second.differences, second.status) == ([], "NO_BILL")
    carried.refresh_from_db()
    assert carried.settled_on == DAY + timedelta(days=1)


def test_an_order_paid_after_the_cut_off_is_reconciled_on_the_next_days_bill(day_shop):
    day_shop.clock.current = LATE + timedelta(seconds=5)
    payment = submit(day_shop, 2101)  # WeChat has it paid at 00:00:00 on the 11th
    day_shop.clock.advance(10)

    first = services.reconcile_day(merchant=day_shop.merchant, bill_date=DAY)

    assert (first.status, first.differences, first.carried) == ("NO_BILL", [], 1)
    day_shop.run_worker(5)
    second = reconcile(day_shop, DAY + timedelta(days=1))

    assert (second.status, second.rows, second.matched, second.differences) == ("IMPORTED", 1, 1, [])
    assert CarriedOrder.objects.get().settled_on == DAY + timedelta(days=1)
    payment.refresh_from_db()
    assert payment.status == "SUCCESS"


def test_an_unsettled_order_that_settles_failed_although_charged_is_found_next_day(day_shop):
    payment = submit(day_shop, 2101)  # WeChat has it paid 10 s later; we have not asked yet
    out_trade_no = payment.out_trade_no
    assert reconcile(day_shop).carried == 1
    Payment.objects.filter(pk=payment.pk).update(status=PaymentStatus.FAILED, next_check_at=None)

    report = reconcile(day_shop, DAY + timedelta(days=1))

    assert kinds(report) == [("CHARGED_NOT_SUCCESSFUL", out_trade_no, "")]


def test_explaining_a_difference_is_audited_and_a_rerun_keeps_the_explanation(day_shop):
    trade = a_day_of_trade(day_shop)
    sandbox_plant_bill_difference(order_no=trade["paid"].out_trade_no, kind="AMOUNT")
    reconcile(day_shop)
    user = make_user("recon-staff", superuser=True)

    explained = services.difference_explain(
        user=user, difference=Difference.objects.get(), note="WeChat confirmed 12.00; their bill is wrong."
    )

    assert (explained.status, explained.explained_by, explained.note) == (
        "EXPLAINED",
        user,
        "WeChat confirmed 12.00; their bill is wrong.",
    )
    audit = AuditLog.objects.get(action="reconciliation.explain")
    assert audit.details["kind"] == "AMOUNT_DIFFERS" and audit.merchant_id == day_shop.merchant.pk
    reconcile(day_shop)
    assert Difference.objects.get().status == "EXPLAINED"
    with pytest.raises(InvalidInput) as refused:
        services.difference_explain(user=user, difference=explained, note="  ")
    assert "note" in refused.value.details


def test_requery_asks_the_channel_about_the_order_again(day_shop):
    trade = a_day_of_trade(day_shop)
    sandbox_plant_bill_difference(order_no=trade["paid"].out_trade_no, kind="OMIT")
    reconcile(day_shop)
    user = make_user("recon-staff", superuser=True)
    queries_before = day_shop.upstream_calls().count("pay/orderquery")

    services.difference_requery(user=user, difference=Difference.objects.get())

    assert day_shop.upstream_calls().count("pay/orderquery") == queries_before + 1
    assert AuditLog.objects.filter(action="reconciliation.requery").count() == 1
    assert trade["paid"].events.filter(action="orderquery", actor="STAFF").count() == 1


def test_paid_just_before_midnight_and_on_neither_bill_is_missing_there_on_the_next_day(day_shop):
    day_shop.clock.current = LATE + timedelta(seconds=10)  # 23:59:55: inside the cut-off grace
    paid = pay(day_shop, 1200)
    sandbox_plant_bill_difference(order_no=paid.out_trade_no, kind="OMIT")

    first = reconcile(day_shop)
    second = reconcile(day_shop, DAY + timedelta(days=1))

    assert (first.differences, first.carried) == ([], 1)
    assert kinds(second) == [("MISSING_THERE", paid.out_trade_no, "")]


def test_paid_just_before_midnight_and_on_its_days_bill_matches(day_shop):
    day_shop.clock.current = LATE + timedelta(seconds=10)
    pay(day_shop, 1200)

    report = reconcile(day_shop)

    assert (report.rows, report.matched, report.differences, report.carried) == (1, 1, [], 0)
