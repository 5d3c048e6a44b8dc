"""The money path end to end: terminal API → services → gateway → sandbox, through every sandbox scenario.

Each test asserts the final state, the upstream calls made, and that the sandbox's ledger agrees with ours on
money (charged here ⇔ charged there).
"""

from datetime import datetime, timedelta

import pytest

from payments import services
from payments.models import Payment
from portal.models import ChannelCredentials, Merchant
from sandbox.services import sandbox_ledger

pytestmark = pytest.mark.django_db


def assert_money_agrees(shop, out_trade_no: str) -> None:
    payment = shop.payment(out_trade_no)
    charged_there = sandbox_ledger(now=shop.clock.now()).get(out_trade_no, {}).get("charged", 0)
    charged_here = (
        payment.total_fee - payment.refunded_fee if payment.status in ("SUCCESS", "PARTIALLY_REFUNDED") else 0
    )
    assert charged_here == charged_there, (payment.status, charged_there)


def test_success_is_answered_at_once_with_one_upstream_call(shop):
    order = shop.pay(1000)

    assert order["status"] == "SUCCESS"
    assert order["is_final"] is True
    assert order["transaction_id"]
    assert shop.upstream_calls() == ["pay/micropay"]
    payment = shop.payment(order["out_trade_no"])
    assert [e.action for e in payment.events.all()] == ["created", "micropay", "state"]
    assert payment.next_check_at is None
    assert_money_agrees(shop, order["out_trade_no"])


def test_events_are_redacted(shop):
    order = shop.pay(1000, auth_code="134567890123456789")
    event = shop.payment(order["out_trade_no"]).events.get(action="micropay")
    text = str(event.request) + str(event.response)
    assert "134567890123456789" not in text
    assert event.request["auth_code"] == "1345***"
    assert "sign" not in event.request or event.request["sign"].endswith("***")


def test_userpaying_then_success_queries_and_never_reverses(shop):
    order = shop.pay(1101)  # USERPAYING_THEN_SUCCESS
    assert order["status"] == "PAYING"

    shop.run_worker(40)

    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "SUCCESS"
    calls = shop.upstream_calls()
    assert calls[0] == "pay/micropay"
    assert calls.count("pay/orderquery") >= 1
    assert "secapi/pay/reverse" not in calls
    assert_money_agrees(shop, order["out_trade_no"])


def test_never_paid_is_reversed_no_sooner_than_15_s_after_micropay(shop):
    order = shop.pay(1102)  # USERPAYING_NEVER_PAID

    shop.run_worker(60)

    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "REVERSED"
    micropay_event = payment.events.get(action="micropay")
    calls = shop.upstream_calls()
    assert calls.count("pay/orderquery") >= 5  # every 5 s for 30 s
    assert calls[-1] == "secapi/pay/reverse"
    assert micropay_event.code == "USERPAYING"
    assert_money_agrees(shop, order["out_trade_no"])


def test_reverse_happens_at_or_after_15_s_on_the_clock(shop, monkeypatch):
    """The 15 s rule measured on the shared clock: record the clock when reverse is called."""
    from payments import channels

    seen = []
    original = channels.reverse
    monkeypatch.setattr(channels, "reverse", lambda **kw: seen.append(shop.clock.now()) or original(**kw))
    order = shop.pay(1102)
    submitted = shop.payment(order["out_trade_no"]).submitted_at

    shop.run_worker(60)

    assert seen and all((moment - submitted).total_seconds() >= 15 for moment in seen)


def test_cancel_while_paying_reverses_once_wechat_lets_it(shop):
    """The user walks away while still entering the password: the reverse goes no sooner than 15 s, WeChat refuses
    it while the user is paying (USERPAYING, recall=Y), and it is asked again with backoff until WeChat has closed
    the unpaid order (45 s) — then the reverse succeeds."""
    order = shop.pay(1102)
    response = shop.terminal.post(f"payments/{order['out_trade_no']}/cancel")
    assert response.json()["status"] == "REVERSING"

    shop.run_worker(10)
    assert shop.payment(order["out_trade_no"]).status == "REVERSING"  # not before 15 s
    assert shop.upstream_calls().count("secapi/pay/reverse") == 0
    shop.run_worker(10)
    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "REVERSING"
    assert set(payment.events.filter(action="reverse").values_list("code", flat=True)) == {"USERPAYING"}
    shop.run_worker(60)

    assert shop.payment(order["out_trade_no"]).status == "REVERSED"
    again = shop.terminal.post(f"payments/{order['out_trade_no']}/cancel")
    assert again.json()["status"] == "REVERSED"  # idempotent
    codes = list(shop.payment(order["out_trade_no"]).events.filter(action="reverse").values_list("code", flat=True))
    assert codes[0] == "USERPAYING" and codes[-1] == "" and len(codes) <= 4
    assert_money_agrees(shop, order["out_trade_no"])


