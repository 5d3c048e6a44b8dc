"""The fault run's invariants: each kind of disagreement is counted, agreement counts nothing."""

from bench.invariants import PaymentRow, RefundRow, check


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
