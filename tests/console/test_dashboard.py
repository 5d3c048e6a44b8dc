"""Console dashboard: trends by day, week and month (China dates) with refunds and success rates, the chart's axis and
its table, top merchants and stores in the user's scope, display names instead of codes, and the cost of the page
(a fixed number of queries; date ranges served by an index)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from payments.dashboard import trends
from payments.models import Payment, Refund
from portal.models import Merchant, StaffMembership, Store
from tests.factories import MerchantFactory, ServiceProviderFactory, StoreFactory, login_verified, make_user

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role
CHINA = timezone.get_default_timezone()
TODAY = date(2025, 3, 12)  # a Wednesday


def china(text: str) -> datetime:
    return timezone.make_aware(datetime.strptime(text, "%Y-%m-%d %H:%M"), CHINA)


@pytest.fixture
def world():
    provider, other_provider = ServiceProviderFactory(), ServiceProviderFactory()
    a = MerchantFactory(provider=provider, name="甲商户", channel=Merchant.Channel.WECHAT_DIRECT)
    b = MerchantFactory(provider=provider, name="乙商户", channel=Merchant.Channel.UMPAY)
    c = MerchantFactory(provider=other_provider, name="丙商户")
    return {
        "a": a,
        "b": b,
        "c": c,
        "a1": StoreFactory(merchant=a, name="甲一店", store_id="A1"),
        "a2": StoreFactory(merchant=a, name="甲二店", store_id="A2"),
        "b1": StoreFactory(merchant=b, name="乙一店", store_id="B1"),
        "c1": StoreFactory(merchant=c, name="丙一店", store_id="C1"),
        "a_admin": make_user("a-admin", role=Role.MERCHANT_ADMIN, merchant=a),
        "a_staff": make_user("a-staff", role=Role.MERCHANT_STAFF, merchant=a),
        "p_admin": make_user("p-admin", role=Role.PROVIDER_ADMIN, provider=provider),
        "reviewer": make_user("reviewer", role=Role.PROVIDER_REVIEWER, provider=provider),
        "root": make_user("root", superuser=True),
    }


def pay(store: Store, fee: int, *, at: datetime | None = None, status: str = "SUCCESS") -> Payment:
    """A payment made `at` (now when not given)."""
    payment = Payment.objects.create(
        merchant=store.merchant,
        store=store,
        channel=store.merchant.channel,
        method=Payment.Method.FACE,
        out_trade_no=f"T{Payment.objects.count() + 1:06d}",
        total_fee=fee,
        body="测试商品",
        request_fingerprint="x" * 64,
        status=status,
    )
    if at is not None:
        Payment.objects.filter(pk=payment.pk).update(created_at=at)
        payment.created_at = at
    return payment


def refund(payment: Payment, fee: int, *, at: datetime | None = None, status: str = "SUCCESS") -> Refund:
    made = Refund.objects.create(
        payment=payment,
        out_refund_no=f"{payment.out_trade_no}R{payment.refunds.count() + 1:02d}",
        refund_fee=fee,
        kind=Refund.Kind.REFUND,
        status=status,
    )
    if at is not None:
        Refund.objects.filter(pk=made.pk).update(created_at=at)
    return made


def page(client, user, url: str = "/", *, language: str = "en") -> str:
    login_verified(client, user)
    client.cookies["django_language"] = language
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.content.decode()


def section(html: str, element_id: str) -> str:
    """The <section> (or other element up to its first </section>) with this id; "" when the page has none."""
    _, found, rest = html.partition(f'id="{element_id}"')
    return rest.split("</section>")[0] if found else ""


# --- trends --------------------------------------------------------------------------------------------------------


@pytest.fixture
def boundaries(world):
    """Payments on either side of midnight China time (16:00 UTC): a Sunday's last hour and the Monday after, the
    last evening of February and the first night of March, with refunds beside them."""
    a1 = world["a1"]
    sunday = pay(a1, 1000, at=china("2025-03-09 23:30"))
    monday = pay(a1, 2000, at=china("2025-03-10 00:30"))  # still Sunday 16:30 in UTC
    february = pay(a1, 4000, at=china("2025-02-28 23:30"))
    pay(a1, 8000, at=china("2025-03-01 00:30"))  # still February in UTC
    pay(a1, 500, at=china("2025-03-10 09:00"), status="FAILED")
    pay(a1, 700, at=china("2025-03-10 10:00"), status="PAYING")  # no outcome yet: not in the success rate
    pay(world["b1"], 16000, at=china("2025-03-10 11:00"))  # another merchant's
    refund(monday, 300, at=china("2025-03-10 00:45"))
    refund(february, 100, at=china("2025-03-09 23:59"))  # counts on the day it was made, not the payment's
    refund(sunday, 200, at=china("2025-03-09 23:40"), status="FAILED")  # nothing refunded
    refund(sunday, 50, at=china("2025-03-09 23:50"), status="PROCESSING")  # not refunded yet
    return world


def by_start(result) -> dict:
    return {bucket.start: bucket for bucket in result["buckets"]}


def test_days_follow_china_dates_with_refunds_and_success_rate(boundaries):
    result = trends(boundaries["a_admin"], "day", today=TODAY)
    days = by_start(result)

    assert [b.start for b in result["buckets"]] == [date(2025, 2, d) for d in (27, 28)] + [
        date(2025, 3, d) for d in range(1, 13)
    ]
    figures = {start: (b.paid_amount, b.paid_count, b.refunded, b.success_rate) for start, b in days.items()}
    assert figures[date(2025, 2, 28)] == (4000, 1, 0, 100)
    assert figures[date(2025, 3, 1)] == (8000, 1, 0, 100)
    assert figures[date(2025, 3, 9)] == (1000, 1, 100, 100)
    assert figures[date(2025, 3, 10)] == (2000, 1, 300, 50)  # paid 1 of 2 settled; the PAYING one counts in neither
    assert figures[date(2025, 3, 11)] == (0, 0, 0, None)
    totals = result["totals"]
    assert (totals.paid_amount, totals.paid_count, totals.refunded, totals.success_rate) == (15000, 4, 400, 80)


def test_weeks_start_on_monday_in_china_time(boundaries):
    result = trends(boundaries["a_admin"], "week", today=TODAY)
    weeks = by_start(result)

    assert len(result["buckets"]) == 12 and all(b.start.weekday() == 0 for b in result["buckets"])
    assert (result["buckets"][0].start, result["buckets"][-1].start) == (date(2024, 12, 23), date(2025, 3, 10))
    assert weeks[date(2025, 3, 3)].last == date(2025, 3, 9)
    # The Sunday at 23:30 is the week of 3 March; the Monday at 00:30 (Sunday in UTC) the week of 10 March.
    assert (weeks[date(2025, 3, 3)].paid_amount, weeks[date(2025, 3, 3)].refunded) == (1000, 100)
    assert (weeks[date(2025, 3, 10)].paid_amount, weeks[date(2025, 3, 10)].refunded) == (2000, 300)
    assert weeks[date(2025, 3, 10)].success_rate == 50
    assert weeks[date(2025, 2, 24)].paid_amount == 12000


def test_months_follow_china_dates(boundaries):
    result = trends(boundaries["a_admin"], "month", today=TODAY)
    months = by_start(result)

    assert [b.start for b in result["buckets"]][:2] == [date(2024, 4, 1), date(2024, 5, 1)]
    assert result["buckets"][-1].start == date(2025, 3, 1) and len(result["buckets"]) == 12
    assert (months[date(2025, 2, 1)].paid_amount, months[date(2025, 2, 1)].last) == (4000, date(2025, 2, 28))
    assert (months[date(2025, 3, 1)].paid_amount, months[date(2025, 3, 1)].refunded) == (11000, 400)
    assert months[date(2025, 3, 1)].success_rate == 75


def test_provider_staff_see_their_merchants_ranked_and_each_store(boundaries):
    result = trends(boundaries["p_admin"], "month", today=TODAY)

    merchants = [(m.name, m.paid_count, m.paid_amount, m.refunded, m.success_rate) for m in result["merchants"]]
    assert merchants == [("乙商户", 1, 16000, 0, 100), ("甲商户", 4, 15000, 400, 80)]
    stores = [(s.name, s.code, s.merchant, s.paid_amount) for s in result["stores"]]
    assert stores == [("乙一店", "B1", "乙商户", 16000), ("甲一店", "A1", "甲商户", 15000)]
    assert trends(boundaries["a_admin"], "month", today=TODAY)["merchants"] is None


# --- the page ------------------------------------------------------------------------------------------------------


def test_chart_has_a_yuan_axis_labels_legend_tooltips_and_a_table(client, world):
    payment = pay(world["a1"], 123456)  # ¥1,234.56 today
    pay(world["a1"], 999, status="FAILED")
    refund(payment, 50000)

    html = page(client, world["a_admin"])

    chart = section(html, "trends")
    svg = chart.split("<svg")[1].split("</svg>")[0]
    # Round steps up to above the highest bar: ¥0, ¥500, ¥1,000, ¥1,500.
    assert re.findall(r'class="y-tick"[^>]*>([^<]+)<', svg) == ["¥0", "¥500", "¥1,000", "¥1,500"]
    today = timezone.localdate()
    x_labels = re.findall(r'class="x-tick"[^>]*>([^<]+)<', svg)
    assert len(x_labels) == 14 and x_labels[-1] == f"{today:%m-%d}"
    assert svg.count('class="bar-paid"') == 14 and svg.count('class="bar-refund"') == 14
    assert f"<title>{today:%Y-%m-%d} · Paid amount ¥1,234.56 · Paid payments 1</title>" in svg
    assert f"<title>{today:%Y-%m-%d} · Refunded amount ¥500.00</title>" in svg
    legend = chart.split('class="chart-legend"')[1].split("</ul>")[0]
    assert 'class="swatch paid"' in legend and "Paid amount" in legend and "Refunded amount" in legend
    table = chart.split('<table id="trend-table">')[1]
    row = re.search(rf"<tr><th scope=\"row\">{today:%Y-%m-%d}</th>(.*?)</tr>", table).group(1)
    assert row == "<td>¥1,234.56</td><td>1</td><td>¥500.00</td><td>50%</td>"


def test_period_switch_by_week_and_month(client, world):
    pay(world["a1"], 5000)
    today = timezone.localdate()
    monday = today - timedelta(days=today.weekday())

    weekly = section(page(client, world["a_admin"], "/?period=week"), "trends")
    assert "Last 12 weeks, by week (Monday to Sunday)" in weekly
    assert 'href="?period=week#trends" aria-current="page"' in weekly
    assert len(re.findall(r'class="x-tick"', weekly)) == 12
    label = f"{monday:%Y-%m-%d} – {(monday + timedelta(days=6)):%m-%d}"
    assert f'<th scope="row">{label}</th><td>¥50.00</td>' in weekly

    monthly = section(page(client, world["a_admin"], "/?period=month"), "trends")
    assert "Last 12 months, by month" in monthly
    assert f'<th scope="row">{today:%Y-%m}</th><td>¥50.00</td>' in monthly

    unknown = section(page(client, world["a_admin"], "/?period=year"), "trends")
    assert "Last 14 days, by day" in unknown and 'href="?period=day#trends" aria-current="page"' in unknown


@pytest.mark.parametrize("user", ["a_admin", "a_staff"])
def test_a_merchant_sees_its_own_stores_only(client, world, user):
    pay(world["a1"], 1000)
    pay(world["a2"], 3000)
    pay(world["b1"], 70000)
    pay(world["c1"], 90000)

    html = page(client, world[user])

    assert section(html, "by-merchant") == ""
    stores = section(html, "by-store")
    assert stores.index("甲二店") < stores.index("甲一店")  # by paid amount
    for foreign in ("乙", "丙", "¥700.00", "¥900.00"):
        assert foreign not in html, foreign
    assert "¥40.00" in section(html, "trends")


def test_provider_staff_see_top_merchants_and_stores_of_their_provider(client, world):
    pay(world["a1"], 1000)
    pay(world["b1"], 70000, status="FAILED")
    pay(world["b1"], 2000)
    pay(world["c1"], 90000)

    html = page(client, world["reviewer"])

    merchants = section(html, "by-merchant")
    assert merchants.index("乙商户") < merchants.index("甲商户")
    assert '<th scope="row">乙商户</th><td>1</td><td>¥20.00</td><td>¥0.00</td><td>50%</td>' in merchants
    stores = section(html, "by-store")
    assert "乙一店 <code>B1</code></th><td>乙商户</td>" in stores and "甲一店" in stores
    assert "丙" not in html and "¥900.00" not in html


def test_channel_and_status_show_display_names_in_chinese(client, world):
    pay(world["a1"], 1000)
    pay(world["a1"], 2000, status="FAILED")
    pay(world["b1"], 3000, status="REFUNDED")

    html = page(client, world["p_admin"], language="zh-hans")

    breakdown = section(html, "by-channel-status")
    for name in ("微信支付（直连商户）", "联动优势（收单机构）", "支付成功", "失败（未扣款）", "已退款"):
        assert name in breakdown, name
    for code in ("WECHAT_DIRECT", "UMPAY", ">SUCCESS<", ">FAILED<", ">REFUNDED<"):
        assert code not in breakdown, code
    for text in ("近 14 天，按日", "按周", "成功收款金额", "退款金额", "成功率", "商户排行", "门店排行", "今日成功率"):
        assert text in html, text
    for english in ("Paid amount", "Refunded amount", "Top stores", "Top merchants", "By week", "Success rate"):
        assert english not in html, english


def test_todays_figures_queues_and_reconciliation_card_stay(client, world):
    pay(world["a1"], 1234)
    pay(world["a1"], 1000, status="FAILED")
    stuck = pay(world["a1"], 555, status="ATTENTION")
    paying = pay(world["a1"], 666, status="PAYING")
    pay(world["a1"], 777, at=china("2025-01-01 12:00"))  # not today

    html = page(client, world["a_admin"])

    live = html.split('id="dashboard-live"')[1]
    assert 'id="today-volume">¥12.34<' in live and "Success rate today" in live and "50%" in live
    assert stuck.out_trade_no in section(live, "attention-queue") and paying.out_trade_no in live
    assert "Paying (outcome not yet definite)" in live and ">PAYING<" not in live
    assert "Last reconciled day" in section(html, "reconciliation-card")
    assert "Open differences" in section(html, "reconciliation-card")
    polled = client.get("/dashboard/live").content.decode()
    assert 'id="today-volume">¥12.34<' in polled and stuck.out_trade_no in polled


# --- cost ----------------------------------------------------------------------------------------------------------


def many_payments(world, scale: int) -> None:
    """`scale` payments and a refund in each store on each of the last days, and more stores of more merchants."""
    for n in range(scale):
        merchant = MerchantFactory(provider=world["a"].provider)
        for store in (world["a1"], world["b1"], StoreFactory(merchant=merchant)):
            for days_ago in range(3):
                payment = pay(store, 1000 + n, at=timezone.now() - timedelta(days=days_ago * 7))
                refund(payment, 100, at=payment.created_at)
                pay(store, 500, status="FAILED")


def test_the_page_costs_a_fixed_number_of_queries(client, world, django_assert_max_num_queries):
    many_payments(world, 1)
    login_verified(client, world["p_admin"])
    with CaptureQueriesContext(connection) as few:
        assert client.get("/?period=week").status_code == 200
    many_payments(world, 12)
    with django_assert_max_num_queries(len(few)):
        assert client.get("/?period=week").status_code == 200
    with django_assert_max_num_queries(30):
        assert client.get("/?period=month").status_code == 200


@pytest.mark.skipif(connection.vendor != "sqlite", reason="reads SQLite's query plans")
@pytest.mark.parametrize("user", ["root", "a_admin", "p_admin"])
def test_date_ranges_are_read_through_an_index(client, world, user):
    many_payments(world, 2)
    login_verified(client, world[user])
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/?period=month").status_code == 200

    ranged = [query["sql"] for query in captured if '"created_at" >=' in query["sql"]]
    assert len(ranged) >= 5  # today's figures, the trend, its refunds, the top stores and their refunds
    with connection.cursor() as cursor:
        for sql in ranged:
            plan = [row[-1] for row in cursor.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()]
            scans = [step for step in plan if re.match(r"SCAN (payments_payment|payments_refund)\b", step)]
            assert scans == [], (sql, plan)