def test_cancel_after_success_reverses_the_charge(shop):
    order = shop.pay(1000)
    shop.terminal.post(f"payments/{order['out_trade_no']}/cancel")
    shop.run_worker(20)
    assert shop.payment(order["out_trade_no"]).status == "REVERSED"
    assert_money_agrees(shop, order["out_trade_no"])


def test_cancel_after_the_reverse_window_is_refused_and_changes_nothing(make_shop):
    """UMF reverses only on the order's day (WeChat within 7 days): past that, a paid order is refunded instead —
    a reverse would be refused and leave a good payment in ATTENTION."""
    shop = make_shop(Merchant.Channel.UMPAY)
    order = shop.pay(1000)
    made = datetime.strptime(shop.payment(order["out_trade_no"]).order_time, "%Y%m%d%H%M%S") - timedelta(days=1)
    Payment.objects.filter(out_trade_no=order["out_trade_no"]).update(order_time=f"{made:%Y%m%d%H%M%S}")
    response = shop.terminal.post(f"payments/{order['out_trade_no']}/cancel")
    assert (response.status_code, response.json()["code"]) == (409, "NOT_CANCELLABLE")
    shop.run_worker(30)
    payment = shop.payment(order["out_trade_no"])
    assert (payment.status, payment.next_check_at) == ("SUCCESS", None)
    assert "cancelOrder" not in " ".join(shop.upstream_calls())


def test_merchant_without_credentials_fails_at_once_without_a_call(shop):
    ChannelCredentials.objects.filter(merchant=shop.merchant).delete()
    order = shop.pay(1000)
    assert (order["status"], order["err_code"]) == ("FAILED", "CHANNEL_NOT_CONFIGURED")
    payment = shop.payment(order["out_trade_no"])
    assert payment.next_check_at is None
    assert shop.upstream_calls() == []
    assert payment.events.filter(action="micropay", code="CHANNEL_NOT_CONFIGURED").exists()


def test_a_channel_call_that_raises_is_recorded_and_ends_definite(shop, monkeypatch, settings):
    """Anything a channel call raises (an unreadable key, a bug) is an answer of unknown outcome: recorded, counted
    against the limits, and the payment ends definite instead of being re-driven forever by the sweeper."""
    settings.PAYMENT_REVERSE_MAX_ATTEMPTS = 3

    def broken(**kwargs):
        raise ValueError("cannot load key")

    monkeypatch.setattr(services.channels, "charge", broken)
    monkeypatch.setattr(services.channels, "query", broken)
    monkeypatch.setattr(services.channels, "reverse", broken)
    order = shop.pay(1000)
    assert order["status"] == "PAYING"  # may or may not have left: find out
    shop.run_worker(600)
    payment = shop.payment(order["out_trade_no"])
    assert (payment.status, payment.next_check_at, payment.reverse_count) == ("ATTENTION", None, 3)
    codes = set(payment.events.exclude(action__in=("created", "state")).values_list("code", flat=True))
    assert codes == {"LOCAL_ERROR"}


def test_a_reverse_refused_while_the_user_pays_is_asked_again_when_wechat_closes_the_order(shop):
    """After several refusals the backoff would wait a minute; the retry comes just after WeChat's 45 s close."""
    from datetime import timedelta

    from payments.channels import Answer
    from payments.gateways.base import Outcome

    payment = shop.payment(shop.pay(1102)["out_trade_no"])
    now = payment.submitted_at + timedelta(seconds=40)
    Payment.objects.filter(pk=payment.pk).update(status="REVERSING", reverse_count=5)
    payment.refresh_from_db()
    services._apply_reverse(payment, Answer(outcome=Outcome.TRANSIENT, code="USERPAYING"), now)
    assert payment.next_check_at == payment.submitted_at + timedelta(seconds=47)  # the backoff said now + 60 s
    services._apply_reverse(payment, Answer(outcome=Outcome.TRANSIENT, code="SYSTEMERROR"), now)
    assert payment.next_check_at == now + timedelta(seconds=60)  # other refusals keep the backoff


