"""The fault run's invariants: each kind of disagreement is counted, agreement counts nothing (money, then the
webhooks, the alerts)."""

from bench.invariants import (
    AlertReport,
    PaymentRow,
    ReceivedRow,
    RefundRow,
    WebhookDeliveryRow,
    check,
    check_alerts,
    check_webhooks,
    expected_webhook_events,
)


def ledger_entry(charged: int, state: str = "SUCCESS", refunded: int = 0, pending: int = 0, channel: str = "wechat"):
    return {"channel": channel, "charged": charged, "refunded": refunded, "refund_pending": pending, "state": state}


def test_agreement_counts_nothing():
    payments = [
        PaymentRow("P1", "SUCCESS", 1000),
        PaymentRow("P2", "FAILED", 500),
        PaymentRow("P3", "REVERSED", 700, refunded_fee=700, reserved_refund_fee=700),
        PaymentRow("P4", "PARTIALLY_REFUNDED", 1000, refunded_fee=300, reserved_refund_fee=300),
    ]
    refunds = [RefundRow("P4", 300, "SUCCESS")]
    ledger = {
        "P1": ledger_entry(1000),
        "P2": ledger_entry(0, "PAYERROR"),
        "P3": ledger_entry(0, "REVOKED"),
        "P4": ledger_entry(700, "REFUND", refunded=300),
    }

    report = check(payments, refunds, ledger, {"P1": 1, "P2": 1, "P3": 1, "P4": 1})

    assert set(report.counts().values()) == {0}


def test_each_disagreement_is_named():
    payments = [
        PaymentRow("CHARGED", "FAILED", 1000),
        PaymentRow("REVERSED", "SUCCESS", 1000),
        PaymentRow("FEN", "SUCCESS", 1000),
        PaymentRow("OPEN", "PAYING", 1000, has_next_check=True),
        PaymentRow("LATE", "SUCCESS", 1000, has_next_check=True),
    ]
    ledger = {
        "CHARGED": ledger_entry(1000),
        "REVERSED": ledger_entry(0, "REVOKED"),
        "FEN": ledger_entry(999),
        "STRAY": ledger_entry(300, channel="umpay"),
    }

    report = check(payments, [RefundRow("FEN", 1, "PROCESSING")], ledger, {"FEN": 2})

    assert report.charged_there_failed_here == ["CHARGED"]
    assert report.reversed_there_success_here == ["REVERSED"]
    assert report.amount_differs == ["FEN: ours 1000, theirs 999 (SUCCESS)"]
    assert report.unknown_here_charged_there == ["STRAY"]
    assert report.double_charges == ["FEN"]
    assert report.not_final == ["refund of FEN PROCESSING", "OPEN PAYING", "LATE SUCCESS"]
    assert report.money_disagreements == 4


def test_refunds_beyond_the_amount_are_counted():
    payments = [PaymentRow("P1", "REFUNDED", 1000, refunded_fee=1000, reserved_refund_fee=1000)]
    refunds = [RefundRow("P1", 600, "SUCCESS"), RefundRow("P1", 600, "SUCCESS")]

    report = check(payments, refunds, {"P1": ledger_entry(-200, "REFUND", refunded=1200)})

    assert report.refunds_exceeding == ["P1"]


def test_attention_is_reported_apart_not_as_disagreement():
    payments = [PaymentRow("A1", "ATTENTION", 109), PaymentRow("A2", "ATTENTION", 109)]

    report = check(payments, [], {"A1": ledger_entry(0, "USERPAYING"), "A2": ledger_entry(109)})

    assert (report.attention, report.attention_charged_there, report.money_disagreements) == (["A1", "A2"], ["A2"], 0)


def test_a_refund_still_pending_upstream_is_a_difference():
    payments = [PaymentRow("P1", "PARTIALLY_REFUNDED", 1000, refunded_fee=400, reserved_refund_fee=400)]

    report = check(payments, [], {"P1": ledger_entry(600, "REFUND", refunded=400, pending=100)})

    assert len(report.amount_differs) == 1


