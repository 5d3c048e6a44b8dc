"""Concurrency is settled by the database: proven with real threads on PostgreSQL (skipped with a reason elsewhere).

Each thread has its own database connection; the transactions really overlap.
"""

import threading

import pytest
from django.db import connection

from payments import services
from payments.models import Payment, Refund

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(count, work):
    barrier = threading.Barrier(count)
    results, errors = [], []
    lock = threading.Lock()

    def target(index):
        try:
            barrier.wait()
            value = work(index)
            with lock:
                results.append(value)
        except Exception as exc:  # noqa: BLE001 - collected and asserted by the test
            with lock:
                errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def test_concurrent_identical_submissions_charge_once(requires_postgres, shop):
    body = {
        "out_trade_no": "RACE-1",
        "total_fee": 1000,
        "body": "b",
        "auth_code": "134567890123456789",
        "method": "CODE",
    }

    results, errors = run_together(6, lambda i: shop.terminal.post("payments", body))

    assert errors == []
    assert sorted(r.status_code for r in results) == [200] * 5 + [201]
    assert Payment.objects.filter(out_trade_no="RACE-1").count() == 1
    assert shop.upstream_calls().count("pay/micropay") == 1
    assert {r.json()["out_trade_no"] for r in results} == {"RACE-1"}


def test_concurrent_conflicting_submissions_one_wins_rest_409(requires_postgres, shop):
    def submit(i):
        return shop.terminal.post(
            "payments",
            {
                "out_trade_no": "RACE-2",
                "total_fee": 1000 + i,
                "body": "b",
                "auth_code": "134567890123456789",
                "method": "CODE",
            },
        )

    results, errors = run_together(5, submit)

    assert errors == []
    assert sorted(r.status_code for r in results) == [201] + [409] * 4
    assert shop.upstream_calls().count("pay/micropay") == 1


def test_concurrent_refunds_never_exceed_the_payment(requires_postgres, shop):
    order = shop.pay(1000)
    payment = shop.payment(order["out_trade_no"])

    def refund(i):
        return services.refund_create(payment=payment, refund_fee=400, reason=f"r{i}", user=None, actor_label="t")

    results, errors = run_together(5, refund)

    assert len(results) == 2  # 2 × 400 ≤ 1000 < 3 × 400
    assert all(getattr(e, "code", "") == "REFUND_EXCEEDS_PAYMENT" for e in errors) and len(errors) == 3
    payment.refresh_from_db()
    assert payment.reserved_refund_fee == 800
    assert Refund.objects.filter(payment=payment).count() == 2


def test_concurrent_requests_with_one_request_key_make_one_refund(requires_postgres, shop):
    """A double click lands twice at once: both requests carry the confirmation's key; one refund results."""
    order = shop.pay(1000)
    payment = shop.payment(order["out_trade_no"])

    def refund(i):
        return services.refund_create(
            payment=payment, refund_fee=300, user=None, actor_label="t", request_key="double-click-0001"
        ).pk

    results, errors = run_together(5, refund)

    assert errors == []
    assert len(set(results)) == 1 and len(results) == 5
    payment.refresh_from_db()
    assert payment.reserved_refund_fee == 300
    assert Refund.objects.filter(payment=payment).count() == 1


def test_concurrent_resolvers_do_not_double_act(requires_postgres, shop):
    """Three resolvers every second: each scheduled step (query, reverse) is sent by exactly one of them. Never
    paid (1102): WeChat refuses the reverse while the user may still pay and closes the order after 45 s."""
    order = shop.pay(1102)
    payment = shop.payment(order["out_trade_no"])
    for _ in range(60):
        shop.clock.advance(1)
        run_together(3, lambda i: services.payment_resolve(payment_id=payment.pk, now=shop.clock.now()))
    payment.refresh_from_db()
    assert payment.status == "REVERSED"
    calls = shop.upstream_calls()
    assert calls.count("secapi/pay/reverse") == payment.reverse_count  # one call per counted attempt
    assert calls.count("pay/orderquery") == payment.query_count
    assert payment.events.filter(action="reverse", outcome="SUCCESS").count() == 1