def test_systemerror_but_paid_ends_success(shop):
    order = shop.pay(1103)
    assert order["status"] == "PAYING"
    shop.run_worker(10)
    assert shop.payment(order["out_trade_no"]).status == "SUCCESS"
    assert "secapi/pay/reverse" not in shop.upstream_calls()
    assert_money_agrees(shop, order["out_trade_no"])


@pytest.mark.parametrize(("amount", "code"), [(1104, "NOTENOUGH"), (1105, "AUTHCODEEXPIRE")])
def test_definite_refusals_fail_at_once_without_query(shop, amount, code):
    order = shop.pay(amount)
    assert (order["status"], order["err_code"]) == ("FAILED", code)
    shop.run_worker(40)
    assert shop.upstream_calls() == ["pay/micropay"]
    assert_money_agrees(shop, order["out_trade_no"])


def test_micropay_timeout_but_charged_ends_success_not_failed(shop):
    order = shop.pay(1106)  # the sandbox charges, then answers after the client gave up
    assert order["status"] == "PAYING"
    payment = shop.payment(order["out_trade_no"])
    assert payment.events.get(action="micropay").outcome == "UNKNOWN"

    shop.run_worker(40)

    assert shop.payment(order["out_trade_no"]).status == "SUCCESS"
    assert "secapi/pay/reverse" not in shop.upstream_calls()
    assert_money_agrees(shop, order["out_trade_no"])


def test_orderquery_timeout_is_survived(shop):
    order = shop.pay(1107)
    shop.run_worker(60)
    payment = shop.payment(order["out_trade_no"])
    assert payment.status in ("SUCCESS", "REVERSED", "FAILED")
    assert payment.events.filter(action="orderquery", outcome="TRANSIENT").exists()
    assert_money_agrees(shop, order["out_trade_no"])


def test_reverse_with_recall_is_repeated_until_done(shop):
    order = shop.pay(1108)
    shop.run_worker(90)
    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "REVERSED"
    assert shop.upstream_calls().count("secapi/pay/reverse") == 2
    assert_money_agrees(shop, order["out_trade_no"])


def test_reverse_expire_goes_to_attention(shop):
    order = shop.pay(1109)
    shop.run_worker(90)
    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "ATTENTION"
    assert payment.err_code == "REVERSE_EXPIRE"
    assert payment.next_check_at is None


def test_userpaying_then_payerror_fails(shop):
    order = shop.pay(1110)
    shop.run_worker(40)
    assert shop.payment(order["out_trade_no"]).status == "FAILED"
    assert "secapi/pay/reverse" not in shop.upstream_calls()
    assert_money_agrees(shop, order["out_trade_no"])


def test_bankerror_not_paid_ends_definite_and_uncharged(shop):
    order = shop.pay(1111)
    shop.run_worker(60)
    assert shop.payment(order["out_trade_no"]).status in ("FAILED", "REVERSED")
    assert_money_agrees(shop, order["out_trade_no"])


def test_service_provider_mode_pays(make_shop):
    shop = make_shop(Merchant.Channel.WECHAT_PROVIDER)
    order = shop.pay(1101)
    shop.run_worker(30)
    assert shop.payment(order["out_trade_no"]).status == "SUCCESS"
    assert_money_agrees(shop, order["out_trade_no"])


# --- UMF ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "final", "method"),
    [
        (2000, "SUCCESS", "FACE"),
        (2201, "SUCCESS", "CODE"),  # 02 then origRespCode 00
        (2202, "FAILED", "CODE"),  # 62 then origRespCode 06
        (2203, "FAILED", "CODE"),  # declined
        (2204, "SUCCESS", "CODE"),  # timeout, charged
        (2205, "SUCCESS", "CODE"),  # 04 but paid
    ],
)
def test_umpay_scenarios(make_shop, amount, final, method):
    shop = make_shop(Merchant.Channel.UMPAY)
    order = shop.pay(amount, method=method)
    shop.run_worker(60)
    payment = shop.payment(order["out_trade_no"])
    assert payment.status == final
    assert shop.upstream_calls()[0] == "pay/micropay"
    assert_money_agrees(shop, order["out_trade_no"])


def test_umpay_face_pay_sends_face_flag(make_shop):
    shop = make_shop(Merchant.Channel.UMPAY)
    order = shop.pay(2000, method="FACE")
    event = shop.payment(order["out_trade_no"]).events.get(action="micropay")
    assert event.request["faceFlag"] == "1"
    assert event.request["orderType"] == "wechat"


