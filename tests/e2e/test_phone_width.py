"""The console on a phone (390 × 844, Chinese): a compact header whose menu holds the navigation, lists shown as
cards with each cell labelled by its column's name, long ids wrapped, and no page wider than the screen. The same
pages at 1440 px keep the desktop layout (the table headers, the navigation in the bar) without overflow."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from members.models import Member
from merchant_api import services as api_services
from payments.models import Payment, PaymentEvent, Refund
from payscore.models import ServiceOrder
from portal.models import StaffMembership
from reconciliation.models import DayResult, Difference
from tests.e2e.test_console_flows import login
from tests.factories import MerchantFactory, ServiceProviderFactory, StoreFactory, make_device, make_user
from webhooks import services as webhook_services
from webhooks.models import SUBSCRIBABLE, WebhookAttempt

pytestmark = pytest.mark.django_db(transaction=True)
Role = StaffMembership.Role

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
TRANSACTION_ID = "4200001234567890123456789012"  # 28 digits, WeChat Pay's transaction_id
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6oLongOpenid"


def order_no(n: int) -> str:
    return f"20250301093005{n:018d}"  # 32 characters, the longest out_trade_no WeChat Pay takes


@pytest.fixture
def world(live_server):
    provider = ServiceProviderFactory(name="华南智慧零售服务商")
    merchant = MerchantFactory(provider=provider, name="南山咖啡（科技园旗舰店）")
    stores = [
        StoreFactory(merchant=merchant, store_id="SZ-NANSHAN-KEJIYUAN-0001", name="南山科技园店"),
        StoreFactory(merchant=merchant, store_id="SZ-FUTIAN-CBD-0002", name="福田中心区店"),
    ]
    devices = [make_device(stores[0], "POS-SZ-NS-0001-A")[0], make_device(stores[1], "POS-SZ-FT-0002-A")[0]]
    now = timezone.now()
    payments = [
        Payment.objects.create(
            merchant=merchant,
            store=stores[n % 2],
            device=devices[n % 2],
            channel=merchant.channel,
            method=Payment.Method.FACE if n % 3 else Payment.Method.CODE,
            out_trade_no=order_no(n),
            total_fee=1234 + n * 111,
            body="拿铁咖啡 大杯",
            request_fingerprint="x" * 64,
            status="SUCCESS",
            transaction_id=f"42000012345678901234567{n:05d}",
            openid=OPENID,
            paid_at=now,
        )
        for n in range(1, 56)  # more than a page (50)
    ]
    paid = payments[0]
    Payment.objects.filter(pk=paid.pk).update(
        transaction_id=TRANSACTION_ID,
        total_fee=99_999_999,
        refunded_fee=1000,
        reserved_refund_fee=1000,
        status="PARTIALLY_REFUNDED",
    )
    Refund.objects.create(
        payment=paid, out_refund_no=f"{paid.out_trade_no}R01", refund_fee=1000, kind=Refund.Kind.REFUND,
        status=Refund.Status.SUCCESS, reason="少送一杯", refund_id="50300000123456789012345678",
    )  # fmt: skip
    stuck = payments[1]
    Payment.objects.filter(pk=stuck.pk).update(
        status="ATTENTION", err_code="REVERSE_EXPIRE", err_message="订单已超过撤销期限，请在商户平台核实后处理"
    )
    Refund.objects.create(
        payment=payments[2], out_refund_no=f"{payments[2].out_trade_no}R01", refund_fee=500,
        kind=Refund.Kind.REFUND, status=Refund.Status.ATTENTION, err_code="SYSTEMERROR", err_message="系统超时",
    )  # fmt: skip
    for action, outcome in (("created", ""), ("micropay", "UNKNOWN"), ("orderquery", "SUCCESS")):
        PaymentEvent.objects.create(
            payment=paid, action=action, outcome=outcome, from_status="PAYING", to_status="SUCCESS",
            code="USERPAYING", message="需要用户输入支付密码", latency_ms=321, actor=PaymentEvent.Actor.WORKER,
            request={"out_trade_no": paid.out_trade_no, "transaction_id": TRANSACTION_ID},
            response={"return_code": "SUCCESS", "transaction_id": TRANSACTION_ID},
        )  # fmt: skip

    endpoint, _ = webhook_services.endpoint_create(
        merchant=merchant, url="https://pos.nanshan-coffee.example.com/webhooks/face-pay/receiver",
        events=list(SUBSCRIBABLE), description="收银系统", user=None,
    )  # fmt: skip
    delivery = webhook_services.endpoint_send_test(endpoint=endpoint, user=None).deliveries.get()
    WebhookAttempt.objects.create(
        delivery=delivery, number=1, started_at=now, status_code=500, latency_ms=87, error="HTTP 500",
        request_headers={"Facepay-Event-Id": delivery.event.event_id, "Facepay-Signature": "v1=" + "a" * 64},
        response_excerpt="receiver says no",
    )  # fmt: skip

    DayResult.objects.create(
        merchant=merchant, bill_date=date(2025, 3, 1), rows=55, matched=54, payment_count=55,
        payment_total=123_456_789, settlement_total=123_456_789, refund_count=1, refund_total=1000, fee_total=74_074,
        net_settlement=123_381_715, open_differences=1,
    )  # fmt: skip
    difference = Difference.objects.create(
        merchant=merchant, bill_date=date(2025, 3, 1), kind="AMOUNT_DIFFERS", out_trade_no=paid.out_trade_no,
        transaction_id=TRANSACTION_ID, payment=paid, refund_no=f"{paid.out_trade_no}R01",
        ours={"out_trade_no": paid.out_trade_no, "transaction_id": TRANSACTION_ID, "total_fee": 99_999_999},
        theirs={"out_trade_no": paid.out_trade_no, "transaction_id": TRANSACTION_ID, "total_fee": 99_999_998},
    )  # fmt: skip

    Member.objects.create(
        merchant=merchant, openid=OPENID, unionid="oUnionOfXiaoMingWithALongId", nickname="小明",
        first_seen_at=now - timedelta(days=3), last_seen_at=now, visit_count=7,
    )  # fmt: skip
    api_services.api_client_create(merchant=merchant, name="收银系统（POS）", actor=None)
    ServiceOrder.objects.create(
        merchant=merchant, store=stores[0], device=devices[0], out_order_no="PS20250301093005000000000000001",
        service_id="500001", openid=OPENID, service_introduction="充电宝租借", notify_url="https://example.com/n/",
        risk_fund={"name": "ESTIMATE_ORDER_COST", "amount": 10000}, request_fingerprint="x" * 64,
        state=ServiceOrder.State.CREATED,
    )  # fmt: skip
    make_user("sp-admin", role=Role.PROVIDER_ADMIN, provider=provider)
    make_user("shop-admin", role=Role.MERCHANT_ADMIN, merchant=merchant)
    return {
        "paid": paid, "store": stores[0], "endpoint": endpoint, "delivery": delivery, "difference": difference,
    }  # fmt: skip


def pages(world, role: str) -> list[tuple[str, str]]:
    """(name, path) of the pages people work from, for this role."""
    listed = [
        ("dashboard", "/"),
        ("payments", "/payments/"),
        ("payment", f"/payments/{world['paid'].pk}/"),
        ("refunds", "/refunds/"),
        ("attention", "/attention/"),
        ("stores", "/stores/"),
        ("devices", f"/stores/{world['store'].pk}/"),
        ("device-health", "/devices/"),
        ("users", "/users/"),
        ("webhooks", "/webhooks/"),
        ("deliveries", f"/webhooks/{world['endpoint'].pk}/"),
        ("delivery", f"/webhooks/deliveries/{world['delivery'].pk}/"),
        ("reconciliation", "/reconciliation/"),
        ("differences", "/reconciliation/differences/"),
        ("difference", f"/reconciliation/differences/{world['difference'].pk}/"),
        ("members", "/members/"),
        ("api-clients", "/api-clients/"),
        ("payscore", "/payscore/"),
        ("audit", "/audit/"),
    ]
    if role == "sp-admin":
        listed.insert(6, ("merchants", "/merchants/"))
    return listed


OVERFLOW = """() => ({
    page: document.documentElement.scrollWidth,
    viewport: window.innerWidth,
    cards: [...document.querySelectorAll('main .card, main .stat')]
        .filter(card => card.scrollWidth > card.clientWidth + 1)
        .map(card => (card.id || card.querySelector('h2, table')?.id || card.className) + ' ' + card.scrollWidth),
})"""

# Every labelled list cell: its label, the text of its column's header, and how it is shown.
CELLS = """() => [...document.querySelectorAll('main table')].filter(table => table.tHead).flatMap(table => {
    const headers = [...table.tHead.rows[0].cells].map(cell => cell.textContent.trim());
    return [...table.tBodies].flatMap(body => [...body.rows]).flatMap(row => [...row.cells]
        .filter(cell => cell.tagName === 'TD' && cell.colSpan === 1)
        .map(cell => ({
            table: table.id || headers.join('|'),
            label: cell.dataset.label ?? null,
            header: headers[cell.cellIndex],
            display: getComputedStyle(cell).display,
            before: getComputedStyle(cell, '::before').content,
            row: getComputedStyle(row).display,
        })));
})"""


def header_height(page) -> float:
    return page.evaluate("() => document.querySelector('header.topbar').getBoundingClientRect().height")


def assert_fits(page, name: str) -> None:
    fit = page.evaluate(OVERFLOW)
    assert fit["page"] <= fit["viewport"], f"{name}: the page is {fit['page']} px wide at {fit['viewport']} px"
    assert not fit["cards"], f"{name}: these cards scroll sideways: {fit['cards']}"


def assert_labelled(cells: list[dict], name: str) -> None:
    """Each cell under a named column carries that column's (translated) name; a cell under an unnamed column
    (the row's buttons) carries none."""
    for cell in cells:
        expected = cell["header"] or None
        assert cell["label"] == expected, f"{name}: a cell of {cell['table']} is labelled {cell['label']!r}"


@pytest.mark.parametrize("role", ["sp-admin", "shop-admin"])
def test_console_at_phone_width(new_page, world, live_server, shots, role):
    page = new_page()  # zh-CN
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/login/")
    assert header_height(page) <= 56
    assert_fits(page, "login")
    shots(page, "login")
    login(page, live_server.url, role)
    page.goto(f"{live_server.url}/stores/")

    # The header: one short bar; its menu opens by keyboard or tap and holds the navigation and the account links.
    assert header_height(page) <= 56, f"the closed header is {header_height(page)} px tall"
    navigation = page.locator("header nav.main a")
    assert navigation.count() >= 10 and not navigation.first.is_visible()
    assert not page.locator("header nav.user").is_visible()
    page.keyboard.press("Tab")  # the product name
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "menu-toggle"
    page.keyboard.press("Space")
    assert navigation.first.is_visible() and navigation.last.is_visible()
    assert page.locator("header nav.user button", has_text="退出登录").is_visible()
    assert page.get_by_role("combobox", name="语言").is_visible()
    assert_fits(page, "menu")
    shots(page, "menu-open")
    page.click("label[for=menu-toggle]")
    assert not navigation.first.is_visible() and header_height(page) <= 56

    for name, path in pages(world, role):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, (path, response.status)
        assert header_height(page) <= 56, f"{name}: the header is {header_height(page)} px tall"
        assert_fits(page, name)
        cells = page.evaluate(CELLS)
        if name != "dashboard":  # its tables belong to the dashboard's own page
            assert_labelled(cells, name)
        for cell in cells:
            assert cell["row"] == "block" and cell["display"] != "table-cell", f"{name}: {cell['table']} is a table"
            if cell["label"]:
                assert cell["before"] == f'"{cell["label"]}"', f"{name}: {cell['label']} is not shown"
        shots(page, name)

    # The long ids wrap inside their card rather than widening it.
    page.goto(f"{live_server.url}/payments/{world['paid'].pk}/")
    transaction_id = page.locator("dd code", has_text=TRANSACTION_ID)
    box, card = transaction_id.bounding_box(), page.locator("section.card", has=transaction_id).bounding_box()
    assert box["x"] + box["width"] <= card["x"] + card["width"]
    page.goto(f"{live_server.url}/payments/")
    first = page.locator("#payments tbody tr").first
    assert first.locator("td[data-label='金额']").is_visible()
    assert "¥" in first.locator("td[data-label='金额']").inner_text()
    assert page.locator(".pagination").is_visible()


def test_console_at_desktop_width(new_page, world, live_server, shots):
    page = new_page()
    page.set_viewport_size(DESKTOP)
    login(page, live_server.url, "sp-admin")
    page.goto(f"{live_server.url}/payments/")
    assert not page.locator("label[for=menu-toggle]").is_visible()
    assert page.locator("header nav.main a").first.is_visible() and page.locator("header nav.user").is_visible()
    for name, path in pages(world, "sp-admin"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, (path, response.status)
        fit = page.evaluate(OVERFLOW)
        assert fit["page"] <= fit["viewport"], f"{name}: the page is {fit['page']} px wide at {fit['viewport']} px"
        for cell in page.evaluate(CELLS):
            assert cell["row"] == "table-row", f"{name}: {cell['table']} is not a table at desktop width"
        if name in ("payments", "refunds", "stores", "webhooks"):
            shots(page, name)
