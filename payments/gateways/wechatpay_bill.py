"""Channel bill formats, parsed line by line (no Django): WeChat Pay v2 `downloadbill` (bill_type ALL).

WeChat's trade bill (docs/reconciliation.md, "WeChat Pay v2 bill"): UTF-8 text (a byte-order mark may lead), comma
separated, in four parts — the detail header row, one row per payment or refund with every field prefixed by a
backtick, the summary header row `总交易单数,…`, and one summary row. Amounts are yuan with two decimals; fees
(手续费) are yuan with five decimals. Times are China time. Columns are found by their header names, because WeChat
says their order may change.

Everything that does not fit is refused with `BillError` naming the line, so a truncated, malformed or foreign bill
is never half-imported.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

SUMMARY_HEADER = (
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
)

# The detail columns this code reads, by WeChat's header names.
COLUMNS = {
    "trade_time": "交易时间",
    "appid": "公众账号ID",
    "mch_id": "商户号",
    "sub_mch_id": "特约商户号",
    "device_info": "设备号",
    "transaction_id": "微信订单号",
    "out_trade_no": "商户订单号",
    "trade_type": "交易类型",
    "trade_state": "交易状态",
    "settlement_fee": "应结订单金额",
    "coupon_fee": "代金券金额",
    "refund_id": "微信退款单号",
    "out_refund_no": "商户退款单号",
    "refund_fee": "退款金额",
    "coupon_refund_fee": "充值券退款金额",
    "refund_status": "退款状态",
    "fee": "手续费",
    "total_fee": "订单金额",
    "requested_refund_fee": "申请退款金额",
}

# 交易状态 values: a payment (SUCCESS), a payment reversed after it was paid (REVOKED), a refund (REFUND).
PAYMENT_STATES = frozenset({"SUCCESS", "REVOKED"})
REFUND_STATE = "REFUND"

_YUAN = re.compile(r"^(-?)(\d{1,12})\.(\d{2})$")
_FEE = re.compile(r"^(-?)(\d{1,12})\.(\d{5})$")
_TIME = "%Y-%m-%d %H:%M:%S"


class BillError(ValueError):
    """The bill is not one we can import: the message says which line and why (no secrets, no whole rows).

    `template` (English, `str.format` fields) and `params` are kept apart so the console can show the reason in the
    user's language; `str()` is the English text."""

    def __init__(self, template: str, **params: object) -> None:
        self.template, self.params = template, params
        super().__init__(template.format(**params))


@dataclass(frozen=True, slots=True)
class BillRow:
    """One detail row, amounts in fen."""

    line: int
    trade_time: datetime  # naive, China time
    mch_id: str
    sub_mch_id: str
    transaction_id: str
    out_trade_no: str
    trade_state: str
    settlement_fee: int
    total_fee: int
    refund_id: str
    out_refund_no: str
    refund_fee: int
    requested_refund_fee: int
    coupon_refund_fee: int
    refund_status: str
    fee: int

    @property
    def is_refund(self) -> bool:
        return self.trade_state == REFUND_STATE


@dataclass(frozen=True)
class BillSummary:
    """The bill's own totals (its last row), in fen."""

    rows: int
    settlement_total: int
    refund_total: int
    coupon_refund_total: int
    fee_total: int
    order_total: int
    requested_refund_total: int


def yuan_to_fen(text: str, *, line: int, name: str) -> int:
    """`12.34` → 1234. Exactly two decimals; anything else is refused (never rounded)."""
    match = _YUAN.match(text)
    if not match:
        raise BillError(
            "line {line}: {name} {text!r} is not yuan with two decimals", line=line, name=name, text=text[:20]
        )
    sign, whole, cents = match.groups()
    value = int(whole) * 100 + int(cents)
    return -value if sign else value


def fee_to_fen(text: str, *, line: int, name: str) -> int:
    """Fees come with five decimals (`0.32000`); WeChat charges them in whole fen, so the last three are zero."""
    match = _FEE.match(text)
    if not match:
        raise BillError(
            "line {line}: {name} {text!r} is not yuan with five decimals", line=line, name=name, text=text[:20]
        )
    sign, whole, decimals = match.groups()
    if decimals[2:] != "000":
        raise BillError(
            "line {line}: {name} {text!r} is not a whole number of fen", line=line, name=name, text=text[:20]
        )
    value = int(whole) * 100 + int(decimals[:2])
    return -value if sign else value


def _field(text: str, *, line: int) -> str:
    if not text.startswith("`"):
        raise BillError("line {line}: a field does not start with the backtick", line=line)
    return text[1:]


def _split(raw: str) -> list[str]:
    # No field of the trade bill contains a comma of its own (WeChat prefixes fields, it does not quote them).
    return raw.rstrip("\r\n").split(",")