@pytest.mark.parametrize("back_url", ["http://pay.example.com/notify/umpay/", ""])
def test_umpay_back_url_is_sent_only_as_plain_http(make_shop, settings, back_url):
    """UMF accepts only an http:// backUrl; with none configured (an https-only site) none is sent and the
    payment is settled by the answer and the queries as always."""
    settings.UMPAY_BACK_URL = back_url
    shop = make_shop(Merchant.Channel.UMPAY)
    order = shop.pay(2000)
    assert order["status"] == "SUCCESS"
    sent = shop.payment(order["out_trade_no"]).events.get(action="micropay").request
    assert sent.get("backUrl", "") == back_url


def test_an_https_umpay_back_url_stops_the_start_up():
    import os
    import subprocess
    import sys

    from django.conf import settings

    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "UMPAY_BACK_URL": "https://x.test/n/"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "UMPAY_BACK_URL must start with http://" in result.stderr


# --- idempotency ---------------------------------------------------------------------------------------------------


def test_same_order_twice_charges_once(shop):
    first = shop.terminal.post(
        "payments",
        {
            "out_trade_no": "ORDER-1",
            "total_fee": 1000,
            "body": "b",
            "auth_code": "134567890123456789",
            "method": "CODE",
        },
    )
    second = shop.terminal.post(
        "payments",
        {
            "out_trade_no": "ORDER-1",
            "total_fee": 1000,
            "body": "b",
            "auth_code": "134567890123456789",
            "method": "CODE",
        },
    )
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["transaction_id"] == second.json()["transaction_id"]
    assert shop.upstream_calls() == ["pay/micropay"]
    assert Payment.objects.count() == 1


def test_same_number_different_content_is_409_and_changes_nothing(shop):
    shop.terminal.post(
        "payments",
        {
            "out_trade_no": "ORDER-2",
            "total_fee": 1000,
            "body": "b",
            "auth_code": "134567890123456789",
            "method": "CODE",
        },
    )
    response = shop.terminal.post(
        "payments",
        {
            "out_trade_no": "ORDER-2",
            "total_fee": 2000,
            "body": "b",
            "auth_code": "134567890123456789",
            "method": "CODE",
        },
    )
    assert response.status_code == 409
    assert response.json()["code"] == "OUT_TRADE_NO_CONFLICT"
    assert shop.payment("ORDER-2").total_fee == 1000
    assert shop.upstream_calls() == ["pay/micropay"]


def test_get_unknown_order_is_404(shop):
    response = shop.terminal.get("payments/NOPE")
    assert response.status_code == 404
    assert response.json()["code"] == "PAYMENT_NOT_FOUND"


def test_terminal_cannot_read_another_merchants_order(make_shop):
    shop_a, shop_b = make_shop(), make_shop()
    order = shop_a.pay(1000)
    assert shop_b.terminal.get(f"payments/{order['out_trade_no']}").status_code == 404


# --- crash recovery ------------------------------------------------------------------------------------------------


def test_lost_task_is_picked_up_by_the_sweeper(shop):
    """The countdown task after USERPAYING was lost: the sweeper's query of overdue work still finds the order."""
    order = shop.pay(1101)
    payment = shop.payment(order["out_trade_no"])
    shop.clock.advance(6)

    due_payments, _ = services.due_work(now=shop.clock.now())
    assert payment.pk in due_payments
    shop.run_worker(30)

    assert shop.payment(order["out_trade_no"]).status == "SUCCESS"


def test_worker_killed_mid_resolution_is_finished_by_the_sweeper(shop, monkeypatch):
    """The worker dies after claiming the order and before recording the answer (during the query call)."""
    from payments import channels

    class WorkerKilled(BaseException):
        pass

    original = channels.query
    deaths = []

    def die_once(**kwargs):
        if not deaths:
            deaths.append(shop.clock.now())
            raise WorkerKilled
        return original(**kwargs)

    monkeypatch.setattr(channels, "query", die_once)
    order = shop.pay(1101)
    payment = shop.payment(order["out_trade_no"])
    shop.clock.advance(6)
    with pytest.raises(WorkerKilled):
        services.payment_resolve(payment_id=payment.pk, now=shop.clock.now())
    payment.refresh_from_db()
    assert payment.status == "PAYING"
    assert payment.next_check_at > shop.clock.now()  # the lease keeps others off while the call may be in flight

    shop.run_worker(40)

    payment.refresh_from_db()
    assert payment.status == "SUCCESS"
    assert_money_agrees(shop, order["out_trade_no"])


