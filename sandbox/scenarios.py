"""Scenario names, the amount table, and how a request picks its scenario (SCENARIOS.md documents the same table).

Precedence: the `X-Sandbox-Scenario` request header, then a preset for the order number
(`sandbox_preset_scenario`), then the amount's last three digits, else SUCCESS. The chosen name is stored on the
order, so query/reverse/refund behave consistently with what the payment call did.
"""

from __future__ import annotations

import enum

from django.conf import settings

HEADER = "X-Sandbox-Scenario"
META_HEADER = "HTTP_X_SANDBOX_SCENARIO"


class Scenario(enum.StrEnum):
    SUCCESS = "SUCCESS"
    # WeChat Pay v2 micropay (amount code = total_fee % 1000)
    USERPAYING_THEN_SUCCESS = "USERPAYING_THEN_SUCCESS"  # 101
    USERPAYING_NEVER_PAID = "USERPAYING_NEVER_PAID"  # 102
    SYSTEMERROR_PAID = "SYSTEMERROR_PAID"  # 103
    NOTENOUGH = "NOTENOUGH"  # 104
    AUTHCODEEXPIRE = "AUTHCODEEXPIRE"  # 105
    MICROPAY_TIMEOUT_PAID = "MICROPAY_TIMEOUT_PAID"  # 106
    ORDERQUERY_TIMEOUT = "ORDERQUERY_TIMEOUT"  # 107
    REVERSE_RECALL_ONCE = "REVERSE_RECALL_ONCE"  # 108
    REVERSE_EXPIRE = "REVERSE_EXPIRE"  # 109
    USERPAYING_THEN_FAIL = "USERPAYING_THEN_FAIL"  # 110
    BANKERROR_NOT_PAID = "BANKERROR_NOT_PAID"  # 111
    # UMF micropay (amount code = txnAmt % 1000)
    UMF_PAYING_THEN_SUCCESS = "UMF_PAYING_THEN_SUCCESS"  # 201
    UMF_PASSWORD_THEN_FAIL = "UMF_PASSWORD_THEN_FAIL"  # 202
    UMF_DECLINED = "UMF_DECLINED"  # 203
    UMF_TIMEOUT_PAID = "UMF_TIMEOUT_PAID"  # 204
    UMF_UNKNOWN_PAID = "UMF_UNKNOWN_PAID"  # 205
    # PayScore (header or preset only)
    PAYSCORE_AUTO_CONFIRM = "PAYSCORE_AUTO_CONFIRM"
    PAYSCORE_AUTO_PAY = "PAYSCORE_AUTO_PAY"
    PAYSCORE_AUTO = "PAYSCORE_AUTO"


WECHAT_AMOUNT_CODES: dict[int, Scenario] = {
    101: Scenario.USERPAYING_THEN_SUCCESS,
    102: Scenario.USERPAYING_NEVER_PAID,
    103: Scenario.SYSTEMERROR_PAID,
    104: Scenario.NOTENOUGH,
    105: Scenario.AUTHCODEEXPIRE,
    106: Scenario.MICROPAY_TIMEOUT_PAID,
    107: Scenario.ORDERQUERY_TIMEOUT,
    108: Scenario.REVERSE_RECALL_ONCE,
    109: Scenario.REVERSE_EXPIRE,
    110: Scenario.USERPAYING_THEN_FAIL,
    111: Scenario.BANKERROR_NOT_PAID,
}
UMF_AMOUNT_CODES: dict[int, Scenario] = {
    201: Scenario.UMF_PAYING_THEN_SUCCESS,
    202: Scenario.UMF_PASSWORD_THEN_FAIL,
    203: Scenario.UMF_DECLINED,
    204: Scenario.UMF_TIMEOUT_PAID,
    205: Scenario.UMF_UNKNOWN_PAID,
}


class UnknownScenario(ValueError):
    pass


def parse(name: str) -> Scenario:
    try:
        return Scenario(name.strip().upper())
    except ValueError:
        raise UnknownScenario(f"unknown sandbox scenario {name!r}") from None


def by_amount(amount: int, table: dict[int, Scenario]) -> Scenario:
    return table.get(int(amount) % 1000, Scenario.SUCCESS)


def resolve(*, header: str | None, preset: str | None, amount: int | None, table: dict[int, Scenario]) -> Scenario:
    """Header > preset > amount > SUCCESS. An unknown header name is an error (a typo must not mean SUCCESS)."""
    if header:
        return parse(header)
    if preset:
        return parse(preset)
    if amount is not None:
        return by_amount(amount, table)
    return Scenario.SUCCESS


# Seconds before a "later" outcome happens (USERPAYING → SUCCESS/PAYERROR, UMF 02 → 00/06, refund PROCESSING →
# SUCCESS). Short by default so the product's 5 s query schedule sees both states.
def settle_seconds() -> float:
    return float(getattr(settings, "SANDBOX_SETTLE_SECONDS", 10))


def refund_seconds() -> float:
    return float(getattr(settings, "SANDBOX_REFUND_SECONDS", 5))


def timeout_sleep_seconds() -> float:
    """How long the timeout scenarios hold the answer: longer than the gateways' 10 s read timeout."""
    return float(getattr(settings, "SANDBOX_TIMEOUT_SLEEP_SECONDS", 15))