class WechatBill:
    """Iterate `rows()` once; afterwards `summary` holds the summary row, checked against the detail rows.

    The check covers every total of the summary row: the row count and each amount column summed to the fen. A bill
    that ends before its summary row (truncated) is refused.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = lines
        self.summary: BillSummary | None = None

    def rows(self) -> Iterator[BillRow]:
        lines = iter(self._lines)
        header_line = next(lines, None)
        if header_line is None or not header_line.strip():
            raise BillError("line {line}: the bill is empty", line=1)
        header = _split(header_line.lstrip("\ufeff"))
        try:
            index = {key: header.index(name) for key, name in COLUMNS.items()}
        except ValueError:
            missing = [name for name in COLUMNS.values() if name not in header]
            raise BillError(
                "line {line}: not a WeChat Pay ALL bill (missing columns: {missing})",
                line=1,
                missing=", ".join(missing),
            ) from None
        width = len(header)
        totals = [0] * 7  # rows, settlement, refund, coupon refund, fee, order, requested refund
        number = 1
        for raw in lines:
            number += 1
            if not raw.strip():
                continue
            fields = _split(raw)
            if fields[0] == SUMMARY_HEADER[0]:
                self.summary = self._summary(lines, fields, number, totals)
                for extra in lines:
                    number += 1
                    if extra.strip():
                        raise BillError("line {line}: text after the summary row", line=number)
                return
            if len(fields) != width:
                raise BillError(
                    "line {line}: {fields} fields where the header has {width}",
                    line=number,
                    fields=len(fields),
                    width=width,
                )
            values = {key: _field(fields[i], line=number) for key, i in index.items()}
            row = self._row(values, number)
            totals[0] += 1
            totals[1] += row.settlement_fee
            totals[2] += row.refund_fee
            totals[3] += row.coupon_refund_fee
            totals[4] += row.fee
            totals[5] += row.total_fee
            totals[6] += row.requested_refund_fee
            yield row
        raise BillError("line {line}: the bill ends before its summary rows (truncated)", line=number)

    @staticmethod
    def _row(values: dict[str, str], line: int) -> BillRow:
        try:
            trade_time = datetime.strptime(values["trade_time"], _TIME)
        except ValueError:
            raise BillError(
                "line {line}: 交易时间 {text!r} is not yyyy-MM-dd HH:mm:ss", line=line, text=values["trade_time"][:20]
            ) from None
        state = values["trade_state"]
        if state not in PAYMENT_STATES and state != REFUND_STATE:
            raise BillError("line {line}: unknown 交易状态 {text!r}", line=line, text=state[:20])
        if not values["out_trade_no"] or not values["transaction_id"]:
            raise BillError("line {line}: 商户订单号 or 微信订单号 is empty", line=line)

        def money(key: str) -> int:
            return yuan_to_fen(values[key], line=line, name=COLUMNS[key])

        refund = state == REFUND_STATE
        if refund and not values["out_refund_no"]:
            raise BillError("line {line}: a refund row without 商户退款单号", line=line)
        return BillRow(
            line=line,
            trade_time=trade_time,
            mch_id=values["mch_id"],
            sub_mch_id="" if values["sub_mch_id"] == "0" else values["sub_mch_id"],
            transaction_id=values["transaction_id"],
            out_trade_no=values["out_trade_no"],
            trade_state=state,
            settlement_fee=money("settlement_fee"),
            total_fee=money("total_fee"),
            # Payment rows carry "0" in the refund number columns.
            refund_id=values["refund_id"] if refund else "",
            out_refund_no=values["out_refund_no"] if refund else "",
            refund_fee=money("refund_fee"),
            requested_refund_fee=money("requested_refund_fee"),
            coupon_refund_fee=money("coupon_refund_fee"),
            refund_status=values["refund_status"],
            fee=fee_to_fen(values["fee"], line=line, name=COLUMNS["fee"]),
        )

    @staticmethod
    def _summary(lines: Iterator[str], header: list[str], number: int, totals: list[int]) -> BillSummary:
        if tuple(header) != SUMMARY_HEADER:
            raise BillError(
                "line {line}: the summary header is not {header}", line=number, header=",".join(SUMMARY_HEADER)
            )
        raw = next(lines, None)
        if raw is None or not raw.strip():
            raise BillError("line {line}: the summary row is missing (truncated)", line=number + 1)
        fields = [_field(text, line=number + 1) for text in _split(raw)]
        if len(fields) != len(SUMMARY_HEADER):
            raise BillError(
                "line {line}: the summary row has {fields} fields, not {width}",
                line=number + 1, fields=len(fields), width=len(SUMMARY_HEADER),
            )  # fmt: skip
        if not fields[0].isdigit():
            raise BillError("line {line}: 总交易单数 {text!r} is not a count", line=number + 1, text=fields[0][:20])
        line = number + 1
        summary = BillSummary(
            rows=int(fields[0]),
            settlement_total=yuan_to_fen(fields[1], line=line, name=SUMMARY_HEADER[1]),
            refund_total=yuan_to_fen(fields[2], line=line, name=SUMMARY_HEADER[2]),
            coupon_refund_total=yuan_to_fen(fields[3], line=line, name=SUMMARY_HEADER[3]),
            fee_total=fee_to_fen(fields[4], line=line, name=SUMMARY_HEADER[4]),
            order_total=yuan_to_fen(fields[5], line=line, name=SUMMARY_HEADER[5]),
            requested_refund_total=yuan_to_fen(fields[6], line=line, name=SUMMARY_HEADER[6]),
        )
        stated = [
            summary.rows, summary.settlement_total, summary.refund_total, summary.coupon_refund_total,
            summary.fee_total, summary.order_total, summary.requested_refund_total,
        ]  # fmt: skip
        for name, said, counted in zip(SUMMARY_HEADER, stated, totals, strict=True):
            if said != counted:
                raise BillError(
                    "line {line}: {name} says {said} but the detail rows add up to {counted} (fen/rows)",
                    line=line, name=name, said=said, counted=counted,
                )  # fmt: skip
        return summary


def decompressed(data: bytes) -> bytes:
    """A bill's text: the bytes themselves, or, when they are a GZIP file (its magic bytes lead), what it holds.
    A broken GZIP file raises OSError or EOFError."""
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def lines_of(content: bytes) -> Iterator[str]:
    """The bill's text lines, decoded as UTF-8 one at a time (a 200,000-row bill is never one big str)."""
    start = 0
    length = len(content)
    number = 0
    while start < length:
        end = content.find(b"\n", start)
        end = length if end < 0 else end + 1
        number += 1
        try:
            yield content[start:end].decode("utf-8")
        except UnicodeDecodeError:
            raise BillError("line {line}: not UTF-8 text", line=number) from None
        start = end