# --- webhooks ----------------------------------------------------------------------------------------------------

HOOK = "/hook/1"


def delivery(event_id: str, kind: str, number: str, sequence: int, status: str = "DELIVERED") -> WebhookDeliveryRow:
    return WebhookDeliveryRow(HOOK, event_id, kind, number, status, sequence)


def arrival(event_id: str, attempt: int, answer: str, at: float, signature_ok: bool = True) -> ReceivedRow:
    return ReceivedRow(HOOK, event_id, attempt, answer, at, answered_at=at + 0.01, signature_ok=signature_ok)


def test_final_states_name_the_events_they_must_have_made():
    payments = [("P1", "SUCCESS"), ("P2", "REFUNDED"), ("P3", "FAILED"), ("P4", "PAYING"), ("P5", "ATTENTION")]
    refunds = [("P2", "SUCCESS"), ("P2", "SUCCESS"), ("P1", "FAILED"), ("P1", "PROCESSING")]

    expected = expected_webhook_events(payments, refunds)

    assert expected == {
        ("P1", "payment.succeeded"): 1,
        ("P2", "payment.succeeded"): 1,
        ("P3", "payment.failed"): 1,
        ("P5", "payment.attention"): 1,
        ("P2", "refund.succeeded"): 2,
        ("P1", "refund.failed"): 1,
    }


def test_webhooks_delivered_once_in_order_count_nothing():
    deliveries = [
        delivery("e1", "payment.succeeded", "P1", 1),
        delivery("e2", "refund.succeeded", "P1", 2),
        delivery("e3", "payment.failed", "P2", 3),
    ]
    received = [
        arrival("e1", 1, "503", 10.0),
        arrival("e1", 2, "200", 20.0),
        arrival("e2", 1, "reset", 21.0),
        arrival("e2", 2, "204", 30.0),
        arrival("e3", 1, "timeout", 11.0),
        arrival("e3", 2, "200", 25.0),
    ]
    expected = expected_webhook_events([("P1", "PARTIALLY_REFUNDED"), ("P2", "FAILED")], [("P1", "SUCCESS")])
    recorded = {(HOOK, "e1", 2), (HOOK, "e2", 2), (HOOK, "e3", 2)}

    report = check_webhooks(deliveries, received, expected, recorded)

    assert set(report.counts().values()) == {0}
    assert set(report.info().values()) == {0}


def test_undelivered_and_missing_events_are_counted():
    deliveries = [
        delivery("e1", "payment.succeeded", "P1", 1, status="PENDING"),
        delivery("e2", "payment.failed", "P2", 2),
    ]
    expected = expected_webhook_events(
        [("P1", "SUCCESS"), ("P2", "FAILED"), ("P3", "REVERSED")], [("P1", "SUCCESS"), ("P1", "SUCCESS")]
    )

    report = check_webhooks(deliveries, [arrival("e2", 1, "200", 1.0)], expected, {(HOOK, "e2", 1)})

    assert report.not_delivered == ["/hook/1 e1 payment.succeeded P1 PENDING"]
    assert report.missing_events == ["P1 refund.succeeded: 0 of 2", "P3 payment.reversed: 0 of 1"]
    assert report.counts()["webhook_events_not_delivered"] == 3


def test_a_repeat_after_a_recorded_2xx_is_an_invariant_and_after_an_unrecorded_one_is_at_least_once():
    deliveries = [delivery("e1", "payment.succeeded", "P1", 1), delivery("e2", "payment.succeeded", "P2", 2)]
    received = [
        arrival("e1", 1, "200", 1.0),
        arrival("e1", 2, "200", 5.0),  # our database had recorded attempt 1's 200: must not happen
        arrival("e2", 1, "200", 2.0),
        arrival("e2", 2, "200", 60.0),  # attempt 1's 200 never recorded (its worker was killed): at-least-once
    ]
    expected = expected_webhook_events([("P1", "SUCCESS"), ("P2", "SUCCESS")], [])

    report = check_webhooks(deliveries, received, expected, {(HOOK, "e1", 1), (HOOK, "e1", 2), (HOOK, "e2", 2)})

    assert report.seen_twice_after_recorded_2xx == ["/hook/1 e1 attempt 2 after a 2xx to attempt 1"]
    assert report.at_least_once_duplicates == ["/hook/1 e2 attempt 2 after a 2xx to attempt 1"]
    assert report.counts()["webhook_2xx_seen_twice (sent again after a 2xx we recorded)"] == 1
    assert list(report.info().values()) == [1]