def test_request_dying_before_the_charge_is_sent_still_ends_definite(shop, monkeypatch):
    """The web process dies after persisting the order and before micropay: the sweeper finds out (query), then
    settles it; nothing is charged twice."""
    from payments import channels

    class ProcessDied(BaseException):
        pass

    def die(**kwargs):
        raise ProcessDied

    monkeypatch.setattr(channels, "charge", die)
    with pytest.raises(ProcessDied):
        shop.terminal.post(
            "payments",
            {
                "out_trade_no": "DIES-1",
                "total_fee": 1000,
                "body": "b",
                "auth_code": "134567890123456789",
                "method": "CODE",
            },
        )
    shop.run_worker(90)
    payment = shop.payment("DIES-1")
    assert payment.status in ("FAILED", "REVERSED")
    assert "pay/micropay" not in shop.upstream_calls()
    assert_money_agrees(shop, "DIES-1")


def test_a_successful_payment_reads_and_writes_a_bounded_number_of_times(shop):
    """The hot path's database round trips (device auth included; the in-process sandbox's own excluded): a guard
    against a change that quietly adds queries or joins to every payment."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    shop.pay(1000)  # warm-up: first-use work (content types, caches) is not part of the budget
    with CaptureQueriesContext(connection) as queries:
        order = shop.pay(1000)

    assert order["status"] == "SUCCESS" and order["store_id"] and order["device_id"]
    # Statements only: transaction control (savepoints here, BEGIN/COMMIT in production) is left out.
    ours = [
        q["sql"]
        for q in queries.captured_queries
        if "sandbox_" not in q["sql"] and not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]
    # auth: device, nonce; create (claimed for sending): payment, event; credentials; record: the UPDATE
    # conditional on PAYING, events (one INSERT for the answer and the state change), and on PostgreSQL the
    # state change's wake-up (pg_notify, delivered at commit to any terminal waiting on this payment).
    assert len(ours) <= (8 if connection.vendor == "postgresql" else 7), "\n".join(ours)
    assert sum(sql.startswith('INSERT INTO "payments_paymentevent"') for sql in ours) == 2
    assert not [sql for sql in ours if "FOR UPDATE" in sql]  # the answer is written without re-reading the row


def test_cancel_landing_while_the_charge_is_out_wins_over_its_success(shop, monkeypatch):
    """The user walks away while micropay is in flight and the charge then succeeds: the order stays with the
    reverse path (REVERSING → REVERSED), the answer is recorded, and the money agrees with the upstream."""
    from payments import channels

    real_charge = channels.charge

    def charge_while_cancelled(*, payment, auth_code):
        answer = real_charge(payment=payment, auth_code=auth_code)
        services.payment_cancel(payment=Payment.objects.get(pk=payment.pk))
        return answer

    monkeypatch.setattr(channels, "charge", charge_while_cancelled)
    order = shop.pay(1000)
    assert order["status"] == "REVERSING"
    payment = shop.payment(order["out_trade_no"])
    assert [e.action for e in payment.events.all()] == ["created", "state", "micropay"]
    assert payment.events.get(action="micropay").outcome == "SUCCESS"
    monkeypatch.setattr(channels, "charge", real_charge)
    shop.run_worker(20)
    assert shop.payment(order["out_trade_no"]).status == "REVERSED"
    assert_money_agrees(shop, order["out_trade_no"])


def test_sweeper_sends_an_overdue_order_once_per_redispatch_period(monkeypatch):
    """Sweeps run every few seconds; an order still overdue at the next sweep (workers behind) is not queued again
    until SWEEP_REDISPATCH_SECONDS have passed, so a backlog cannot fill the queue with duplicates of itself."""
    from django.core.cache import cache

    from payments import tasks

    sent = []
    monkeypatch.setattr(tasks.resolve_payment_task, "delay", lambda pk: sent.append(pk))
    monkeypatch.setattr(tasks.services, "due_work", lambda: ([41, 42], []))

    assert tasks.sweep() == {"payments": 2, "refunds": 0, "sent": 2}
    assert tasks.sweep() == {"payments": 2, "refunds": 0, "sent": 0}  # still overdue: not queued again
    assert sent == [41, 42]
    cache.delete("sweep:payments:42")  # as if its redispatch period had passed (lost with a killed worker)
    assert tasks.sweep()["sent"] == 1
    assert sent == [41, 42, 42]
