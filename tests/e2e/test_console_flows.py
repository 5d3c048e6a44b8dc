"""The console as people use it, in a real browser (issue 7's flows), with a screenshot at every step."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from payments import services
from payments.models import Payment, Refund
from payments.simulator import run_payment
from payments.terminal_client import TerminalClient
from portal import credentials as cred
from portal.models import Device, Merchant, StaffMembership
from sandbox.connect import sandbox_connect_merchant
from tests.factories import PASSWORD, ServiceProviderFactory, enrol_totp, make_user, totp_code

pytestmark = pytest.mark.django_db(transaction=True)
Role = StaffMembership.Role


def login(page, base: str, username: str) -> None:
    """Password, then the code of the user's authenticator (enrolled here: every role of these flows needs one)."""
    device = enrol_totp(get_user_model().objects.get(username=username))
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/account/two-factor/verify/**")
    page.fill("#id_code", totp_code(device))
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{base}/")


def drive_worker(seconds: int) -> None:
    """What the Celery worker and the beat sweeper do, run here on a clock moved forward second by second."""
    start = timezone.now()
    for offset in range(seconds + 1):
        now = start + timedelta(seconds=offset)
        payment_ids, refund_ids = services.due_work(now=now)
        for payment_id in payment_ids:
            services.payment_resolve(payment_id=payment_id, now=now)
        for refund_id in refund_ids:
            services.refund_process(refund_id=refund_id, now=now)


def test_onboard_pay_find_refund(new_page, live_sandbox, shots, tmp_path):
    base = live_sandbox.url
    provider = ServiceProviderFactory(name="华南服务商")
    make_user("sp-admin", role=Role.PROVIDER_ADMIN, provider=provider)
    page = new_page()

    # 1. The provider admin onboards a merchant with its credentials.
    login(page, base, "sp-admin")
    shots(page, "dashboard")
    page.goto(f"{base}/merchants/new/")
    page.fill("#id_name", "南山咖啡")
    page.select_option("#id_channel", "WECHAT_DIRECT")
    page.fill("#id_appid", "wxd930ea5d5a258f4f")
    page.fill("#id_mch_id", "1900000109")
    page.fill("#id_payscore_service_id", "00004000000000000000000000001")
    shots(page, "merchant-form")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/merchants/*/")
    merchant = Merchant.objects.get(name="南山咖啡")
    assert merchant.provider == provider

    key_pem, cert_pem = cred.generate_key_and_certificate("南山咖啡")
    (tmp_path / "apiclient_key.pem").write_text(key_pem)
    (tmp_path / "apiclient_cert.pem").write_text(cert_pem)
    page.goto(f"{base}/merchants/{merchant.pk}/credentials/")
    page.fill("#id_wechat_api_v2_key", "wrongLength")
    page.click("main form button[type=submit]")
    assert page.locator("#wechat_api_v2_key-error").is_visible()  # the error sits next to its field
    shots(page, "credentials-error")
    page.fill("#id_wechat_api_v2_key", "Nanshan0Coffee0Key0000000000v2ok")
    page.fill("#id_wechat_api_v3_key", "Nanshan0Coffee0Key0000000000v3ok")
    page.set_input_files("#id_wechat_private_key", str(tmp_path / "apiclient_key.pem"))
    page.set_input_files("#id_wechat_certificate", str(tmp_path / "apiclient_cert.pem"))
    page.click("main form button[type=submit]")
    page.wait_for_load_state()
    assert "PRIVATE KEY" not in page.content() and "Nanshan0Coffee" not in page.content()
    shots(page, "credentials-saved")

    # The operator exchanges keys with "WeChat" (here the sandbox), then checks the connection from the console.
    sandbox_connect_merchant(merchant)
    page.goto(f"{base}/merchants/{merchant.pk}/")
    page.click("#connection-result >> xpath=preceding::button[1]")
    page.wait_for_selector("#connection-result .badge.ok")
    shots(page, "connection-ok")

    # 2. A store and a device; the secret is shown once.
    page.goto(f"{base}/stores/new/")
    page.select_option("#id_merchant", str(merchant.pk))
    page.fill("#id_store_id", "SZ-NS-009")
    page.fill("#id_name", "南山科技园店")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/stores/*/")
    page.fill("#id_device_id", "POS-E2E-01")
    page.click("form[action$='/devices/register'] button[type=submit]")
    secret = page.locator("#device-secret").inner_text().strip()
    shots(page, "device-secret-once")
    device = Device.objects.get(device_id="POS-E2E-01")
    assert device.secret.reveal() == secret
    page.goto(f"{base}/stores/{device.store_id}/")
    assert secret not in page.content()

    # 3. The merchant admin watches the dashboard while the terminal simulator pays.
    make_user("nanshan-admin", role=Role.MERCHANT_ADMIN, merchant=merchant)
    merchant_page = new_page()
    login(merchant_page, base, "nanshan-admin")
    terminal = TerminalClient(base, device_id="POS-E2E-01", secret=secret)
    with httpx.Client(base_url=f"{base}/sandbox/") as sandbox:
        result = run_payment(terminal, sandbox=sandbox, amount=4321, method="FACE")
    assert (result.status, result.error) == ("SUCCESS", "")
    merchant_page.wait_for_selector(f"text={result.out_trade_no}", timeout=12000)  # appears without a reload
    shots(merchant_page, "dashboard-live")

    # 4. Finds it in the list, opens the timeline, refunds part of it, sees the refund resolve.
    merchant_page.goto(f"{base}/payments/?q={result.out_trade_no}")
    shots(merchant_page, "payment-list")
    merchant_page.click(f"text={result.out_trade_no}")
    merchant_page.wait_for_selector(".timeline")
    assert "向微信支付下单" in merchant_page.content()  # the payment call, in a sentence
    shots(merchant_page, "payment-timeline")
    payment = Payment.objects.get(out_trade_no=result.out_trade_no)
    merchant_page.goto(f"{base}/payments/{payment.pk}/refund")
    merchant_page.fill("#amount", "10.00")
    merchant_page.fill("#reason", "少送一杯")
    merchant_page.click("main form button[type=submit]")
    shots(merchant_page, "refund-confirm")
    assert payment.refunds.count() == 0
    merchant_page.click("main form button[type=submit]")
    merchant_page.wait_for_url(f"**/payments/{payment.pk}/")
    shots(merchant_page, "refund-processing")
    drive_worker(20)
    assert Refund.objects.get(payment=payment).status == Refund.Status.SUCCESS
    merchant_page.wait_for_selector("#payment-status .badge.ok >> nth=0")
    merchant_page.wait_for_function("() => !document.querySelector('#payment-status[hx-get]')", timeout=12000)
    shots(merchant_page, "refund-done")
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_fee) == ("PARTIALLY_REFUNDED", 1000)


