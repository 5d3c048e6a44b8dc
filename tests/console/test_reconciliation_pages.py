"""Console: reconciliation (对账) — the days, the differences queue and its CSV, a difference's evidence and the staff
actions, a bill file given by hand, the dashboard's card; per role, scoped, audited, in Chinese."""

from __future__ import annotations

import csv
import gzip
import io
from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from payments import services as payment_services
from payments.models import Payment
from portal.models import AuditLog, StaffMembership
from reconciliation.models import Bill, DayResult, Difference
from tests.factories import MerchantFactory, ServiceProviderFactory, StoreFactory, login_verified, make_user

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role
DAY = date(2026, 3, 10)
PAYMENT_ORDER = "20260310PAID0000000000001"
TRANSACTION_ID = "4200000001202603100000000001"


@pytest.fixture
def world():
    provider, other_provider = ServiceProviderFactory(), ServiceProviderFactory()
    a = MerchantFactory(provider=provider, name="Merchant A")
    a2 = MerchantFactory(provider=provider, name="Merchant A2")
    b = MerchantFactory(provider=other_provider, name="Merchant B")
    payment = Payment.objects.create(
        merchant=a, store=StoreFactory(merchant=a), device=None, channel=a.channel, method=Payment.Method.CODE,
        out_trade_no=PAYMENT_ORDER, total_fee=1200, body="x", request_fingerprint="y" * 64, status="SUCCESS",
        transaction_id=TRANSACTION_ID,
    )  # fmt: skip
    day_a = DayResult.objects.create(
        merchant=a, bill_date=DAY, rows=4, matched=3, payment_count=3, payment_total=500000, settlement_total=500000,
        refund_count=1, refund_total=1000, fee_total=19, net_settlement=498981, open_differences=1, carried=2,
    )  # fmt: skip
    DayResult.objects.create(merchant=a2, bill_date=date(2026, 3, 11), rows=1, matched=1, net_settlement=777)
    DayResult.objects.create(merchant=b, bill_date=date(2026, 3, 12), rows=9, matched=9, net_settlement=999999)
    ours = {"payment": payment.pk, "out_trade_no": PAYMENT_ORDER, "transaction_id": TRANSACTION_ID,
            "total_fee": 1200, "status": "SUCCESS", "paid_at": "2026-03-10 12:00:01"}  # fmt: skip
    theirs = {"line": 2, "trade_time": "2026-03-10 12:00:01", "transaction_id": TRANSACTION_ID,
              "out_trade_no": PAYMENT_ORDER, "trade_state": "SUCCESS", "total_fee": 1201, "settlement_fee": 1201,
              "fee": 7}  # fmt: skip
    amount = Difference.objects.create(
        merchant=a, bill_date=DAY, kind="AMOUNT_DIFFERS", out_trade_no=PAYMENT_ORDER, transaction_id=TRANSACTION_ID,
        payment=payment, ours=ours, theirs=theirs,
    )  # fmt: skip
    charged = Difference.objects.create(
        merchant=a, bill_date=DAY, kind="CHARGED_NOT_SUCCESSFUL", out_trade_no="20260310NOTOURS00000000001",
        transaction_id="4200000001202603100000000002", theirs={**theirs, "out_trade_no": "20260310NOTOURS00000000001"},
    )  # fmt: skip
    explained = Difference.objects.create(
        merchant=a, bill_date=DAY, kind="REFUND_MISSING_THERE", out_trade_no=PAYMENT_ORDER, refund_no="R-1",
        ours={"refund": 1, "out_refund_no": "R-1", "out_trade_no": PAYMENT_ORDER, "refund_fee": 500,
              "status": "SUCCESS"},
        status="EXPLAINED", note="退款在次日账单",
    )  # fmt: skip
    other_a2 = Difference.objects.create(
        merchant=a2, bill_date=date(2026, 3, 11), kind="MISSING_THERE", out_trade_no="A2ORDER0000000000001"
    )
    foreign = Difference.objects.create(
        merchant=b, bill_date=date(2026, 3, 12), kind="DUPLICATE_ROW", out_trade_no="BORDER00000000000001"
    )
    return {
        "a": a, "a2": a2, "b": b, "payment": payment, "day_a": day_a,
        "amount": amount, "charged": charged, "explained": explained, "other_a2": other_a2, "foreign": foreign,
        "a_admin": make_user("a_admin", role=Role.MERCHANT_ADMIN, merchant=a),
        "a_staff": make_user("a_staff", role=Role.MERCHANT_STAFF, merchant=a),
        "p_reviewer": make_user("p_reviewer", role=Role.PROVIDER_REVIEWER, provider=provider),
        "p_admin": make_user("p_admin", role=Role.PROVIDER_ADMIN, provider=provider),
        "q_reviewer": make_user("q_reviewer", role=Role.PROVIDER_REVIEWER, provider=other_provider),
    }  # fmt: skip