# --- writing (the sandbox's bills and hand-made test bills use the same format) ----------------------------------

DETAIL_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,"
    "手续费,费率,订单金额,申请退款金额,费率备注"
)


def fen_to_yuan(fen: int) -> str:
    """1234 → '12.34', -5 → '-0.05': yuan as text with two decimals, integer arithmetic."""
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def fen_to_fee(fen: int) -> str:
    return fen_to_yuan(fen) + "000"


@dataclass(frozen=True)
class WriteRow:
    trade_time: datetime
    appid: str
    mch_id: str
    sub_mch_id: str
    transaction_id: str
    out_trade_no: str
    openid: str
    trade_state: str  # SUCCESS / REVOKED / REFUND
    total_fee: int
    fee: int
    body: str = ""
    device_info: str = ""
    refund_id: str = ""
    out_refund_no: str = ""
    refund_fee: int = 0
    refund_status: str = ""
    rate: str = "0.60%"


def write_wechat_bill(rows: Iterable[WriteRow]) -> bytes:
    """A trade bill (ALL) in WeChat's format, summary rows computed from the detail rows."""
    out = [DETAIL_HEADER]
    count = settlement = refunds = fees = orders = requested = 0
    for row in rows:
        refund = row.trade_state == REFUND_STATE
        settlement_fee = 0 if refund else row.total_fee
        order_fee = 0 if refund else row.total_fee
        fields = [
            row.trade_time.strftime(_TIME), row.appid, row.mch_id, row.sub_mch_id or "0", row.device_info,
            row.transaction_id, row.out_trade_no, row.openid, "MICROPAY", row.trade_state, "OTHERS", "CNY",
            fen_to_yuan(settlement_fee), "0.00", row.refund_id if refund else "0",
            row.out_refund_no if refund else "0", fen_to_yuan(row.refund_fee if refund else 0), "0.00",
            "ORIGINAL" if refund else "", row.refund_status if refund else "", row.body.replace(",", " "), "",
            fen_to_fee(row.fee), row.rate, fen_to_yuan(order_fee), fen_to_yuan(row.refund_fee if refund else 0), "",
        ]  # fmt: skip
        out.append(",".join("`" + value for value in fields))
        count += 1
        settlement += settlement_fee
        refunds += row.refund_fee if refund else 0
        fees += row.fee
        orders += order_fee
        requested += row.refund_fee if refund else 0
    out.append(",".join(SUMMARY_HEADER))
    totals = [str(count), fen_to_yuan(settlement), fen_to_yuan(refunds), "0.00", fen_to_fee(fees)]
    totals += [fen_to_yuan(orders), fen_to_yuan(requested)]
    out.append(",".join("`" + value for value in totals))
    return ("\r\n".join(out) + "\r\n").encode("utf-8")


def bill_day(row: BillRow) -> date:
    return row.trade_time.date()