def test_attention_on_dashboard_is_resolved_by_a_reviewer(new_page, live_sandbox, shots, make_shop):
    base = live_sandbox.url
    from payments import channels

    shop = make_shop()
    # This test drives payments in-process (fake clock); the browser only reads and acts on the console.
    order = shop.pay(1109)  # the reverse will be refused: REVERSE_EXPIRE
    shop.run_worker(90)
    channels.upstream_client = None
    payment = shop.payment(order["out_trade_no"])
    assert payment.status == "ATTENTION"
    make_user("reviewer", role=Role.PROVIDER_REVIEWER, provider=shop.merchant.provider)

    page = new_page()
    login(page, base, "reviewer")
    page.wait_for_selector(f"#attention-queue >> text={order['out_trade_no']}")
    shots(page, "attention-on-dashboard")
    page.click(f"#attention-queue >> text={order['out_trade_no']}")
    assert page.locator(f"a[href='/payments/{payment.pk}/refund']").count() == 0  # reviewers cannot refund
    page.select_option("#outcome", "REVERSED")
    page.fill("#note", "商户平台核实：订单已撤销")
    shots(page, "settle-form")
    page.click(f"form[action='/payments/{payment.pk}/resolve'] button[type=submit]")
    page.wait_for_selector("#payment-status .badge.muted")
    shots(page, "settled")
    payment.refresh_from_db()
    assert payment.status == "REVERSED"
    page.goto(f"{base}/")
    assert order["out_trade_no"] not in page.locator("#attention-queue").inner_text()


def test_merchant_admin_gets_404_for_another_merchants_order(new_page, live_sandbox, shots, make_shop):
    from payments import channels

    base = live_sandbox.url
    shop_a, shop_b = make_shop(), make_shop()
    foreign = shop_b.payment(shop_b.pay(1000)["out_trade_no"])
    channels.upstream_client = None
    make_user("admin-a", role=Role.MERCHANT_ADMIN, merchant=shop_a.merchant)
    page = new_page(locale="en-US")
    login(page, base, "admin-a")
    response = page.goto(f"{base}/payments/{foreign.pk}/")
    assert response.status == 404
    shots(page, "foreign-order-404")
    response = page.goto(f"{base}/payments/{foreign.pk}/refund")
    assert response.status == 404