def as_user(client, user, language="en"):
    login_verified(client, user)
    client.cookies["django_language"] = language
    return client


def page(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def test_pages_need_login(client, db):
    for url in ("/reconciliation/", "/reconciliation/differences/", "/reconciliation/differences/export.csv",
                "/reconciliation/upload"):  # fmt: skip
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


# --- the days --------------------------------------------------------------------------------------------------------


def test_day_list_shows_a_merchant_its_own_days_in_yuan(client, world):
    html = page(as_user(client, world["a_admin"]), "/reconciliation/")

    row = html.split('id="reconciliation-days"')[1]
    assert "2026-03-10" in row and "Merchant A<" in row
    for amount in ("¥5,000.00", "¥10.00", "¥0.19", "¥4,989.81"):  # payments, refunds, fees, net settlement
        assert amount in row
    assert "Merchant A2" not in row and "Merchant B" not in row
    assert 'name="merchant"' not in html  # one merchant: no merchant filter
    assert "/reconciliation/upload" not in html  # merchants do not reconcile
    assert f"merchant={world['a'].pk}&amp;from=2026-03-10&amp;to=2026-03-10" in row  # the day's differences


def test_day_list_filters_by_merchant_and_date_for_provider_staff(client, world):
    as_user(client, world["p_reviewer"])
    html = page(client, "/reconciliation/")
    row = html.split('id="reconciliation-days"')[1]
    assert "Merchant A<" in row and "Merchant A2" in row and "Merchant B" not in row
    choices = html.split('name="merchant"')[1].split("</select>")[0]
    assert "Merchant A2" in choices and "Merchant B" not in choices  # only the provider's own merchants
    assert "/reconciliation/upload" in html

    by_merchant = page(client, f"/reconciliation/?merchant={world['a2'].pk}").split('id="reconciliation-days"')[1]
    assert "Merchant A2" in by_merchant and "Merchant A<" not in by_merchant
    by_date = page(client, "/reconciliation/?from=2026-03-11&to=2026-03-11").split('id="reconciliation-days"')[1]
    assert "Merchant A2" in by_date and "Merchant A<" not in by_date
    foreign = page(client, f"/reconciliation/?merchant={world['b'].pk}")
    assert 'id="reconciliation-days"' not in foreign  # another provider's merchant: nothing


# --- the queue -------------------------------------------------------------------------------------------------------


def queue_rows(html: str) -> str:
    return html.split('id="differences"')[1] if 'id="differences"' in html else ""


def test_queue_shows_open_differences_by_default_scoped_and_filtered(client, world):
    as_user(client, world["a_admin"])
    rows = queue_rows(page(client, "/reconciliation/differences/"))
    assert PAYMENT_ORDER in rows and "20260310NOTOURS00000000001" in rows
    assert "R-1" not in rows  # explained: not open
    assert "A2ORDER" not in rows and "BORDER" not in rows  # other merchants
    assert f'href="/payments/{world["payment"].pk}/"' in rows  # the order links to its payment
    assert "¥12.00" in rows and "¥12.01" in rows
    assert "Amount differs" in rows

    every = queue_rows(page(client, "/reconciliation/differences/?status="))
    assert "R-1" in every and "¥5.00" in every  # a refund compares the amount asked
    explained = queue_rows(page(client, "/reconciliation/differences/?status=EXPLAINED"))
    assert "R-1" in explained and "NOTOURS" not in explained
    by_kind = queue_rows(page(client, "/reconciliation/differences/?kind=CHARGED_NOT_SUCCESSFUL"))
    assert "NOTOURS" in by_kind and f">{PAYMENT_ORDER}<" not in by_kind
    searched = queue_rows(page(client, "/reconciliation/differences/?q=notours"))
    assert "NOTOURS" in searched and f">{PAYMENT_ORDER}<" not in searched
    assert queue_rows(page(client, "/reconciliation/differences/?to=2026-03-09")) == ""
    assert queue_rows(page(client, f"/reconciliation/differences/?merchant={world['b'].pk}")) == ""


def test_provider_staff_see_their_merchants_differences_only(client, world):
    rows = queue_rows(page(as_user(client, world["p_reviewer"]), "/reconciliation/differences/"))
    assert "NOTOURS" in rows and "A2ORDER" in rows and "BORDER" not in rows
    only_a2 = queue_rows(page(client, f"/reconciliation/differences/?merchant={world['a2'].pk}"))
    assert "A2ORDER" in only_a2 and "NOTOURS" not in only_a2


def test_another_providers_difference_is_404_for_the_page_and_the_actions(client, world):
    foreign = world["foreign"]
    as_user(client, world["p_reviewer"])
    assert client.get(f"/reconciliation/differences/{foreign.pk}/").status_code == 404
    assert client.post(f"/reconciliation/differences/{foreign.pk}/explain", {"note": "x"}).status_code == 404
    assert client.post(f"/reconciliation/differences/{foreign.pk}/requery").status_code == 404
    foreign.refresh_from_db()
    assert (foreign.status, foreign.note) == ("OPEN", "")
    as_user(client, world["a_admin"])
    assert client.get(f"/reconciliation/differences/{world['other_a2'].pk}/").status_code == 404


def test_detail_shows_both_sides_in_yuan(client, world):
    html = page(as_user(client, world["a_admin"]), f"/reconciliation/differences/{world['amount'].pk}/")
    evidence = html.split('id="evidence"')[1].split("</table>")[0]
    order_amount = evidence.split("Order amount (订单金额)")[1].split("</tr>")[0]
    assert "¥12.00" in order_amount and "¥12.01" in order_amount
    assert "Fee (手续费)" in evidence and "¥0.07" in evidence
    assert TRANSACTION_ID in evidence and "Bill line" in evidence
    status = evidence.split(">Status<")[1].split("</tr>")[0]
    assert status.count("Paid (SUCCESS)") == 2  # ours and the bill's, in words with the code
    assert f'href="/payments/{world["payment"].pk}/"' in html
    # A merchant admin may ask the channel again (REFRESH) but does not explain (read-only queue).
    assert "/requery" in html and "/explain" not in html

    explained = page(client, f"/reconciliation/differences/{world['explained'].pk}/")
    assert "退款在次日账单" in explained and "The channel's bill has no row for it." in explained


# --- explaining --------------------------------------------------------------------------------------------------


def test_a_merchant_admin_cannot_explain(client, world):
    difference = world["amount"]
    response = as_user(client, world["a_admin"]).post(
        f"/reconciliation/differences/{difference.pk}/explain", {"note": "looks fine"}
    )
    assert response.status_code == 403
    difference.refresh_from_db()
    assert (difference.status, difference.note, difference.explained_by) == ("OPEN", "", None)
    assert not AuditLog.objects.filter(action="reconciliation.explain").exists()


def test_a_reviewer_explains_with_a_note_and_it_is_audited(client, world):
    difference, reviewer = world["amount"], world["p_reviewer"]
    url = f"/reconciliation/differences/{difference.pk}/explain"
    as_user(client, reviewer)
    assert f'action="{url}"' in page(client, f"/reconciliation/differences/{difference.pk}/")

    blank = client.post(url, {"note": "   "}, follow=True)
    assert "Write a note: what you checked and why." in blank.content.decode()
    difference.refresh_from_db()
    assert (difference.status, difference.note) == ("OPEN", "")

    response = client.post(url, {"note": "商户平台核对：渠道多收 0.01 元，已线下退还"}, follow=True)
    assert response.redirect_chain[-1][0] == f"/reconciliation/differences/{difference.pk}/"
    html = response.content.decode()
    assert "Difference marked explained." in html and "商户平台核对" in html and "p_reviewer" in html
    difference.refresh_from_db()
    assert (difference.status, difference.explained_by) == ("EXPLAINED", reviewer)
    assert difference.explained_at is not None
    assert AuditLog.objects.get(action="reconciliation.explain").actor == reviewer


def test_a_closed_difference_cannot_be_explained(client, world):
    difference = world["charged"]
    Difference.objects.filter(pk=difference.pk).update(status="CLOSED")
    as_user(client, world["p_admin"])
    assert "/explain" not in page(client, f"/reconciliation/differences/{difference.pk}/")
    response = client.post(f"/reconciliation/differences/{difference.pk}/explain", {"note": "x"}, follow=True)
    assert "This difference is gone on a later run." in response.content.decode()
    difference.refresh_from_db()
    assert (difference.status, difference.note) == ("CLOSED", "")


# --- asking the channel again ----------------------------------------------------------------------------------------


def test_requery_asks_the_channel_about_the_order(client, world, monkeypatch):
    asked = []

    def refresh(*, payment, user):
        asked.append((payment.pk, user))
        return payment

    monkeypatch.setattr(payment_services, "payment_refresh", refresh)
    difference, reviewer = world["amount"], world["p_reviewer"]
    response = as_user(client, reviewer).post(f"/reconciliation/differences/{difference.pk}/requery", follow=True)

    assert asked == [(world["payment"].pk, reviewer)]
    assert "Asked the channel" in response.content.decode()
    assert AuditLog.objects.filter(action="reconciliation.requery", actor=reviewer).count() == 1


def test_requery_without_an_order_of_ours_says_so(client, world, monkeypatch):
    monkeypatch.setattr(payment_services, "payment_refresh", lambda **kw: pytest.fail("nothing to refresh"))
    difference = world["charged"]  # the bill's order, not ours
    response = as_user(client, world["p_admin"]).post(
        f"/reconciliation/differences/{difference.pk}/requery", follow=True
    )
    assert "We have no order with this number to query." in response.content.decode()


def test_merchant_staff_cannot_requery(client, world, monkeypatch):
    monkeypatch.setattr(payment_services, "payment_refresh", lambda **kw: pytest.fail("refused before"))
    as_user(client, world["a_staff"])
    assert client.post(f"/reconciliation/differences/{world['amount'].pk}/requery").status_code == 403
    html = page(client, f"/reconciliation/differences/{world['amount'].pk}/")
    assert "/requery" not in html and "/explain" not in html


# --- the export -------------------------------------------------------------------------------------------------


def exported(client, query="") -> list[list[str]]:
    response = client.get(f"/reconciliation/differences/export.csv{query}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content)
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_csv_export_has_chinese_headers_yuan_and_the_lists_filters(client, world):
    as_user(client, world["a_admin"])  # in English: the file is in Chinese anyway
    header, *rows = exported(client, "?status=")
    assert header == ["对账日期", "商户", "差异类型", "商户订单号", "商户退款单号", "微信订单号",
                      "我方金额(元)", "渠道金额(元)", "状态", "说明"]  # fmt: skip
    by_order = {(row[3], row[4]): row for row in rows}
    assert set(by_order) == {(PAYMENT_ORDER, ""), ("20260310NOTOURS00000000001", ""), (PAYMENT_ORDER, "R-1")}
    amount = by_order[(PAYMENT_ORDER, "")]
    assert amount == ["2026-03-10", "Merchant A", "金额不一致", PAYMENT_ORDER, "", TRANSACTION_ID,
                      "12.00", "12.01", "未处理", ""]  # fmt: skip
    assert by_order[("20260310NOTOURS00000000001", "")][6:8] == ["", "12.01"]  # no record of ours
    assert by_order[(PAYMENT_ORDER, "R-1")][6:10] == ["5.00", "", "已说明", "退款在次日账单"]

    _, *open_only = exported(client)  # the queue's default: open differences
    assert {row[4] for row in open_only} == {""}
    _, *searched = exported(client, "?q=NOTOURS")
    assert [row[3] for row in searched] == ["20260310NOTOURS00000000001"]


def test_excel_export_has_the_same_rows_with_ids_kept_as_text(client, world):
    from openpyxl import load_workbook

    Difference.objects.filter(pk=world["explained"].pk).update(note="=HYPERLINK(1)")
    as_user(client, world["a_admin"])
    response = client.get("/reconciliation/differences/export.xlsx?status=")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(response.content)).active
    header, *rows = [[cell.value or "" for cell in row] for row in sheet.iter_rows()]
    csv_header, *csv_rows = exported(client, "?status=")
    assert header == csv_header
    assert sorted(rows) == sorted(csv_rows)
    transaction_cells = [row[5] for row in sheet.iter_rows(min_row=2) if row[5].value]
    assert transaction_cells and all(c.data_type == "s" and c.number_format == "@" for c in transaction_cells)
    notes = [row[9].value for row in sheet.iter_rows(min_row=2) if row[9].value]
    assert notes == ["'=HYPERLINK(1)"]  # text, never a formula


def test_csv_export_guards_formulas_in_notes(client, world):
    Difference.objects.filter(pk=world["explained"].pk).update(note="=HYPERLINK(1)")
    _, *rows = exported(as_user(client, world["p_reviewer"]), "?status=EXPLAINED")
    assert rows[0][9] == "'=HYPERLINK(1)"


# --- dashboard and language ---------------------------------------------------------------------------------------


def test_dashboard_card_shows_the_last_day_and_open_differences_in_scope(client, world):
    html = page(as_user(client, world["a_admin"]), "/")
    card = html.split('id="reconciliation-card"')[1].split("</section>")[0]
    assert "2026-03-10" in card and ">2<" in card and "/reconciliation/differences/" in card

    provider_card = page(as_user(client, world["p_reviewer"]), "/").split('id="reconciliation-card"')[1]
    assert "2026-03-11" in provider_card.split("</section>")[0] and ">3<" in provider_card.split("</section>")[0]
    nav = page(client, "/").split('class="main"')[1].split("</nav>")[0]
    assert 'href="/reconciliation/"' in nav


def test_the_pages_read_in_chinese(client, world):
    as_user(client, world["p_reviewer"], language="zh-hans")
    days = page(client, "/reconciliation/")
    assert "对账" in days and "净结算金额" in days and "Net settlement" not in days
    queue = page(client, "/reconciliation/differences/")
    assert "金额不一致" in queue and "渠道已扣款、我方未成功（资金风险）" in queue and "未处理" in queue
    assert "Amount differs" not in queue and "Open</" not in queue
    assert "导出 Excel" in queue and "Export Excel" not in queue
    detail = page(client, f"/reconciliation/differences/{world['amount'].pk}/")
    for text in ("我方记录", "渠道账单", "订单金额", "重新向渠道查询", "标记为已说明"):
        assert text in detail, text
    assert "Ask the channel again" not in detail and "Mark explained" not in detail
    assert "支付成功 (SUCCESS)" in detail
    upload = page(client, "/reconciliation/upload")
    assert "上传对账单文件" in upload and "账单日期" in upload and "Bill file" not in upload


# --- a bill file given by hand ---------------------------------------------------------------------------------------


@pytest.fixture
def bill_day(shop):
    """A day of one paid order at the sandbox, and that day's bill as WeChat publishes it."""
    from payments import channels
    from tests.reconciliation.test_reconcile import NEXT_MORNING, NOON, pay

    shop.clock.current = NOON
    paid = pay(shop, 1200)
    shop.clock.current = NEXT_MORNING
    content = channels.download_bill(merchant=shop.merchant, bill_date=DAY.strftime("%Y%m%d")).content
    admin = make_user("p_admin_shop", role=Role.PROVIDER_ADMIN, provider=shop.merchant.provider)
    return shop, paid, content, admin


def upload(client, merchant, content: bytes, name="bill.csv"):
    return client.post(
        "/reconciliation/upload",
        {"merchant": merchant.pk, "bill_date": DAY.isoformat(), "file": SimpleUploadedFile(name, content)},
    )


def test_uploading_a_bill_reconciles_the_day_and_is_audited(client, bill_day):
    shop, paid, content, admin = bill_day
    as_user(client, admin)
    assert "Merchant" in page(client, "/reconciliation/upload")

    response = upload(client, shop.merchant, gzip.compress(content), name="bill.csv.gz")

    assert response.status_code == 302
    assert response["Location"].startswith("/reconciliation/differences/?")
    day = DayResult.objects.get(merchant=shop.merchant, bill_date=DAY)
    assert (day.rows, day.matched, day.payment_total) == (1, 1, 1200)
    assert Bill.objects.get().source == "FILE"
    entry = AuditLog.objects.get(action="reconciliation.upload")
    assert (entry.actor, entry.merchant, entry.details["bill_date"], entry.details["rows"]) == (
        admin, shop.merchant, "2026-03-10", 1
    )  # fmt: skip
    assert "Bill imported: 1 rows, 1 matched, 0 differences." in client.get(response["Location"]).content.decode()


def test_a_malformed_bill_is_refused_with_its_reason_and_changes_nothing(client, bill_day):
    shop, paid, content, admin = bill_day
    response = upload(as_user(client, admin), shop.merchant, content.replace(b"`1,`12.00", b"`9,`12.00"))

    assert response.status_code == 400
    html = response.content.decode()
    assert "The bill was not imported:" in html and "总交易单数 says 9" in html
    assert not DayResult.objects.exists() and not Difference.objects.exists()
    assert list(Bill.objects.values_list("status", flat=True)) == ["REFUSED"]
    assert not AuditLog.objects.filter(action="reconciliation.upload").exists()


def test_the_refusal_reason_is_shown_in_chinese(client, bill_day):
    shop, paid, content, admin = bill_day
    response = upload(
        as_user(client, admin, language="zh-hans"), shop.merchant, content.replace(b"`1,`12.00", b"`9,`12.00")
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert "账单未导入：" in html and "总交易单数为 9，但明细行合计为 1（分/笔）" in html and "says" not in html


def _refusal_templates() -> set[str]:
    """The first argument of every BillError / BillRefused / BillNotReady / BillUnavailable raised in the code."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    names = {"BillError", "BillRefused", "BillNotReady", "BillUnavailable"}
    found = set()
    for path in (root / "payments/gateways/wechatpay_bill.py", root / "reconciliation/services.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in names and node.args:
                if getattr(node.args[0], "attr", None) == "template":
                    continue  # a BillError passed on as it is
                assert isinstance(node.args[0], ast.Constant), f"{path.name}:{node.lineno}: not a plain template"
                found.add(node.args[0].value)
    return found


def test_every_refusal_reason_has_a_chinese_translation():
    from django.utils import translation

    templates = _refusal_templates()
    assert len(templates) > 20
    with translation.override("zh-hans"):
        untranslated = sorted(t for t in templates if translation.gettext(t) == t)
    assert untranslated == []


def test_upload_is_for_provider_staff_and_their_merchants(client, bill_day, monkeypatch):
    shop, paid, content, admin = bill_day
    merchant_admin = make_user("m_admin_shop", role=Role.MERCHANT_ADMIN, merchant=shop.merchant)
    assert as_user(client, merchant_admin).get("/reconciliation/upload").status_code == 403
    assert upload(client, shop.merchant, content).status_code == 403

    outsider = make_user("q_admin_shop", role=Role.PROVIDER_ADMIN, provider=ServiceProviderFactory())
    response = upload(as_user(client, outsider), shop.merchant, content)
    assert response.status_code == 400 and 'id="merchant-error"' in response.content.decode()

    monkeypatch.setattr("reconciliation.forms.MAX_BILL_BYTES", len(content) - 1)
    too_big = upload(as_user(client, admin), shop.merchant, content)
    assert too_big.status_code == 400 and "The file is larger than 100 MB." in too_big.content.decode()
    assert not Bill.objects.exists() and not DayResult.objects.exists()
