"""The WeChat Pay v2 trade bill parser, against a bill written by hand in the published ALL format (BOM, CRLF,
backtick fields, yuan with two decimals, fees with five), and every way a bill is refused."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from payments.gateways.wechatpay_bill import BillError, WechatBill, fee_to_fen, lines_of, yuan_to_fen

SAMPLE = (Path(__file__).parent / "bills" / "wechat_all_direct.csv").read_bytes()


def parse(content: bytes):
    bill = WechatBill(lines_of(content))
    return list(bill.rows()), bill.summary


def test_the_published_all_format_parses_to_fen():
    rows, summary = parse(SAMPLE)

    assert [(r.out_trade_no, r.trade_state, r.total_fee, r.fee) for r in rows] == [
        ("RC20260310A1", "SUCCESS", 2500, 15),
        ("RC20260310A2", "REVOKED", 880, 0),
        ("RC20260310A1", "REFUND", 0, -3),
    ]
    refund = rows[2]
    assert (refund.out_refund_no, refund.refund_id, refund.refund_fee, refund.requested_refund_fee) == (
        "RC20260310A1R01",
        "50300001234202603100000000001",
        500,
        500,
    )
    assert refund.refund_status == "SUCCESS"
    assert rows[0].trade_time == datetime(2026, 3, 10, 9, 15, 2)
    assert (rows[0].mch_id, rows[0].sub_mch_id, rows[0].out_refund_no) == ("1900000109", "", "")
    assert summary is not None
    assert (summary.rows, summary.settlement_total, summary.refund_total, summary.fee_total) == (3, 3380, 500, 12)
    assert (summary.order_total, summary.requested_refund_total) == (3380, 500)


@pytest.mark.parametrize(("text", "fen"), [("0.01", 1), ("25.00", 2500), ("-0.27", -27), ("1300.00", 130000)])
def test_yuan_with_two_decimals(text, fen):
    assert yuan_to_fen(text, line=1, name="x") == fen


@pytest.mark.parametrize("text", ["0.1", "1", "0.001", "1,00", "", "1e2", " 1.00", "0.10 "])
def test_anything_but_two_decimals_is_refused(text):
    with pytest.raises(BillError):
        yuan_to_fen(text, line=1, name="x")


def test_fees_have_five_decimals_in_whole_fen():
    assert fee_to_fen("0.32000", line=1, name="fee") == 32
    assert fee_to_fen("-0.27000", line=1, name="fee") == -27
    for text in ("0.32", "0.00324", "0.3200"):
        with pytest.raises(BillError):
            fee_to_fen(text, line=1, name="fee")


def _lines() -> list[str]:
    return SAMPLE.decode("utf-8").rstrip("\r\n").split("\r\n")


def _bill(lines: list[str]) -> bytes:
    return "\r\n".join(lines).encode("utf-8")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda lines: lines[:-3], "truncated"),  # cut inside the detail rows: no summary at all
        (lambda lines: lines[:-1], "summary row is missing"),  # the summary header without its row
        (lambda lines: [*lines[:-1], "`2,`33.80,`5.00,`0.00,`0.12000,`33.80,`5.00"], "总交易单数 says 2"),
        (lambda lines: [*lines[:-1], "`3,`33.81,`5.00,`0.00,`0.12000,`33.80,`5.00"], "应结订单总金额 says 3381"),
        (lambda lines: [*lines[:-1], "`3,`33.80,`5.00,`0.00,`0.13000,`33.80,`5.00"], "手续费总金额 says 13"),
        (lambda lines: [lines[0].replace("商户订单号", "订单号"), *lines[1:]], "missing columns: 商户订单号"),
        (lambda lines: [lines[0], lines[1].replace("`25.00", "`25.0", 1), *lines[2:]], "two decimals"),
        (lambda lines: [lines[0], lines[1].replace(",`MICROPAY", ",MICROPAY"), *lines[2:]], "backtick"),
        (lambda lines: [lines[0], lines[1] + ",`extra", *lines[2:]], "28 fields"),
        (lambda lines: [lines[0], lines[1].replace("`SUCCESS", "`PAID", 1), *lines[2:]], "unknown 交易状态"),
        (lambda lines: [*lines, "`1,`2"], "text after the summary row"),
        (lambda lines: [], "empty"),
    ],
)
def test_bad_bills_are_refused_with_the_reason(change, message):
    with pytest.raises(BillError, match=message):
        parse(_bill(change(_lines())))


def test_non_utf8_is_refused():
    with pytest.raises(BillError, match="UTF-8"):
        parse(SAMPLE.replace("咖啡".encode(), "咖啡".encode("gbk"), 1))
