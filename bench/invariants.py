"""The fault run's invariants, as pure functions over plain rows (tested in tests/bench/test_invariants.py).

`ours` are the product's payments and refunds, `ledger` is `sandbox.services.sandbox_ledger()`: the
upstream's own order book, which records what really happened whatever answers were lost on the way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

UNSETTLED = {"PAYING", "REVERSING"}
OPEN_REFUNDS = {"PENDING", "PROCESSING"}
# What the user should be out of pocket, by our status.
KEEPS_MONEY = {"SUCCESS", "PARTIALLY_REFUNDED"}
RETURNS_MONEY = {"FAILED", "REVERSED", "REFUNDED"}
REVERSED_THERE = {"REVOKED", "CLOSED", "04", "03"}


@dataclass(frozen=True)
class PaymentRow:
    out_trade_no: str
    status: str
    total_fee: int
    refunded_fee: int = 0
    reserved_refund_fee: int = 0
    has_next_check: bool = False


@dataclass(frozen=True)
class RefundRow:
    out_trade_no: str
    refund_fee: int
    status: str
    has_next_check: bool = False


@dataclass
class Report:
    not_final: list[str] = field(default_factory=list)
    charged_there_failed_here: list[str] = field(default_factory=list)
    reversed_there_success_here: list[str] = field(default_factory=list)
    amount_differs: list[str] = field(default_factory=list)
    unknown_here_charged_there: list[str] = field(default_factory=list)
    double_charges: list[str] = field(default_factory=list)
    refunds_exceeding: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)
    attention_charged_there: list[str] = field(default_factory=list)

    @property
    def money_disagreements(self) -> int:
        return (
            len(self.charged_there_failed_here)
            + len(self.reversed_there_success_here)
            + len(self.amount_differs)
            + len(self.unknown_here_charged_there)
        )

    def counts(self) -> dict[str, int]:
        return {
            "orders not final after the resolution window": len(self.not_final),
            "money disagreements with the upstream's ledger": self.money_disagreements,
            "  charged there, FAILED here": len(self.charged_there_failed_here),
            "  reversed there, SUCCESS here": len(self.reversed_there_success_here),
            "  any fen of difference": len(self.amount_differs),
            "  charged there, unknown here": len(self.unknown_here_charged_there),
            "double charges for one out_trade_no": len(self.double_charges),
            "refunds exceeding payments": len(self.refunds_exceeding),
        }


def check(
    payments: Iterable[PaymentRow],
    refunds: Iterable[RefundRow],
    ledger: Mapping[str, Mapping[str, Any]],
    upstream_orders_per_number: Mapping[str, int] | None = None,
) -> Report:
    report = Report()
    payments = list(payments)
    ours = {p.out_trade_no: p for p in payments}
    refunded_ok: Counter[str] = Counter()
    for refund in refunds:
        if refund.status in OPEN_REFUNDS or refund.has_next_check:
            report.not_final.append(f"refund of {refund.out_trade_no} {refund.status}")
        if refund.status == "SUCCESS":
            refunded_ok[refund.out_trade_no] += refund.refund_fee

    for p in payments:
        there = ledger.get(p.out_trade_no)
        charged_there = int(there["charged"]) if there else 0
        if p.status in UNSETTLED or p.has_next_check:
            report.not_final.append(f"{p.out_trade_no} {p.status}")
            continue
        if p.status == "ATTENTION":
            report.attention.append(p.out_trade_no)
            if charged_there:
                report.attention_charged_there.append(p.out_trade_no)
            continue
        if (
            p.refunded_fee > p.total_fee
            or p.reserved_refund_fee > p.total_fee
            or refunded_ok[p.out_trade_no] > p.total_fee
            or (there and int(there.get("refunded", 0)) > p.total_fee)
            or charged_there < 0
        ):
            report.refunds_exceeding.append(p.out_trade_no)
        if p.status in KEEPS_MONEY:
            expected = p.total_fee - p.refunded_fee
        elif p.status in RETURNS_MONEY:
            expected = 0
        else:
            report.not_final.append(f"{p.out_trade_no} {p.status}")
            continue
        if charged_there == expected and not (there and int(there.get("refund_pending", 0))):
            continue
        if p.status == "FAILED" and charged_there > 0:
            report.charged_there_failed_here.append(p.out_trade_no)
        elif p.status in KEEPS_MONEY and there and str(there.get("state")) in REVERSED_THERE:
            report.reversed_there_success_here.append(p.out_trade_no)
        else:
            report.amount_differs.append(f"{p.out_trade_no}: ours {expected}, theirs {charged_there} ({p.status})")

    for number, there in ledger.items():
        if number not in ours and there.get("channel") != "payscore" and int(there["charged"]) != 0:
            report.unknown_here_charged_there.append(number)
    for number, count in (upstream_orders_per_number or {}).items():
        if count > 1:
            report.double_charges.append(number)
    return report