def test_a_repeat_while_the_2xx_was_not_yet_answered_is_no_duplicate():
    deliveries = [delivery("e1", "payment.succeeded", "P1", 1)]
    first = ReceivedRow(HOOK, "e1", 1, "200", received_at=1.0, answered_at=3.0)
    overlapping = ReceivedRow(HOOK, "e1", 2, "200", received_at=2.0, answered_at=2.1)

    report = check_webhooks(deliveries, [first, overlapping], {}, {(HOOK, "e1", 1), (HOOK, "e1", 2)})

    assert report.seen_twice_after_recorded_2xx == [] and report.at_least_once_duplicates == []


def test_bad_signatures_are_counted():
    deliveries = [delivery("e1", "payment.succeeded", "P1", 1)]
    received = [arrival("e1", 1, "400", 1.0, signature_ok=False), arrival("e1", 2, "200", 2.0)]

    report = check_webhooks(deliveries, received, {}, {(HOOK, "e1", 2)})

    assert report.bad_signatures == ["/hook/1 e1 attempt 1"]
    assert report.counts()["webhook deliveries with a bad signature"] == 1


def test_a_refund_event_arriving_before_its_payments_2xx_is_counted():
    deliveries = [
        delivery("p1", "payment.succeeded", "P1", 1),
        delivery("r1", "refund.succeeded", "P1", 2),
        delivery("p2", "payment.succeeded", "P2", 3),
        delivery("r2", "refund.failed", "P2", 4),
        delivery("p3", "payment.succeeded", "P3", 5),
        delivery("r3", "refund.succeeded", "P3", 6),
    ]
    received = [
        arrival("p1", 1, "500", 1.0),  # the payment's event failed ...
        arrival("r1", 1, "200", 2.0),  # ... and its refund's arrived before any 2xx to it
        arrival("p1", 2, "200", 3.0),
        arrival("r2", 1, "200", 4.0),  # the payment's event never answered 2xx at all
        arrival("p3", 1, "200", 5.0),  # in order
        arrival("r3", 1, "200", 6.0),
    ]
    recorded = {(HOOK, "r1", 1), (HOOK, "p1", 2), (HOOK, "r2", 1), (HOOK, "p3", 1), (HOOK, "r3", 1)}

    report = check_webhooks(deliveries, received, {}, recorded)

    assert report.refund_before_payment == [
        "/hook/1 P1: refund.succeeded r1 before payment.succeeded p1",
        "/hook/1 P2: refund.failed r2 before payment.succeeded p2",
    ]
    assert report.counts()["webhook refund events before their payment's 2xx"] == 2


def test_alerts_once_for_each_attention_and_never_for_what_settled():
    assert check_alerts(["payment:1", "refund:2"], ["payment:1", "refund:2", "payment:3"], ["payment:1", "refund:2",
                        "payment:3"]).counts() == dict.fromkeys(AlertReport().counts(), 0)  # fmt: skip
    report = check_alerts(
        in_attention=["payment:1", "payment:2", "refund:5"],
        ever_in_attention=["payment:1", "payment:2", "refund:5"],
        alerted=["payment:1", "payment:1", "payment:9", "refund:5"],
    )
    assert (report.not_alerted, report.alerted_twice, report.alerted_never_in_attention) == (
        ["payment:2"],
        ["payment:1"],
        ["payment:9"],
    )
