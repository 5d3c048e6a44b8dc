"""Each console role's main path in a real browser, in Chinese (the console's default language), with a screenshot
at every step (test-output/e2e/). The data is made the way the product makes it: payments through the terminal API
or the payment services against the in-process sandbox (one fake clock), refunds by the refund service, a
reconciliation difference by reconciling a bill the sandbox was told to get wrong.

With UPDATE_DOCS_SCREENSHOTS=1 these tests also save the named screenshots of docs/screenshots/ (conftest.py).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from payments import services as payment_services
from payments.models import Payment, Refund
from portal.models import AuditLog, Device, Merchant, ServiceProvider, StaffMembership, Store
from reconciliation import services as reconciliation_services
from reconciliation.models import Difference
from sandbox.services import sandbox_plant_bill_difference
from tests.e2e.conftest import PHONE
from tests.e2e.test_console_flows import login
from tests.factories import make_user
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db(transaction=True)
Role = StaffMembership.Role
AUTH_CODE = "134567890123456789"  # a WeChat payment code: 18 digits starting 10-15
# 南山咖啡's earlier trade: (days ago, amounts in fen).
HISTORY = [(13, [1800]), (11, [2600, 980]), (9, [3500]), (7, [1200, 4200]), (5, [2900]), (4, [1500, 5600]),
           (2, [3800]), (1, [2880, 1560, 3300])]  # fmt: skip
USERS = [
    ("sp-admin", "陈静", Role.PROVIDER_ADMIN),
    ("sp-reviewer", "王磊", Role.PROVIDER_REVIEWER),
    ("nanshan-admin", "李娜", Role.MERCHANT_ADMIN),
    ("nanshan-cashier", "张伟", Role.MERCHANT_STAFF),
]


@dataclass
class World:
    base: str
    shop: object  # tests.shop.Shop of 南山咖啡 (WeChat Pay, direct merchant)
    other: object  # tests.shop.Shop of 福田面包房 (UMF), same service provider
    paid: list[Payment]  # 南山咖啡's payments paid today, by amount
    attention: Payment  # 南山咖啡's payment the channel would not reverse (REVERSE_EXPIRE)
    stuck_refund: Refund  # a refund in ATTENTION
    difference: Difference  # yesterday's bill has the wrong amount for one order

    def payment(self, amount: int) -> Payment:
        return next(p for p in self.paid if p.total_fee == amount)


def pay_on(shop, amount: int, body: str) -> Payment:
    """A payment-code payment through the payment services, at the shop clock's time (the terminal API checks its
    request timestamps against the real clock, so earlier days are paid this way)."""
    data = payment_services.PaymentInput(total_fee=amount, body=body, auth_code=AUTH_CODE, method="CODE")
    payment, _ = payment_services.payment_create(device=shop.device, data=data)
    return payment_services.payment_submit(payment=payment, auth_code=AUTH_CODE)


def named(shop, *, merchant: str, store: str, store_id: str, provider: ServiceProvider | None = None) -> None:
    Merchant.objects.filter(pk=shop.merchant.pk).update(name=merchant, **({"provider": provider} if provider else {}))
    Store.objects.filter(pk=shop.device.store_id).update(name=store, store_id=store_id)
    shop.merchant.refresh_from_db()


@pytest.fixture
def world(live_server, make_shop) -> World:
    """One service provider with two merchants: 南山咖啡 on WeChat Pay (two weeks of trade, a reconciled day with a
    difference, today's payments, one needing attention, a refund stuck in ATTENTION) and 福田面包房 on UMF (today's
    payments, one partly refunded). Users: the provider's admin and reviewer, 南山咖啡's admin and cashier."""
    other = make_shop(Merchant.Channel.UMPAY)  # its provider holds the UMF key: the provider of both
    shop = make_shop(Merchant.Channel.WECHAT_DIRECT)
    provider = other.merchant.provider
    ServiceProvider.objects.filter(pk=provider.pk).update(name="华南智慧零售服务商")
    named(shop, merchant="南山咖啡", store="南山科技园店", store_id="SZ-NS-001", provider=provider)
    named(other, merchant="福田面包房", store="福田中心区店", store_id="SZ-FT-001")
    # The setup above stands for an operator's onboarding work: the audit log names it so.
    AuditLog.objects.update(actor_label="cli")
    users = {}
    for username, name, role in USERS:
        owner = {"provider": provider} if role in StaffMembership.PROVIDER_ROLES else {"merchant": shop.merchant}
        users[username] = make_user(username, role=role, **owner)
        get_user_model().objects.filter(pk=users[username].pk).update(first_name=name)

    # Two weeks of 南山咖啡's trade, each payment made at its day's time and dated so.
    clock, now = shop.clock, timezone.now().replace(microsecond=0)
    yesterday: list[Payment] = []
    for days_ago, amounts in HISTORY:
        clock.current = now - timedelta(days=days_ago, hours=2)
        made = [pay_on(shop, amount, "拿铁咖啡") for amount in amounts]
        shop.run_worker(3)
        Payment.objects.filter(pk__in=[p.pk for p in made]).update(created_at=clock.current)
        if days_ago == 4:  # a customer returned part of an order that day
            returned = payment_services.refund_create(
                payment=made[1], refund_fee=1600, reason="少做一杯", user=users["nanshan-admin"]
            )
            shop.run_worker(10)
            Refund.objects.filter(pk=returned.pk).update(created_at=clock.current)
        if days_ago == 1:
            yesterday = made
    # Yesterday's bill has the wrong amount for one order; reconciled the next morning (today).
    sandbox_plant_bill_difference(order_no=yesterday[0].out_trade_no, kind="AMOUNT")
    clock.current = now
    bill_date = timezone.localtime(yesterday[0].paid_at).date()
    reconciliation_services.reconcile_day(merchant=shop.merchant, bill_date=bill_date)
    difference = Difference.objects.get(merchant=shop.merchant)

    # Today, through the terminal API: 1104 is declined (NOTENOUGH), 1109 cannot be reversed (REVERSE_EXPIRE).
    orders = [shop.pay(amount, body="拿铁咖啡") for amount in (1280, 2560, 4500, 6800, 880, 1104, 1109)]
    orders_b = [other.pay(amount, body="全麦面包") for amount in (990, 2200, 3600)]
    shop.run_worker(90)
    paid = [shop.payment(o["out_trade_no"]) for o in orders[:5]]
    attention = shop.payment(orders[6]["out_trade_no"])
    assert [p.status for p in paid] == ["SUCCESS"] * 5 and attention.status == "ATTENTION"
    assert {other.payment(o["out_trade_no"]).status for o in orders_b} == {"SUCCESS"}
    payment_services.refund_create(
        payment=other.payment(orders_b[2]["out_trade_no"]), refund_fee=600, reason="面包售罄", user=None
    )
    shop.run_worker(15)

    # The admin asked for a refund the channel kept answering SYSTEMERROR to: it waits for a person.
    stuck = payment_services.refund_create(
        payment=paid[2], refund_fee=1500, reason="顾客退回一杯", user=users["nanshan-admin"]
    )
    Refund.objects.filter(pk=stuck.pk).update(
        status=Refund.Status.ATTENTION, next_check_at=None, err_code="SYSTEMERROR", err_message="系统超时"
    )
    # From here the browser acts on the live server; only the merchant admin's refund needs the sandbox again.
    return World(
        base=live_server.url, shop=shop, other=other, paid=[Payment.objects.get(pk=p.pk) for p in paid],
        attention=attention, stuck_refund=Refund.objects.get(pk=stuck.pk), difference=difference,
    )  # fmt: skip


def main_text(page) -> str:
    return page.locator("main").inner_text()


def amounts_in(page, table: str) -> list[str]:
    return page.locator(f"#{table} tbody td[data-label='金额']").all_inner_texts()


def yuan(text: str) -> float:
    return float(re.search(r"¥([\d,]+\.\d\d)", text).group(1).replace(",", ""))


# --- provider admin ------------------------------------------------------------------------------------------------


def test_provider_admin(new_page, world, shots, docs_shots):
    base, page = world.base, new_page()
    login(page, base, "sp-admin")
    assert page.locator("main h1").inner_text() == "概览"
    assert "陈静" not in page.locator("header").inner_text()  # the header names the user by username and role
    assert "sp-admin · 服务商管理员" in page.locator("header").inner_text()
    shots(page, "dashboard")
    docs_shots(page, "dashboard", max_height=1900)  # down to the trend chart and its table
    docs_shots(page, "dashboard", size=PHONE)

    # A user for the other merchant: an admin, who gets a one-time password and must set up two-factor sign-in.
    page.click("header nav.main >> text=用户")
    page.wait_for_url(f"{base}/users/")
    page.click("text=添加用户")
    page.fill("#id_username", "futian-admin")
    page.fill("#id_name", "刘洋")
    page.select_option("#id_owner", label="福田面包房")
    page.select_option("#id_role", label="商户管理员")
    assert "首次登录" in main_text(page)  # the form says what happens next
    shots(page, "user-form")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/users/*/password/*")
    assert page.locator("main h1").inner_text() == "用户已添加"
    password = page.locator("#one-time-password").inner_text().strip()
    assert len(password) >= 16
    assert "用户首次登录时必须设置新密码。" in main_text(page)
    shots(page, "user-one-time-password")
    page.click("text=完成")
    page.wait_for_url("**/users/*/")
    facts = page.locator("dl.facts").inner_text()
    assert "一次性密码：下次登录时必须修改" in facts
    assert "未开启" in facts and "（该角色必须开启）" in facts
    assert "商户管理员" in facts and "福田面包房" in facts
    shots(page, "user-detail")
    page.goto(f"{base}/users/")
    row = page.locator("tbody tr", has_text="futian-admin")
    assert "刘洋" in row.inner_text() and "商户管理员" in row.inner_text()
    docs_shots(page, "users")

    # The payments of one merchant between ¥20 and ¥50.
    page.click("header nav.main >> text=支付订单")
    page.wait_for_url(f"{base}/payments/")
    assert page.locator("#payments tbody tr").count() > 20
    docs_shots(page, "payments")
    docs_shots(page, "payments", size=PHONE, scroll_to="#totals")
    page.select_option("#merchant", label="南山咖啡")
    page.wait_for_load_state("networkidle")  # the store select follows the merchant (HTMX)
    page.fill("#min", "20")
    page.fill("#max", "50")
    page.click("main form.filters button[type=submit]")
    page.wait_for_url("**/payments/?*")
    amounts = amounts_in(page, "payments")
    expected = Payment.objects.filter(merchant=world.shop.merchant, total_fee__gte=2000, total_fee__lte=5000)
    assert len(amounts) == expected.count() >= 6
    assert all(20 <= yuan(amount) <= 50 for amount in amounts)
    assert set(page.locator("#payments tbody td[data-label='商户']").all_inner_texts()) == {"南山咖啡"}
    assert world.payment(2560).out_trade_no in main_text(page)
    assert world.payment(6800).out_trade_no not in main_text(page)  # above the range
    shots(page, "payments-filtered")

    with page.expect_download() as download_info:
        page.click("#exports >> text=导出 CSV")
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    rows = list(csv.reader(io.StringIO(open(download.path(), encoding="utf-8-sig").read())))
    assert "商户订单号" in rows[0]
    exported = {row[rows[0].index("商户订单号")] for row in rows[1:]}
    assert exported == set(expected.values_list("out_trade_no", flat=True))

    # The payment the channel would not reverse: settled after checking the merchant platform.
    page.click("header nav.main >> text=待人工处理")
    settle = page.locator("#attention-payments tr", has_text=world.attention.out_trade_no).locator("a.button")
    assert settle.inner_text() == "处理"
    settle.click()
    page.wait_for_url(f"{base}/payments/{world.attention.pk}/")
    assert "待人工处理" in page.locator("#payment-status").inner_text()
    page.select_option("#outcome", label="已撤销")
    page.fill("#note", "商户平台核实：订单已撤销，顾客未扣款")
    shots(page, "settle-form")
    page.click("form[action$='/resolve'] >> text=标记为已处理")
    page.wait_for_selector("text=订单已处理完毕。")
    assert "已撤销" in page.locator("#payment-status").inner_text()
    assert page.locator("form[action$='/resolve']").count() == 0
    assert "商户平台核实：订单已撤销，顾客未扣款" in page.locator(".timeline").inner_text()
    shots(page, "settled")
    docs_shots(page, "payment-detail", max_height=1500)
    world.attention.refresh_from_db()
    assert world.attention.status == "REVERSED"

    # The audit log says it in a sentence, and the user created above.
    page.click("header nav.main >> text=操作日志")
    page.wait_for_url(f"{base}/audit/")
    log = main_text(page)
    assert f"陈静 将支付订单 {world.attention.out_trade_no} 人工处理为“已撤销”" in log
    assert "陈静 创建了账号 futian-admin，角色为“商户管理员”" in log
    shots(page, "audit-log")
    docs_shots(page, "audit")


# --- provider reviewer ---------------------------------------------------------------------------------------------


def test_provider_reviewer(new_page, world, shots, docs_shots):
    base, page = world.base, new_page()
    refund = world.stuck_refund
    login(page, base, "sp-reviewer")
    page.click("header nav.main >> text=待人工处理")
    page.wait_for_url(f"{base}/attention/")
    counts = page.locator("#attention-counts").inner_text()
    assert "待处理的支付" in counts and "待处理的退款" in counts
    assert world.attention.out_trade_no in page.locator("#attention-payments").inner_text()
    refunds = page.locator("#attention-refunds")
    assert refund.out_refund_no in refunds.inner_text() and "系统超时" in refunds.inner_text()
    shots(page, "attention-queue")
    docs_shots(page, "attention")

    refunds.locator("tr", has_text=refund.out_refund_no).locator("text=查看支付订单").click()
    page.wait_for_url(f"{base}/payments/{refund.payment_id}/")
    assert page.locator(f"a[href='/payments/{refund.payment_id}/refund']").count() == 0  # reviewers do not refund
    form = page.locator("form.refund-resolve")
    assert f"处理退款 {refund.out_refund_no}（¥15.00）" in form.inner_text()
    form.locator("select").select_option(label="已退款（渠道显示退款成功）")
    form.locator("input[name=note]").fill("商户平台显示退款成功，退款单号 50300000123")
    shots(page, "settle-refund-form")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("text=退款已处理。")
    status = page.locator("#payment-status tr", has_text=refund.out_refund_no).inner_text()
    assert "已退款" in status and "待人工处理" not in status
    assert f"人工处理退款 {refund.out_refund_no}：" in page.locator(".timeline").inner_text()
    assert page.locator("form.refund-resolve").count() == 0
    shots(page, "refund-settled")
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCESS

    # Reconciliation: yesterday's difference, with both sides.
    page.click("header nav.main >> text=对账")
    page.wait_for_url(f"{base}/reconciliation/")
    shots(page, "reconciliation-days")
    page.goto(f"{base}/reconciliation/differences/")
    row = page.locator("#differences tbody tr", has_text=world.difference.out_trade_no)
    assert "金额不一致" in row.inner_text() and "南山咖啡" in row.inner_text()
    assert "¥28.80" in row.inner_text() and "¥28.81" in row.inner_text()
    shots(page, "differences")
    row.locator("text=金额不一致").click()
    page.wait_for_url(f"{base}/reconciliation/differences/{world.difference.pk}/")
    assert world.difference.out_trade_no in main_text(page)
    shots(page, "difference")


# --- merchant admin ------------------------------------------------------------------------------------------------


def test_merchant_admin(new_page, world, shots, docs_shots):
    base, page = world.base, new_page()
    login(page, base, "nanshan-admin")

    # A new terminal for the store: its secret is shown once.
    page.click("header nav.main >> text=门店与设备")
    page.locator("main tr", has_text="南山科技园店").locator("a").first.click()
    assert page.locator("main h1").inner_text().startswith("南山科技园店")
    page.fill("#id_device_id", "POS-NS-002")
    shots(page, "store")
    page.click("form[action$='/devices/register'] button[type=submit]")
    assert page.locator("main h1").inner_text() == "设备已登记"
    secret = page.locator("#device-secret").inner_text().strip()
    assert Device.objects.get(device_id="POS-NS-002").secret.reveal() == secret
    shots(page, "device-secret-once")
    page.reload()
    assert secret not in page.content()
    page.click("text=完成")
    assert "POS-NS-002" in main_text(page)

    # Part of today's ¥68.00 back to the customer, with a confirmation step.
    payment = world.payment(6800)
    page.click("header nav.main >> text=支付订单")
    page.click(f"text={payment.out_trade_no}")
    page.wait_for_url(f"{base}/payments/{payment.pk}/")
    page.click("main a.button:text-is('退款')")
    page.fill("#amount", "18.00")
    page.fill("#reason", "少送一份甜点")
    page.click("main form button[type=submit]")
    assert "确定向顾客退款 ¥18.00 吗？" in main_text(page)
    shots(page, "refund-confirm")
    assert not payment.refunds.exists()
    page.click("text=确认退款")
    page.wait_for_url(f"{base}/payments/{payment.pk}/")
    assert "已发起退款，正在处理。" in main_text(page)
    world.shop.run_worker(20)  # the worker sends it; the sandbox refunds it
    page.wait_for_function("() => !document.querySelector('#payment-status[hx-get]')", timeout=12000)
    assert "部分退款" in page.locator("#payment-status").inner_text()
    shots(page, "refunded")

    page.click("header nav.main >> text=退款")
    page.wait_for_url(f"{base}/refunds/")
    row = page.locator("#refunds tbody tr", has_text=payment.out_trade_no)
    assert "¥18.00" in row.inner_text() and "已退款" in row.inner_text() and "少送一份甜点" in row.inner_text()
    assert "nanshan-admin" in row.inner_text()
    shots(page, "refunds")
    docs_shots(page, "refunds")

    # The POS system's webhook endpoint: its signing secret is shown once.
    page.click("header nav.main >> text=Webhook 通知")
    page.click("text=新建接收地址")
    page.fill("#id_url", "https://pos.nanshan-coffee.example.com/facepay/webhook")
    page.fill("#id_description", "收银系统")
    shots(page, "webhook-form")
    page.click("text=创建接收地址")
    assert page.locator("main h1").inner_text() == "Webhook 接收地址已创建"
    webhook_secret = page.locator("#webhook-secret").inner_text().strip()
    endpoint = WebhookEndpoint.objects.get(merchant=world.shop.merchant)
    assert endpoint.secret.reveal() == webhook_secret
    shots(page, "webhook-secret-once")
    page.click("main >> text=完成")
    assert webhook_secret not in page.content()
    page.click("header nav.main >> text=Webhook 通知")
    assert "pos.nanshan-coffee.example.com" in page.locator("#webhook-endpoints").inner_text()
    shots(page, "webhooks")
    docs_shots(page, "webhooks")


# --- merchant staff ------------------------------------------------------------------------------------------------


def test_merchant_staff(new_page, world, shots):
    base, page = world.base, new_page()
    login(page, base, "nanshan-cashier")
    navigation = page.locator("header nav.main").inner_text()
    assert "支付订单" in navigation and "退款" in navigation
    assert "用户" not in navigation and "Webhook" not in navigation and "操作日志" not in navigation

    # Their merchant's payments and refunds only.
    page.click("header nav.main >> text=支付订单")
    listed = main_text(page)
    assert world.payment(1280).out_trade_no in listed
    for order in Payment.objects.filter(merchant=world.other.merchant):
        assert order.out_trade_no not in listed
    assert page.locator("#merchant").count() == 0  # one merchant: no merchant filter
    shots(page, "payments")
    page.click("header nav.main >> text=退款")
    assert world.stuck_refund.out_refund_no in main_text(page)
    own_refunds = Refund.objects.filter(payment__merchant=world.shop.merchant)
    assert page.locator("#refunds tbody tr").count() == own_refunds.count()
    for refund in Refund.objects.filter(payment__merchant=world.other.merchant):
        assert refund.out_refund_no not in main_text(page)
    shots(page, "refunds")

    # No refund, settle or refresh buttons, on a paid payment or one needing attention.
    for payment in (world.payment(2560), world.attention):
        page.goto(f"{base}/payments/{payment.pk}/")
        assert page.locator("main a.button:text-is('退款')").count() == 0
        assert page.locator("main form[action*='/resolve'], main form[action$='/refresh']").count() == 0
    shots(page, "payment-read-only")

    # A page or an action beyond the role: the console's 403 page, in Chinese.
    response = page.goto(f"{base}/users/")
    assert response.status == 403
    assert page.locator("main h1").inner_text() == "您无权访问此页面"
    assert "您的角色无法管理用户。" in main_text(page)
    assert page.locator("header nav.main").is_visible()  # the console's frame, not a bare error
    shots(page, "users-403")
    page.goto(f"{base}/payments/{world.attention.pk}/")
    with page.expect_navigation() as navigation_info:  # the settle form's POST, made by hand
        page.evaluate(
            """() => {
                const form = Object.assign(document.createElement('form'), {method: 'post', action: 'resolve'});
                const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
                for (const [name, value] of [['csrfmiddlewaretoken', token], ['outcome', 'REVERSED'], ['note', 'x']]) {
                    form.append(Object.assign(document.createElement('input'), {type: 'hidden', name, value}));
                }
                document.body.append(form);
                form.submit();
            }"""
        )
    assert navigation_info.value.status == 403
    assert page.locator("main h1").inner_text() == "您无权访问此页面"
    assert "您的角色无法处理待人工处理的支付订单。" in main_text(page)
    shots(page, "settle-403")
    world.attention.refresh_from_db()
    assert world.attention.status == "ATTENTION"
