"""The PayScore orders and members lists work as the payments list does: filters that narrow (and say what is wrong
with them), totals of the filtered set, pages, and CSV / Excel exports that follow the filters — scoped by role, in
the console's language, amounts in yuan, China time, ids as text, an erased member's data left out."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from decimal import Decimal

import pytest
from django.http import StreamingHttpResponse

from members.models import ERASED_PREFIX, Member
from payscore.models import ServiceOrder
from portal.models import StaffMembership, Store
from tests.console.listing import china, csv_rows, page, rows_of, xlsx_sheet
from tests.factories import make_user

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role


def order(store: Store, no: str, *, at: str = "2025-03-01 09:00:00", **fields) -> ServiceOrder:
    made = ServiceOrder.objects.create(
        merchant=store.merchant,
        store=store,
        out_order_no=no,
        service_id="500001",
        service_introduction="充电宝租借",
        risk_fund={"name": "ESTIMATE_ORDER_COST", "amount": 9900},
        notify_url="https://example.com/notify/",
        request_fingerprint="x" * 64,
        **fields,
    )
    ServiceOrder.objects.filter(pk=made.pk).update(created_at=china(at), updated_at=china(at))
    made.refresh_from_db()
    return made


def member(merchant, openid: str, *, seen: str = "2025-03-01 09:00:00", **fields) -> Member:
    return Member.objects.create(
        merchant=merchant,
        openid=openid,
        first_seen_at=china(fields.pop("first", seen)),
        last_seen_at=china(seen),
        visit_count=fields.pop("visits", 1),
        **fields,
    )


def erased_member(merchant, *, seen: str = "2025-03-01 09:00:00") -> Member:
    return member(
        merchant,
        ERASED_PREFIX + "0f3c",
        seen=seen,
        anonymised_at=china("2025-03-05 10:00:00"),
        anonymised_reason=Member.AnonymisedReason.ERASURE_REQUEST,
    )


def totals_of(html: str) -> str:
    return re.search(r'id="totals".*?</section>', html, re.S).group(0)


def body_of(response) -> str:
    return b"".join(response.streaming_content).decode("utf-8-sig") if response.streaming else response.text


def assert_every_cell_is_labelled(html: str, table: str):
    """At phone width a cell is shown as a card under its heading: every <td> says which."""
    body = rows_of(html, table)
    assert body, f"no rows in {table}"
    assert all("data-label=" in cell for cell in re.findall(r"<td\b[^>]*>", body))


# --- PayScore orders: scoping --------------------------------------------------------------------------------------

PAYSCORE_URLS = ("/payscore/", "/payscore/export.csv", "/payscore/export.xlsx")


def test_payscore_exports_need_login(client, db):
    for url in PAYSCORE_URLS[1:]:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


@pytest.mark.parametrize(
    ("user", "seen", "unseen"),
    [
        ("a_admin", {"PS-A"}, {"PS-B", "PS-C"}),
        ("a_staff", {"PS-A"}, {"PS-B", "PS-C"}),
        ("reviewer", {"PS-A", "PS-B"}, {"PS-C"}),
        ("c_admin", {"PS-C"}, {"PS-A", "PS-B"}),
        ("root", {"PS-A", "PS-B", "PS-C"}, set()),
    ],
)
def test_the_payscore_list_and_its_exports_show_only_the_orders_in_scope(client, world, user, seen, unseen):
    for store, no in (("a1", "PS-A"), ("b1", "PS-B"), ("c1", "PS-C")):
        order(world["stores"][store], no)
    for url in PAYSCORE_URLS[:2]:
        body = body_of(page(client, world[user], url))
        assert all(no in body for no in seen) and not any(no in body for no in unseen), url
    values = {cell.value for row in xlsx_sheet(page(client, world[user], PAYSCORE_URLS[2])).iter_rows() for cell in row}
    assert seen <= values and not unseen & values


def test_a_merchant_role_cannot_filter_or_export_its_way_into_another_merchants_orders(client, world):
    order(world["stores"]["a1"], "PS-A")
    order(world["stores"]["b1"], "PS-B")
    # The merchant parameter is not theirs to use: ignored, the list and the export stay their own.
    for url in PAYSCORE_URLS[:2]:
        body = body_of(page(client, world["a_admin"], url, {"merchant": world["b"].pk}))
        assert "PS-A" in body and "PS-B" not in body, url
    # Another merchant's store: refused, nothing listed or exported.
    for url in PAYSCORE_URLS:
        response = page(client, world["a_admin"], url, {"store": world["stores"]["b1"].pk})
        assert response.status_code == 400 and "PS-B" not in body_of(response), url
    # A provider's staff cannot name another provider's merchant.
    response = page(client, world["reviewer"], "/payscore/", {"merchant": world["c"].pk})
    assert response.status_code == 400 and 'id="filter-errors"' in response.text
    assert page(client, world["reviewer"], "/payscore/export.csv", {"merchant": world["c"].pk}).status_code == 400


def test_provider_roles_see_the_merchant_column_and_filter_merchant_roles_do_not(client, world):
    order(world["stores"]["a1"], "PS-A")
    for user, shown in (("reviewer", True), ("root", True), ("a_admin", False)):
        html = page(client, world[user], "/payscore/").text
        assert ('name="merchant"' in html) is shown, user
        assert ("<th>商户</th>" in html and "甲商户" in rows_of(html, "payscore-orders")) is shown, user
        assert ("商户" in csv_rows(page(client, world[user], "/payscore/export.csv"))[0]) is shown, user


# --- PayScore orders: filters, totals, pages -----------------------------------------------------------------------


@pytest.fixture
def orders(world):
    a1, a2 = world["stores"]["a1"], world["stores"]["a2"]
    order(a1, "PS20250301A", at="2025-03-01 09:00:00", order_id="1000000000202503010001", openid="o-user-1")
    order(
        a1, "PS20250301B", at="2025-03-01 10:00:00", state="DONE", total_amount=1230, paid_amount=1230,
        collection_state="USER_PAID", device=world["devices"]["a1"], order_id="1000000000202503010002",
    )  # fmt: skip
    order(
        a2, "PS20250302C", at="2025-03-02 09:00:00", state="DOING", state_description="MCH_COMPLETE",
        total_amount=2000, collection_state="USER_PAYING", device=world["devices"]["a2"],
    )  # fmt: skip
    order(world["stores"]["b1"], "PS20250301D", at="2025-03-01 09:30:00", state="DONE", total_amount=5000)
    return ("PS20250301A", "PS20250301B", "PS20250302C", "PS20250301D")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"PS20250301A", "PS20250301B", "PS20250302C", "PS20250301D"}),
        ({"merchant": "a"}, {"PS20250301A", "PS20250301B", "PS20250302C"}),
        ({"merchant": "a", "store": "a2"}, {"PS20250302C"}),
        ({"merchant": "a", "device": "a1"}, {"PS20250301B"}),
        ({"state": "DONE"}, {"PS20250301B", "PS20250301D"}),
        ({"start": "2025-03-01 09:30", "end": "2025-03-01 10:00"}, {"PS20250301D"}),
        ({"start": "2025-03-01 10:00"}, {"PS20250301B", "PS20250302C"}),
        ({"min": "12.3", "max": "20"}, {"PS20250301B", "PS20250302C"}),  # inclusive; no total: not in a range
        ({"min": "12.31"}, {"PS20250302C", "PS20250301D"}),
        ({"q": "PS20250301"}, {"PS20250301A", "PS20250301B", "PS20250301D"}),
        ({"q": "0301"}, set()),  # a prefix, not a part in the middle
        ({"q": "100000000020250301000"}, {"PS20250301A", "PS20250301B"}),  # the beginning of WeChat's order id
        ({"q": "o-user-1"}, {"PS20250301A"}),
        ({"q": "o-user"}, set()),  # openid: whole only
    ],
)
def test_payscore_filters_narrow_the_list_and_the_export(client, world, orders, params, expected):
    params = {
        name: world[value].pk if name == "merchant" else world[f"{name}s"][value].pk if name in ("store", "device")
        else value
        for name, value in params.items()
    }  # fmt: skip
    listed = rows_of(page(client, world["reviewer"], "/payscore/", params).text, "payscore-orders")
    assert {no for no in orders if f"<code>{no}</code>" in listed} == expected
    exported = csv_rows(page(client, world["reviewer"], "/payscore/export.csv", params))
    assert {row[0] for row in exported[1:]} == expected


def test_payscore_totals_are_of_the_whole_filtered_set(client, world, orders):
    store = world["stores"]["a1"]
    for n in range(60):  # more than a page: the totals are of the whole set, not of the page
        order(store, f"PS-MANY-{n:02d}", state="DONE", total_amount=100, paid_amount=50)
    html = page(client, world["a_admin"], "/payscore/", {"state": "DONE"}).text
    totals = totals_of(html)
    assert ">61<" in totals and "¥72.30" in totals and "¥42.30" in totals  # B (12.30 / 12.30) and 60 × 1.00 / 0.50
    expected = ServiceOrder.objects.filter(merchant=world["a"], state="DONE")
    assert expected.count() == 61
    totals = totals_of(page(client, world["a_admin"], "/payscore/", {"store": world["stores"]["a2"].pk}).text)
    assert ">1<" in totals and "¥20.00" in totals and "¥0.00" in totals
    totals = totals_of(page(client, world["reviewer"], "/payscore/", {"q": "PS2025"}).text)
    assert ">4<" in totals and "¥82.30" in totals  # 12.30 + 20.00 + 50.00 over both of the provider's merchants


def test_payscore_pages_and_export_links_keep_the_filters(client, world):
    for n in range(55):
        order(world["stores"]["a1"], f"PS-{n:03d}")
    html = page(client, world["a_admin"], "/payscore/", {"state": "PENDING", "q": "PS-"}).text
    assert len(re.findall(r"<tr>", rows_of(html, "payscore-orders"))) == 50
    next_link = re.search(r'href="(\?[^"]*page=2[^"]*)"', html).group(1)
    assert "state=PENDING" in next_link and "q=PS-" in next_link
    second = page(client, world["a_admin"], "/payscore/", {"state": "PENDING", "q": "PS-", "page": "2"}).text
    assert len(re.findall(r"<tr>", rows_of(second, "payscore-orders"))) == 5
    exports = re.findall(r'href="(/payscore/export\.[a-z]+\?[^"]*)"', html)
    assert [link.split("?")[0] for link in exports] == ["/payscore/export.xlsx", "/payscore/export.csv"]
    assert all("state=PENDING" in link and "q=PS-" in link and "page=" not in link for link in exports)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min": "abc"}, "最低金额"),
        ({"max": "12.345"}, "两位小数"),
        ({"min": "30", "max": "20"}, "最低金额高于最高金额"),
        ({"start": "yesterday"}, "YYYY-MM-DD HH:MM"),
        ({"start": "2025-03-02 00:00", "end": "2025-03-01 00:00"}, "晚于"),
        ({"state": "SUCCESS"}, "状态：请从列表中选择"),
        ({"store": "99999999999999999999999"}, "门店"),
        ({"store": "²"}, "门店"),  # a digit to str.isdigit, not to int()
    ],
)
def test_bad_payscore_filters_are_a_clear_message_and_nothing_else(client, world, orders, params, message):
    response = page(client, world["a_admin"], "/payscore/", params)
    assert response.status_code == 400
    assert 'id="filter-errors"' in response.text and message in response.text
    assert rows_of(response.text, "payscore-orders") == "" and 'id="totals"' not in response.text
    assert 'id="exports"' not in response.text  # no export of a set filtered otherwise than asked
    for url in ("/payscore/export.csv", "/payscore/export.xlsx"):
        refused = page(client, world["a_admin"], url, params)
        assert refused.status_code == 400 and message in refused.content.decode(), url


def test_payscore_list_cells_are_labelled_and_states_named(client, world, orders):
    html = page(client, world["reviewer"], "/payscore/").text
    assert_every_cell_is_labelled(html, "payscore-orders")
    shown = re.sub(r"<[^>]+>", " ", rows_of(html, "payscore-orders")).split()
    assert {"完成", "服务中", "商户已完结", "收款中", "¥12.30", "甲商户"} <= set(shown)
    assert not {"DONE", "DOING", "MCH_COMPLETE", "USER_PAYING"} & set(shown)  # names, not codes


# --- PayScore orders: exports --------------------------------------------------------------------------------------

PAYSCORE_HEADER_ZH = [
    "商户订单号", "微信订单号", "创建时间（北京时间）", "更新时间（北京时间）", "状态", "状态说明", "收款状态",
    "服务内容", "风险金类型", "风险金额（元）", "订单总金额（元）", "已收款金额（元）", "商户", "门店编号", "门店名称",
    "设备号", "openid", "微信支付订单号", "错误码",
]  # fmt: skip


@pytest.fixture
def exported_order(world):
    return order(
        world["stores"]["a1"], "PS20250301093005000000000001", at="2025-03-01 09:30:05", state="DONE",
        order_id="1000000000202503011234567890123", total_amount=1230, paid_amount=1230, collection_state="USER_PAID",
        transaction_ids=["4200001234567890123456789012"], openid="o-user-1", device=world["devices"]["a1"],
    )  # fmt: skip


def test_payscore_csv_export_in_chinese_yuan_china_time_and_names(client, world, exported_order):
    response = page(client, world["reviewer"], "/payscore/export.csv")
    assert isinstance(response, StreamingHttpResponse) and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="payscore-orders-')
    header, row = csv_rows(response)
    assert header == PAYSCORE_HEADER_ZH
    values = dict(zip(header, row, strict=True))
    assert values["商户订单号"] == "PS20250301093005000000000001"
    assert values["微信订单号"] == "1000000000202503011234567890123"
    assert values["微信支付订单号"] == "4200001234567890123456789012"
    assert values["创建时间（北京时间）"] == "2025-03-01 09:30:05"
    assert values["订单总金额（元）"] == values["已收款金额（元）"] == "12.30" and values["风险金额（元）"] == "99.00"
    assert (values["状态"], values["收款状态"], values["风险金类型"]) == ("完成", "已收款", "预估订单费用")
    assert values["状态说明"] == "" and values["商户"] == "甲商户" and values["设备号"] == "DEV-A1"


def test_payscore_csv_export_in_english_when_the_console_is(client, world, exported_order):
    order(world["stores"]["a1"], "PS-OPEN")  # not completed: no total
    header, *rows = csv_rows(page(client, world["a_admin"], "/payscore/export.csv", language="en"))
    assert header[:5] == ["Order no.", "WeChat order id", "Created (China time)", "Updated (China time)", "Status"]
    assert "Merchant" not in header  # a merchant's own staff: no merchant column
    values = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert values["PS20250301093005000000000001"]["Status"] == "Done"
    assert values["PS-OPEN"]["Status"] == "Pending (not yet confirmed by WeChat)"
    assert values["PS-OPEN"]["Total amount (yuan)"] == ""


def test_payscore_xlsx_export_keeps_ids_as_text_amounts_as_yuan_and_times_as_china_time(client, world, exported_order):
    response = page(client, world["reviewer"], "/payscore/export.xlsx")
    assert response["Content-Disposition"].startswith('attachment; filename="payscore-orders-')
    sheet = xlsx_sheet(response)
    header, row = ([cell for cell in line] for line in sheet.iter_rows(max_row=2))
    assert [cell.value for cell in header] == PAYSCORE_HEADER_ZH
    cells = {title.value: cell for title, cell in zip(header, row, strict=True)}
    for column in ("商户订单号", "微信订单号", "微信支付订单号"):
        assert cells[column].data_type == "s" and cells[column].number_format == "@", column
    assert cells["微信订单号"].value == "1000000000202503011234567890123"  # every digit
    for column in ("订单总金额（元）", "已收款金额（元）"):
        amount = cells[column]
        assert amount.data_type == "n" and amount.number_format == "0.00"
        assert Decimal(str(amount.value)) == Decimal("12.3")
    created = cells["创建时间（北京时间）"]
    assert created.value == datetime(2025, 3, 1, 9, 30, 5) and created.number_format == "yyyy-mm-dd hh:mm:ss"
    assert cells["状态"].value == "完成" and cells["状态说明"].value is None


def test_a_payscore_export_of_thousands_of_orders_streams(client, world):
    store = world["stores"]["a1"]
    ServiceOrder.objects.bulk_create(
        ServiceOrder(
            merchant=store.merchant, store=store, out_order_no=f"BULK{n:06d}", service_id="500001",
            service_introduction="租借", risk_fund={"name": "DEPOSIT", "amount": 100}, notify_url="https://x.test/",
            request_fingerprint="x" * 64, state="DONE", total_amount=n + 1, paid_amount=n + 1,
        )
        for n in range(3000)
    )  # fmt: skip
    response = page(client, world["a_admin"], "/payscore/export.csv")
    assert isinstance(response, StreamingHttpResponse)
    chunks = list(response.streaming_content)
    assert len(chunks) > 3000  # a row at a time, not one body built in memory
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    assert len(rows) == 3001 and {row[10] for row in rows[1:]} >= {"0.01", "30.00"}
    assert xlsx_sheet(page(client, world["a_admin"], "/payscore/export.xlsx")).max_row == 3001


# --- members: scoping ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "seen", "unseen"),
    [
        ("a_admin", {"oMemberOfA"}, {"oMemberOfB", "oMemberOfC"}),
        ("a_staff", {"oMemberOfA"}, {"oMemberOfB", "oMemberOfC"}),
        ("reviewer", {"oMemberOfA", "oMemberOfB"}, {"oMemberOfC"}),
        ("c_admin", {"oMemberOfC"}, {"oMemberOfA", "oMemberOfB"}),
        ("root", {"oMemberOfA", "oMemberOfB", "oMemberOfC"}, set()),
    ],
)
def test_the_members_list_and_its_exports_show_only_the_members_in_scope(client, world, user, seen, unseen):
    for merchant, openid in (("a", "oMemberOfA"), ("b", "oMemberOfB"), ("c", "oMemberOfC")):
        member(world[merchant], openid)
    for url in ("/members/", "/members/export.csv"):
        body = body_of(page(client, world[user], url))
        assert all(openid in body for openid in seen) and not any(openid in body for openid in unseen), url
    values = {
        cell.value for row in xlsx_sheet(page(client, world[user], "/members/export.xlsx")).iter_rows() for cell in row
    }
    assert seen <= values and not unseen & values


def test_member_exports_need_login_and_the_view_permission(client, world):
    urls = ("/members/export.csv", "/members/export.xlsx")
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url
    stranger = make_user("stranger")  # signed in, no role
    assert [page(client, stranger, url).status_code for url in urls] == [403, 403]


def test_a_merchant_role_cannot_filter_or_export_its_way_into_another_merchants_members(client, world):
    member(world["a"], "oMemberOfA")
    member(world["b"], "oMemberOfB")
    body = rows_of(page(client, world["a_admin"], "/members/", {"merchant": world["b"].pk}).text, "members")
    assert "oMemberOfA" in body and "oMemberOfB" not in body
    body = body_of(page(client, world["a_admin"], "/members/export.csv", {"merchant": world["b"].pk}))
    assert "oMemberOfA" in body and "oMemberOfB" not in body
    assert "oMemberOfB" not in rows_of(page(client, world["a_admin"], "/members/", {"q": "oMemberOfB"}).text, "members")
    assert "oMemberOfB" not in body_of(page(client, world["a_admin"], "/members/export.csv", {"q": "oMemberOfB"}))
    response = page(client, world["reviewer"], "/members/", {"merchant": world["c"].pk})
    assert response.status_code == 400 and 'id="filter-errors"' in response.text
    assert page(client, world["reviewer"], "/members/export.xlsx", {"merchant": world["c"].pk}).status_code == 400
    html = page(client, world["reviewer"], "/members/", {"merchant": world["b"].pk}).text
    assert "oMemberOfB" in rows_of(html, "members") and "oMemberOfA" not in rows_of(html, "members")
    assert "<th>商户</th>" in html and "<th>商户</th>" not in page(client, world["a_admin"], "/members/").text


# --- members: filters, pages, masking -------------------------------------------------------------------------------


@pytest.fixture
def members(world):
    a = world["a"]
    card = member(
        a, "oCardHolder", seen="2025-03-01 09:00:00", nickname="Lily", card_activated=True,
        activated_at=china("2025-03-01 09:00:00"), unionid="uUnion0001", sub_openid="oSubOpenid01",
    )  # fmt: skip
    return {
        "early": member(a, "oEarlyBird", seen="2025-03-01 08:59:59", nickname="小明"),
        "card": card,
        "late": member(a, "oLateComer", seen="2025-03-02 00:00:00", nickname="明天"),
        "erased": erased_member(a, seen="2025-03-01 12:00:00"),
    }


def listed_members(client, user, params) -> set[str]:
    html = page(client, user, "/members/", params).text
    body = rows_of(html, "members")
    return {f"#{m.pk}" for m in Member.objects.all() if f">#{m.pk}</a>" in body}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"early", "card", "late", "erased"}),
        ({"activated": "yes"}, {"card"}),
        ({"activated": "no"}, {"early", "late", "erased"}),
        ({"erased": "yes"}, {"erased"}),
        ({"erased": "no"}, {"early", "card", "late"}),
        ({"start": "2025-03-01 09:00", "end": "2025-03-02"}, {"card", "erased"}),  # last seen; end excluded
        ({"start": "2025-03-02"}, {"late"}),
        ({"q": "明"}, {"early", "late"}),  # part of the nickname
        ({"q": "lil"}, {"card"}),
        ({"q": "oCardHolder"}, {"card"}),
        ({"q": "uUnion0001"}, {"card"}),
        ({"q": "oCard"}, set()),  # an openid: whole only
        ({"q": "erased:"}, set()),  # an erased member's placeholder is no one's openid
    ],
)
def test_member_filters_narrow_the_list_and_the_export(client, world, members, params, expected):
    wanted = {f"#{members[name].pk}" for name in expected}
    assert listed_members(client, world["a_admin"], params) == wanted
    exported = csv_rows(page(client, world["a_admin"], "/members/export.csv", params))
    assert {f"#{row[0]}" for row in exported[1:]} == wanted


def test_a_member_is_found_by_number_erased_or_not(client, world, members):
    for name in ("card", "erased"):
        number = members[name].pk
        assert listed_members(client, world["a_admin"], {"q": f"#{number}"}) == {f"#{number}"}
        assert f"#{number}" in listed_members(client, world["a_admin"], {"q": str(number)})
    assert listed_members(client, world["a_admin"], {"q": "9" * 40}) == set()  # no number that long: no error


def test_members_pages_and_export_links_keep_the_filters(client, world):
    for n in range(30):
        member(world["a"], f"oBulk{n:02d}", card_activated=True, activated_at=china("2025-03-01 09:00:00"))
    html = page(client, world["a_admin"], "/members/", {"activated": "yes", "start": "2025-03-01"}).text
    assert "第 1 页，共 2 页（共 30 条）" in html  # the members' page size is the other console lists' (25)
    next_link = re.search(r'href="(\?[^"]*page=2[^"]*)"', html).group(1)
    assert "activated=yes" in next_link and "start=2025-03-01" in next_link
    exports = re.findall(r'href="(/members/export\.[a-z]+\?[^"]*)"', html)
    assert [link.split("?")[0] for link in exports] == ["/members/export.xlsx", "/members/export.csv"]
    assert all("activated=yes" in link and "page=" not in link for link in exports)
    assert len(csv_rows(page(client, world["a_admin"], "/members/export.csv", {"activated": "yes"}))) == 31


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"activated": "maybe"}, "会员卡：请从列表中选择"),
        ({"erased": "1"}, "个人数据：请从列表中选择"),
        ({"start": "2025-03-02", "end": "2025-03-01"}, "晚于"),
        ({"end": "2025-02-30"}, "YYYY-MM-DD HH:MM"),
        ({"merchant": "abc"}, "商户"),
        ({"merchant": "²"}, "商户"),
    ],
)
def test_bad_member_filters_are_a_clear_message_and_nothing_else(client, world, members, params, message):
    response = page(client, world["reviewer"], "/members/", params)
    assert response.status_code == 400
    assert 'id="filter-errors"' in response.text and message in response.text
    assert rows_of(response.text, "members") == "" and 'id="exports"' not in response.text
    for url in ("/members/export.csv", "/members/export.xlsx"):
        refused = page(client, world["reviewer"], url, params)
        assert refused.status_code == 400 and message in refused.content.decode(), url


def test_an_erased_member_shows_and_exports_no_personal_data(client, world, members):
    html = page(client, world["a_admin"], "/members/").text
    assert_every_cell_is_labelled(html, "members")
    assert ERASED_PREFIX not in html and "已删除" in rows_of(html, "members")
    header, *rows = csv_rows(page(client, world["a_admin"], "/members/export.csv"))
    assert "unionid" not in " ".join(header).lower() and "sub_openid" not in " ".join(header)
    body = "\n".join(",".join(row) for row in rows)
    assert ERASED_PREFIX not in body and "uUnion0001" not in body and "oSubOpenid01" not in body
    erased = next(dict(zip(header, row, strict=True)) for row in rows if row[0] == str(members["erased"].pk))
    assert (erased["昵称"], erased["openid"]) == ("", "")
    assert (erased["删除原因"], erased["个人数据删除时间（北京时间）"]) == ("应请求删除", "2025-03-05 10:00:00")


def test_member_csv_and_xlsx_exports_in_chinese_with_china_time_and_names(client, world, members):
    header, *rows = csv_rows(page(client, world["reviewer"], "/members/export.csv"))
    assert header == [
        "会员编号", "昵称", "openid", "商户", "到店次数", "首次识别时间（北京时间）", "最近识别时间（北京时间）",
        "会员卡", "开卡时间（北京时间）", "个人数据删除时间（北京时间）", "删除原因",
    ]  # fmt: skip
    card = next(dict(zip(header, row, strict=True)) for row in rows if row[0] == str(members["card"].pk))
    assert (card["昵称"], card["openid"], card["商户"], card["会员卡"]) == ("Lily", "oCardHolder", "甲商户", "已开卡")
    assert card["最近识别时间（北京时间）"] == card["开卡时间（北京时间）"] == "2025-03-01 09:00:00"

    response = page(client, world["a_admin"], "/members/export.xlsx")
    assert response["Content-Disposition"].startswith('attachment; filename="members-')
    sheet = xlsx_sheet(response)
    header = [cell.value for cell in next(sheet.iter_rows(max_row=1))]
    assert "商户" not in header  # a merchant's own staff
    number = str(members["card"].pk)
    cells = next(dict(zip(header, row, strict=True)) for row in sheet.iter_rows(min_row=2) if row[0].value == number)
    assert cells["会员编号"].data_type == "s" and cells["openid"].data_type == "s"
    assert cells["到店次数"].data_type == "n" and cells["到店次数"].value == 1
    seen = cells["最近识别时间（北京时间）"]
    assert seen.value == datetime(2025, 3, 1, 9, 0, 0) and seen.number_format == "yyyy-mm-dd hh:mm:ss"
    assert cells["会员卡"].value == "已开卡"


def test_a_member_export_of_thousands_of_members_streams(client, world):
    seen = china("2025-03-01 09:00:00")
    Member.objects.bulk_create(
        Member(merchant=world["a"], openid=f"oBulk{n:06d}", first_seen_at=seen, last_seen_at=seen, visit_count=n)
        for n in range(3000)
    )
    response = page(client, world["a_admin"], "/members/export.csv")
    assert isinstance(response, StreamingHttpResponse)
    chunks = list(response.streaming_content)
    assert len(chunks) > 3000
    assert len(list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))) == 3001
    assert xlsx_sheet(page(client, world["a_admin"], "/members/export.xlsx")).max_row == 3001
