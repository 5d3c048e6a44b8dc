"""Console lists a payment-operations team works from: payments (filters, totals), refunds, the attention queue, and
their CSV and Excel exports — scoped by role, in the console's language, amounts in yuan, ids kept as text."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone
from openpyxl import load_workbook

from payments import selectors
from payments.models import Payment, PaymentEvent, Refund
from portal.models import StaffMembership, Store
from tests.console.listing import CHINA, china, csv_rows, page, rows_of, xlsx_sheet
from tests.factories import make_user

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role


def pay(store: Store, fee: int, no: str, *, at: str = "2025-03-01 09:00:00", **fields) -> Payment:
    payment = Payment.objects.create(
        merchant=store.merchant,
        store=store,
        channel=store.merchant.channel,
        method=fields.pop("method", Payment.Method.FACE),
        out_trade_no=no,
        total_fee=fee,
        body="测试商品",
        request_fingerprint="x" * 64,
        status=fields.pop("status", "SUCCESS"),
        **fields,
    )
    Payment.objects.filter(pk=payment.pk).update(created_at=china(at))
    payment.refresh_from_db()
    return payment


def refund(payment: Payment, fee: int, no: str, *, at: str = "2025-03-01 10:00:00", **fields) -> Refund:
    made = Refund.objects.create(
        payment=payment,
        out_refund_no=no,
        refund_fee=fee,
        kind=fields.pop("kind", Refund.Kind.REFUND),
        status=fields.pop("status", Refund.Status.SUCCESS),
        **fields,
    )
    Refund.objects.filter(pk=made.pk).update(created_at=china(at), updated_at=china(at))
    made.refresh_from_db()
    return made


# --- scoping -------------------------------------------------------------------------------------------------------


def test_new_pages_and_exports_need_login(client, db):
    for url in ("/refunds/", "/attention/", "/refunds/export.csv", "/refunds/export.xlsx", "/payments/export.xlsx"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


@pytest.mark.parametrize(
    ("user", "seen", "unseen"),
    [
        ("a_admin", {"PAY-A"}, {"PAY-B", "PAY-C"}),
        ("a_staff", {"PAY-A"}, {"PAY-B", "PAY-C"}),
        ("reviewer", {"PAY-A", "PAY-B"}, {"PAY-C"}),
        ("c_admin", {"PAY-C"}, {"PAY-A", "PAY-B"}),
        ("root", {"PAY-A", "PAY-B", "PAY-C"}, set()),
    ],
)
def test_every_list_and_export_shows_only_the_rows_in_scope(client, world, user, seen, unseen):
    for store, no in (("a1", "PAY-A"), ("b1", "PAY-B"), ("c1", "PAY-C")):
        payment = pay(world["stores"][store], 1000, no, status="ATTENTION")
        refund(payment, 100, f"{no}R01", status=Refund.Status.ATTENTION)
    who = world[user]

    for url in ("/payments/", "/refunds/", "/attention/", "/payments/export.csv", "/refunds/export.csv"):
        response = page(client, who, url)
        assert response.status_code == 200, url
        body = b"".join(response.streaming_content).decode("utf-8-sig") if response.streaming else response.text
        assert all(no in body for no in seen), url
        assert not any(no in body for no in unseen), url
    for url in ("/payments/export.xlsx", "/refunds/export.xlsx"):
        values = {cell.value for row in xlsx_sheet(page(client, who, url)).iter_rows() for cell in row}
        assert seen <= values and not unseen & values, url  # the order no. is a column of both


def test_provider_roles_see_the_merchant_column_and_filter_merchant_roles_do_not(client, world):
    pay(world["stores"]["a1"], 1000, "PAY-A")
    refund(Payment.objects.get(), 100, "PAY-AR01")
    for user, shown in (("reviewer", True), ("p_admin", True), ("root", True), ("a_admin", False)):
        for url in ("/payments/", "/refunds/"):
            html = page(client, world[user], url).text
            assert ('name="merchant"' in html) is shown, (user, url)
            assert ("<th>商户</th>" in html) is shown, (user, url)
            assert ("甲商户" in html) is shown, (user, url)
        header = csv_rows(page(client, world[user], "/payments/export.csv"))[0]
        assert ("商户" in header) is shown, user


def test_a_merchant_role_cannot_filter_its_way_into_another_merchant(client, world):
    pay(world["stores"]["a1"], 1000, "PAY-A")
    pay(world["stores"]["b1"], 1000, "PAY-B")
    # The merchant parameter is not theirs to use: ignored, the list stays their own.
    html = page(client, world["a_admin"], "/payments/", {"merchant": world["b"].pk}).text
    assert "PAY-A" in html and "PAY-B" not in html
    # Another merchant's store: refused, nothing listed.
    response = page(client, world["a_admin"], "/payments/", {"store": world["stores"]["b1"].pk})
    assert (
        response.status_code == 400
        and "PAY-B" not in response.text
        and "PAY-A" not in rows_of(response.text, "payments")
    )
    # A provider's staff cannot name another provider's merchant.
    response = page(client, world["reviewer"], "/payments/", {"merchant": world["c"].pk})
    assert response.status_code == 400 and 'id="filter-errors"' in response.text
    assert page(client, world["reviewer"], "/payments/export.csv", {"merchant": world["c"].pk}).status_code == 400


# --- filters -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("12.3", 1230),
        ("12.30", 1230),
        (" 12 ", 1200),
        ("0.01", 1),
        ("99999999999.99", 9999999999999),
        ("0.005", None),
        ("12.345", None),
        ("0", None),
        ("-1", None),
        ("abc", None),
        ("1e30", None),
        ("NaN", None),
        ("12,30", None),
    ],
)
def test_amounts_are_parsed_to_fen_exactly(world, text, fen):
    filters = selectors.parse_filters(world["a_admin"], {"min": text, "max": text}, choices={})
    assert (filters.min_fee, filters.max_fee) == (fen, fen)
    assert bool(filters.errors) is (fen is None)


def test_amount_range_is_inclusive_and_a_bad_amount_shows_a_message_and_nothing_else(client, world):
    store = world["stores"]["a1"]
    for fee in (1229, 1230, 2000, 2001):
        pay(store, fee, f"PAY-{fee}")
    html = page(client, world["a_admin"], "/payments/", {"min": "12.3", "max": "20"}).text
    listed = rows_of(html, "payments")
    assert "PAY-1230" in listed and "PAY-2000" in listed
    assert "PAY-1229" not in listed and "PAY-2001" not in listed

    response = page(client, world["a_admin"], "/payments/", {"min": "0.005"})
    assert response.status_code == 400
    assert "最低金额" in response.text and "两位小数" in response.text
    assert rows_of(response.text, "payments") == "" and 'id="totals"' not in response.text
    assert 'id="exports"' not in response.text  # no export of a set filtered otherwise than asked
    response = page(client, world["a_admin"], "/payments/", {"min": "30", "max": "20"})
    assert response.status_code == 400 and "最低金额高于最高金额" in response.text


def test_time_range_is_china_time_start_included_end_excluded(client, world):
    store = world["stores"]["a1"]
    for at in ("2025-03-01 08:59:59", "2025-03-01 09:00:00", "2025-03-01 09:59:59", "2025-03-01 10:00:00"):
        pay(store, 1000, "PAY-" + at[11:].replace(":", ""), at=at)
    listed = rows_of(
        page(client, world["a_admin"], "/payments/", {"start": "2025-03-01 09:00", "end": "2025-03-01 10:00"}).text,
        "payments",
    )
    assert "PAY-090000" in listed and "PAY-095959" in listed
    assert "PAY-085959" not in listed and "PAY-100000" not in listed
    # The browser's datetime-local form and a date alone are understood too.
    filters = selectors.parse_filters(world["a_admin"], {"start": "2025-03-01T09:00", "end": "2025-03-02"}, choices={})
    assert (filters.start, filters.end, filters.errors) == (
        china("2025-03-01 09:00:00"),
        china("2025-03-02 00:00:00"),
        [],
    )


@pytest.mark.parametrize(
    "params",
    [
        {"start": "yesterday"},
        {"start": "2025-13-01 00:00"},
        {"end": "2025-03-01 24:00"},
        {"start": "0001-01-01 00:00"},
        {"end": "9999-12-31 00:00"},
        {"start": "2025-03-02 00:00", "end": "2025-03-01 00:00"},
        {"start": "2025-03-01 00:00", "end": "2025-03-01 00:00"},
    ],
)
def test_a_bad_time_is_a_visible_message_and_filters_nothing(client, world, params):
    pay(world["stores"]["a1"], 1000, "PAY-A")
    response = page(client, world["a_admin"], "/payments/", params)
    assert response.status_code == 400
    assert 'id="filter-errors"' in response.text and ("YYYY-MM-DD HH:MM" in response.text or "晚于" in response.text)
    assert rows_of(response.text, "payments") == ""
    assert page(client, world["a_admin"], "/payments/export.xlsx", params).status_code == 400


def test_search_is_a_prefix_of_the_order_no_or_transaction_id_and_keeps_openid(client, world):
    store = world["stores"]["a1"]
    pay(store, 1000, "20250301ABC", transaction_id="4200001234567890")
    pay(store, 1000, "20250302XYZ", transaction_id="4200009999999999")
    pay(store, 1000, "OTHER0301", openid="o-user-1")

    def found(q):
        listed = rows_of(page(client, world["a_admin"], "/payments/", {"q": q}).text, "payments")
        return {no for no in ("20250301ABC", "20250302XYZ", "OTHER0301") if no in listed}

    assert found("20250301") == {"20250301ABC"}
    assert found("2025030") == {"20250301ABC", "20250302XYZ"}
    assert found("0301") == set()  # not a part in the middle: a prefix
    assert found("42000012") == {"20250301ABC"}
    assert found("o-user-1") == {"OTHER0301"}
    assert found("o-user") == set()  # openid: whole only


def test_store_and_device_filters(client, world):
    a1, a2 = world["stores"]["a1"], world["stores"]["a2"]
    pay(a1, 1000, "PAY-A1", device=world["devices"]["a1"])
    pay(a2, 1000, "PAY-A2", device=world["devices"]["a2"])
    pay(world["stores"]["b1"], 1000, "PAY-B1")
    reviewer = world["reviewer"]

    listed = rows_of(page(client, reviewer, "/payments/", {"merchant": world["a"].pk, "store": a1.pk}).text, "payments")
    assert "PAY-A1" in listed and "PAY-A2" not in listed and "PAY-B1" not in listed
    listed = rows_of(page(client, reviewer, "/payments/", {"device": world["devices"]["a2"].pk}).text, "payments")
    assert "PAY-A2" in listed and "PAY-A1" not in listed
    # A store of another merchant than the one chosen: refused, not quietly ignored.
    response = page(client, reviewer, "/payments/", {"merchant": world["a"].pk, "store": world["stores"]["b1"].pk})
    assert response.status_code == 400 and rows_of(response.text, "payments") == ""
    response = page(client, reviewer, "/payments/", {"store": a1.pk, "device": world["devices"]["a2"].pk})
    assert response.status_code == 400


def test_store_select_lists_only_the_chosen_merchants_stores(client, world):
    reviewer = world["reviewer"]
    html = page(client, reviewer, "/payments/").text
    assert 'id="choose-merchant-first"' in html and 'name="store"' not in html  # no flat list of every store
    html = page(client, reviewer, "/payments/", {"merchant": world["a"].pk}).text
    assert "甲一店" in html and "甲二店" in html and "乙一店" not in html and "DEV-A1" in html
    # HTMX: choosing a merchant brings its stores (a store left from the previous merchant is dropped).
    fragment = page(
        client, reviewer, "/payments/filter-places", {"merchant": world["b"].pk, "store": world["stores"]["a1"].pk}
    ).text
    assert "乙一店" in fragment and "甲一店" not in fragment and " selected" not in fragment
    fragment = page(client, reviewer, "/payments/filter-places", {"merchant": world["c"].pk}).text
    assert "丙一店" not in fragment  # another provider's merchant: nothing
    # A merchant's own staff choose among their stores straight away.
    html = page(client, world["a_admin"], "/refunds/").text
    assert "甲一店" in html and "乙一店" not in html and 'name="device"' not in html


def test_a_long_store_list_is_capped_and_searchable(client, world):
    Store.objects.bulk_create(
        Store(merchant=world["a"], store_id=f"S{n:04d}", name=f"分店{n:04d}") for n in range(selectors.CHOICE_LIMIT + 5)
    )
    html = page(client, world["a_admin"], "/payments/").text
    select = re.search(r'<select id="store".*?</select>', html, re.S).group(0)
    assert select.count("<option") == selectors.CHOICE_LIMIT + 1  # "All" and the first CHOICE_LIMIT
    assert 'name="store_q"' in html
    select = re.search(
        r'<select id="store".*?</select>', page(client, world["a_admin"], "/payments/", {"store_q": "0103"}).text, re.S
    ).group(0)
    assert "分店0103" in select and select.count("<option") == 2


def test_totals_are_the_sums_of_the_filtered_rows(client, world):
    store = world["stores"]["a1"]
    pay(store, 1230, "PAY-1", refunded_fee=230, reserved_refund_fee=230, status="PARTIALLY_REFUNDED")
    pay(store, 4567, "PAY-2")
    pay(store, 9900, "PAY-3", status="FAILED")
    pay(world["stores"]["b1"], 88800, "PAY-B")  # another merchant: never counted
    for n in range(60):  # more than a page: the totals are of the whole set, not of the page
        pay(store, 100, f"PAY-MANY-{n}", status="FAILED")

    html = page(client, world["a_admin"], "/payments/", {"status": "SUCCESS"}).text
    totals = re.search(r'id="totals".*?</section>', html, re.S).group(0)
    assert ">1<" in totals and "¥45.67" in totals and "¥0.00" in totals
    html = page(client, world["a_admin"], "/payments/", {"max": "100"}).text
    totals = re.search(r'id="totals".*?</section>', html, re.S).group(0)
    assert ">63<" in totals  # 3 + 60
    totals = re.search(r'id="totals".*?</section>', page(client, world["a_admin"], "/payments/").text, re.S).group(0)
    expected = Payment.objects.filter(merchant=world["a"])
    count = expected.count()
    amount = sum(expected.values_list("total_fee", flat=True))
    assert (count, amount) == (63, 1230 + 4567 + 9900 + 6000)
    assert f">{count}<" in totals and "¥216.97" in totals and "¥2.30" in totals


def test_pagination_and_export_links_keep_the_filters(client, world):
    store = world["stores"]["a1"]
    for n in range(55):
        pay(store, 1000, f"PAY-{n:03d}")
    html = page(client, world["a_admin"], "/payments/", {"min": "10", "q": "PAY", "page": "1"}).text
    next_link = re.search(r'href="(\?[^"]*page=2[^"]*)"', html).group(1)
    assert "min=10" in next_link and "q=PAY" in next_link
    exports = re.findall(r'href="(/payments/export\.[a-z]+\?[^"]*)"', html)
    assert [link.split("?")[0] for link in exports] == ["/payments/export.xlsx", "/payments/export.csv"]  # XLSX first
    assert all("min=10" in link and "q=PAY" in link and "page=" not in link for link in exports)


# --- refunds -------------------------------------------------------------------------------------------------------


def test_refund_list_shows_each_refund_with_its_payment_and_who_asked(client, world):
    payment = pay(world["stores"]["a1"], 5000, "PAY-A")
    refund(payment, 1230, "PAY-AR01", reason="少送一杯", created_by=world["a_admin"], at="2025-03-01 11:22:33")
    refund(payment, 500, "PAY-AR02", kind=Refund.Kind.REVERSE, status=Refund.Status.FAILED)
    html = page(client, world["a_staff"], "/refunds/").text
    listed = rows_of(html, "refunds")
    assert "PAY-AR01" in listed and "PAY-AR02" in listed
    assert f'href="/payments/{payment.pk}/"' in listed
    assert "¥12.30" in listed and "少送一杯" in listed and "a-admin" in listed and "2025-03-01 11:22:33" in listed
    assert "退款接口" in listed and "撤销" in listed and "失败（未退款）" in listed  # kind and status by name
    assert "¥17.30" in re.search(r'id="totals".*?</section>', html, re.S).group(0)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "FAILED"}, {"PAY-AR02"}),
        ({"kind": "REVERSE"}, {"PAY-AR02"}),
        ({"min": "10", "max": "12.3"}, {"PAY-AR01"}),
        ({"q": "PAY-AR0"}, {"PAY-AR01", "PAY-AR02"}),
        ({"q": "PAY-A"}, {"PAY-AR01", "PAY-AR02"}),
        ({"q": "ORDER-"}, {"RF-9"}),  # the beginning of its payment's order no.
        ({"q": "AR01"}, set()),
        ({"start": "2025-03-01 11:00", "end": "2025-03-01 12:00"}, {"PAY-AR01"}),
        ({"store": "a2"}, {"RF-9"}),
    ],
)
def test_refund_list_filters(client, world, params, expected):
    first = pay(world["stores"]["a1"], 5000, "PAY-A")
    refund(first, 1230, "PAY-AR01", at="2025-03-01 11:00:00")
    refund(first, 500, "PAY-AR02", kind=Refund.Kind.REVERSE, status=Refund.Status.FAILED, at="2025-03-01 12:00:00")
    refund(pay(world["stores"]["a2"], 5000, "ORDER-9"), 100, "RF-9", at="2025-03-02 09:00:00")
    if "store" in params:
        params = {"store": world["stores"][params["store"]].pk}
    listed = rows_of(page(client, world["a_admin"], "/refunds/", params).text, "refunds")
    assert {no for no in ("PAY-AR01", "PAY-AR02", "RF-9") if f"<code>{no}</code>" in listed} == expected


def test_refund_list_needs_the_view_permission(client, world):
    stranger = make_user("stranger")  # signed in, no role
    assert page(client, stranger, "/refunds/").status_code == 403
    assert page(client, stranger, "/attention/").status_code == 403
    assert page(client, stranger, "/refunds/export.csv").status_code == 403


# --- attention -----------------------------------------------------------------------------------------------------


def test_attention_queue_lists_payments_and_refunds_oldest_first_with_age_and_reason(client, world):
    store = world["stores"]["a1"]
    now = timezone.localtime(timezone.now(), CHINA)

    def ago(minutes: int) -> str:
        return f"{now - timedelta(minutes=minutes):%Y-%m-%d %H:%M:%S}"

    pay(store, 1000, "PAY-YOUNG", status="ATTENTION", at=ago(5))
    old = pay(store, 2000, "PAY-OLD", status="ATTENTION", at=ago(135), err_code="SYSTEMERROR")
    PaymentEvent.objects.create(payment=old, action="state", to_status="ATTENTION", actor="WORKER", message="early")
    PaymentEvent.objects.create(
        payment=old, action="state", to_status="ATTENTION", actor="WORKER", message="Reverse kept failing"
    )
    pay(store, 3000, "PAY-FINE")
    stuck = refund(pay(store, 4000, "PAY-R"), 400, "PAY-RR01", status=Refund.Status.ATTENTION, err_code="CHANGE")
    PaymentEvent.objects.create(
        payment=stuck.payment, refund=stuck, action="refundquery", actor="WORKER", message="bounced"
    )
    pay(world["stores"]["b1"], 1000, "PAY-OTHER", status="ATTENTION")

    html = page(client, world["reviewer"], "/attention/").text
    counts = re.search(r'id="attention-counts".*?</section>', html, re.S).group(0)
    assert re.findall(r'class="value">(\d+)<', counts) == ["3", "1"]  # the reviewer's provider: A and B
    payments = re.search(r'id="attention-payments".*?</section>', html, re.S).group(0)
    assert payments.index("PAY-OLD") < payments.index("PAY-YOUNG") and "PAY-FINE" not in payments
    assert "2 小时 15 分" in payments and "5 分" in payments
    assert "SYSTEMERROR" in payments and "Reverse kept failing" in payments and "early" not in payments
    assert f'href="/payments/{old.pk}/"' in payments and ">处理</a>" in payments  # the reviewer settles
    refunds = re.search(r'id="attention-refunds".*?</section>', html, re.S).group(0)
    assert "PAY-RR01" in refunds and "CHANGE" in refunds and "bounced" in refunds and "¥4.00" in refunds
    assert f'href="/payments/{stuck.payment_id}/"' in refunds

    html = page(client, world["a_staff"], "/attention/", language="en").text
    assert "2 h 15 min" in html and "PAY-OTHER" not in html and "<th>Merchant</th>" not in html


@pytest.mark.parametrize(("minutes", "zh", "en"), [(5, "5 分", "5 min"), (135, "2 小时 15 分", "2 h 15 min"),
                                                    (3 * 1440 + 240, "3 天 4 小时", "3 d 4 h")])  # fmt: skip
def test_age_reads_in_the_consoles_language(minutes, zh, en):
    from django.utils import translation

    from payments.views import age_text

    with translation.override("zh-hans"):
        assert age_text(timedelta(minutes=minutes, seconds=59)) == zh
    with translation.override("en"):
        assert age_text(timedelta(minutes=minutes)) == en


# --- exports -------------------------------------------------------------------------------------------------------

PAYMENT_HEADER_ZH = [
    "商户订单号", "创建时间（北京时间）", "支付时间（北京时间）", "状态", "订单金额（元）", "已退款金额（元）",
    "支付渠道", "支付方式", "钱包", "商户", "门店编号", "门店名称", "设备号", "渠道订单号", "钱包交易单号",
    "openid", "错误码",
]  # fmt: skip
PAYMENT_HEADER_EN = [
    "Order no.", "Created (China time)", "Paid (China time)", "Status", "Amount (yuan)", "Refunded (yuan)", "Channel",
    "Method", "Wallet", "Merchant", "Store id", "Store", "Device", "Transaction id", "Wallet transaction id", "openid",
    "Error code",
]  # fmt: skip


@pytest.fixture
def exported(world):
    payment = pay(
        world["stores"]["a1"],
        1230,
        "20250301093005000000000001",
        at="2025-03-01 09:30:05",
        transaction_id="4200001234567890123456789012",
        refunded_fee=30,
        reserved_refund_fee=30,
        status="PARTIALLY_REFUNDED",
        paid_at=china("2025-03-01 09:30:07"),
        device=world["devices"]["a1"],
        method=Payment.Method.CODE,
    )
    refund(
        payment,
        30,
        "20250301093005000000000001R01",
        reason='=HYPERLINK("http://x.test")',
        refund_id="50300000123456789012345678",
    )
    return payment


def test_csv_export_in_chinese_yuan_china_time_and_names(client, world, exported):
    response = page(client, world["reviewer"], "/payments/export.csv")
    assert isinstance(response, StreamingHttpResponse) and response["Content-Type"] == "text/csv; charset=utf-8"
    header, row = csv_rows(response)
    assert header == PAYMENT_HEADER_ZH
    values = dict(zip(header, row, strict=True))
    assert values["商户订单号"] == "20250301093005000000000001"
    assert values["渠道订单号"] == "4200001234567890123456789012"
    assert values["创建时间（北京时间）"] == "2025-03-01 09:30:05"
    assert values["支付时间（北京时间）"] == "2025-03-01 09:30:07"
    assert (values["订单金额（元）"], values["已退款金额（元）"]) == ("12.30", "0.30")
    assert (values["状态"], values["支付方式"], values["钱包"]) == ("部分退款", "付款码", "微信支付")
    assert values["支付渠道"] == "微信支付（直连商户）" and values["商户"] == "甲商户" and values["设备号"] == "DEV-A1"


def test_csv_export_in_english_when_the_console_is(client, world, exported):
    header, row = csv_rows(page(client, world["reviewer"], "/payments/export.csv", language="en"))
    assert header == PAYMENT_HEADER_EN
    values = dict(zip(header, row, strict=True))
    assert (values["Status"], values["Method"], values["Amount (yuan)"]) == (
        "Partially refunded",
        "Payment code (付款码)",
        "12.30",
    )


def test_refund_csv_export(client, world, exported):
    header, row = csv_rows(page(client, world["a_admin"], "/refunds/export.csv"))
    assert "商户" not in header  # a merchant's own staff: no merchant column
    values = dict(zip(header, row, strict=True))
    assert values["商户退款单号"] == "20250301093005000000000001R01"
    assert values["商户订单号"] == "20250301093005000000000001"
    assert values["渠道退款单号"] == "50300000123456789012345678"
    assert (values["退款金额（元）"], values["退款方式"], values["状态"]) == ("0.30", "退款接口", "已退款")
    assert values["创建时间（北京时间）"] == "2025-03-01 10:00:00"
    assert values["退款原因"] == '\'=HYPERLINK("http://x.test")'  # a formula is written as text


def test_csv_export_guards_text_that_looks_like_a_formula(client, world):
    Store.objects.filter(pk=world["stores"]["a1"].pk).update(name="@SUM(A1:A9)", store_id="=1+1")
    pay(world["stores"]["a1"], 1000, "PAY-A")
    header, row = csv_rows(page(client, world["a_admin"], "/payments/export.csv"))
    values = dict(zip(header, row, strict=True))
    assert (values["门店编号"], values["门店名称"]) == ("'=1+1", "'@SUM(A1:A9)")


def test_xlsx_export_keeps_ids_as_text_amounts_as_yuan_and_times_as_china_time(client, world, exported):
    response = page(client, world["reviewer"], "/payments/export.xlsx")
    assert isinstance(response, FileResponse)
    assert response["Content-Disposition"].startswith('attachment; filename="payments-')
    sheet = xlsx_sheet(response)
    header, row = ([cell for cell in line] for line in sheet.iter_rows(max_row=2))
    assert [cell.value for cell in header] == PAYMENT_HEADER_ZH
    cells = {title.value: cell for title, cell in zip(header, row, strict=True)}
    for column in ("商户订单号", "渠道订单号"):
        assert cells[column].data_type == "s" and cells[column].number_format == "@"
    assert cells["渠道订单号"].value == "4200001234567890123456789012"  # every digit
    amount = cells["订单金额（元）"]
    assert amount.data_type == "n" and amount.number_format == "0.00" and Decimal(str(amount.value)) == Decimal("12.3")
    created = cells["创建时间（北京时间）"]
    assert created.value == datetime(2025, 3, 1, 9, 30, 5) and created.number_format == "yyyy-mm-dd hh:mm:ss"
    assert cells["状态"].value == "部分退款"


def test_xlsx_export_writes_a_formula_as_text(client, world, exported):
    response = page(client, world["a_admin"], "/refunds/export.xlsx", language="en")
    content = b"".join(response.streaming_content)
    sheet = load_workbook(io.BytesIO(content)).active
    header = [cell.value for cell in next(sheet.iter_rows(max_row=1))]
    assert header[:2] == ["Refund no.", "Order no."] and "Merchant" not in header
    reason = next(sheet.iter_rows(min_row=2, max_row=2))[header.index("Reason")]
    assert reason.value == '=HYPERLINK("http://x.test")' and reason.data_type == "s" and reason.quotePrefix
    with zipfile.ZipFile(io.BytesIO(content)) as workbook:
        assert b"<f>" not in workbook.read("xl/worksheets/sheet1.xml")
    assert next(sheet.iter_rows(min_row=2, max_row=2))[header.index("Status")].value == "Refunded"


def test_exports_follow_the_lists_filters(client, world, exported):
    pay(world["stores"]["a2"], 999, "PAY-A2")
    rows = csv_rows(page(client, world["a_admin"], "/payments/export.csv", {"store": world["stores"]["a2"].pk}))
    assert [row[0] for row in rows[1:]] == ["PAY-A2"]
    sheet = xlsx_sheet(page(client, world["a_admin"], "/payments/export.xlsx", {"min": "12.3"}))
    assert [row[0].value for row in sheet.iter_rows(min_row=2)] == ["20250301093005000000000001"]


def test_an_export_of_thousands_of_rows_streams(client, world):
    store = world["stores"]["a1"]
    Payment.objects.bulk_create(
        Payment(
            merchant=store.merchant, store=store, channel=store.merchant.channel, method="FACE", status="SUCCESS",
            out_trade_no=f"BULK{n:06d}", total_fee=n + 1, body="x", request_fingerprint="x" * 64,
        )
        for n in range(3000)
    )  # fmt: skip
    response = page(client, world["a_admin"], "/payments/export.csv")
    assert isinstance(response, StreamingHttpResponse)
    chunks = list(response.streaming_content)
    assert len(chunks) > 3000  # a row at a time, not one body built in memory
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    assert len(rows) == 3001 and {row[4] for row in rows[1:]} >= {"0.01", "30.00"}
    sheet = xlsx_sheet(page(client, world["a_admin"], "/payments/export.xlsx"))
    assert sheet.max_row == 3001


def test_under_asgi_an_export_is_sent_a_batch_at_a_time(recwarn):
    """Django's ASGI handler reads a synchronous streaming response to its end before sending it; the exports are
    read a batch of rows at a time instead."""
    import asyncio

    from portal import exports

    pulled = []

    def rows():
        for n in range(3 * exports.ASGI_BATCH):
            pulled.append(n)
            yield [f"ROW{n}", exports.yuan(n)]

    response = exports.csv_response(filename="x.csv", header=["no", "yuan"], rows=rows())

    async def first_part():
        parts = aiter(response)
        first = await anext(parts)
        seen = len(pulled)
        rest = [part async for part in parts]
        return first, seen, rest

    first, seen_at_first_part, rest = asyncio.run(first_part())
    assert first.startswith("\ufeff".encode()) and seen_at_first_part < exports.ASGI_BATCH
    assert len(rest) == 3 * exports.ASGI_BATCH and rest[-1] == f"ROW{3 * exports.ASGI_BATCH - 1},14.99\r\n".encode()
    assert not [w for w in recwarn if "consume synchronous iterators" in str(w.message)]
