"""Console: dashboard, payments (list, detail, CSV, actions) and audit log — per role, scoped, audited."""

import csv
import io
import re
from datetime import datetime, timedelta

import pytest

from payments.models import Payment, Refund
from portal.models import AuditLog, Merchant, StaffMembership, Store
from tests.factories import login_verified, make_user

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role


@pytest.fixture
def two_shops(make_shop):
    a, b = make_shop(), make_shop()
    users = {
        "admin_a": make_user("admin-a", role=Role.MERCHANT_ADMIN, merchant=a.merchant),
        "staff_a": make_user("staff-a", role=Role.MERCHANT_STAFF, merchant=a.merchant),
        "reviewer_a": make_user("reviewer-a", role=Role.PROVIDER_REVIEWER, provider=a.merchant.provider),
        "provider_admin_a": make_user("padmin-a", role=Role.PROVIDER_ADMIN, provider=a.merchant.provider),
        "admin_b": make_user("admin-b", role=Role.MERCHANT_ADMIN, merchant=b.merchant),
    }
    return a, b, users


def login(client, user):
    login_verified(client, user)


def test_pages_need_login(client, db):
    for url in ("/", "/payments/", "/audit/", "/payments/export.csv"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


def test_dashboard_shows_todays_volume_and_attention_queue(client, two_shops):
    a, b, users = two_shops
    paid = a.pay(1234)
    stuck = a.pay(1109)  # REVERSE_EXPIRE → ATTENTION
    a.run_worker(90)
    b.pay(99900)  # another merchant: never counted for A
    login(client, users["admin_a"])

    html = client.get("/").content.decode()

    assert "¥12.34" in html  # today's paid volume: only the successful 12.34
    assert "¥999.00" not in html
    assert stuck["out_trade_no"] in html.split('id="attention-queue"')[1]
    assert paid["out_trade_no"] in html
    live = client.get("/dashboard/live")
    assert live.status_code == 200 and paid["out_trade_no"] in live.content.decode()


def test_payment_list_filters_search_and_scoping(client, two_shops):
    a, b, users = two_shops
    ok = a.pay(1000)
    failed = a.pay(1104)
    other = b.pay(1000)
    login(client, users["admin_a"])

    everything = client.get("/payments/").content.decode()
    assert ok["out_trade_no"] in everything and failed["out_trade_no"] in everything
    assert other["out_trade_no"] not in everything
    only_failed = client.get("/payments/?status=FAILED").content.decode()
    assert failed["out_trade_no"] in only_failed and ok["out_trade_no"] not in only_failed
    searched = client.get(f"/payments/?q={ok['out_trade_no'][:-1]}").content.decode()  # the number's beginning
    assert ok["out_trade_no"] in searched and failed["out_trade_no"] not in searched


def test_csv_export_is_the_filtered_scoped_set(client, two_shops):
    a, b, users = two_shops
    ok = a.pay(1000)
    a.pay(1104)
    b.pay(1000)
    login(client, users["admin_a"])
    response = client.get("/payments/export.csv?status=SUCCESS")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = body.strip().splitlines()
    assert lines[0].startswith("商户订单号,创建时间（北京时间）,支付时间（北京时间）,状态,订单金额（元）")
    assert len(lines) == 2 and lines[1].startswith(ok["out_trade_no"] + ",")
    assert ",10.00,0.00," in lines[1]


def test_foreign_payment_is_404_for_every_page_and_action(client, two_shops):
    a, b, users = two_shops
    foreign = b.payment(b.pay(1000)["out_trade_no"])
    login(client, users["admin_a"])
    for url in (f"/payments/{foreign.pk}/", f"/payments/{foreign.pk}/status", f"/payments/{foreign.pk}/refund"):
        assert client.get(url).status_code == 404, url
    for url in ("refund", "reverse", "refresh", "resolve"):
        assert client.post(f"/payments/{foreign.pk}/{url}", {"amount": "1"}).status_code in (403, 404), url
    assert foreign.refunds.count() == 0


def test_detail_shows_redacted_timeline(client, two_shops):
    a, _, users = two_shops
    order = a.pay(1000, auth_code="134567890123456789")
    login(client, users["staff_a"])
    html = client.get(f"/payments/{a.payment(order['out_trade_no']).pk}/").content.decode()
    assert "向微信支付下单" in html  # the payment call, by name
    assert "134567890123456789" not in html
    assert "1345***" in html
    assert f"/payments/{a.payment(order['out_trade_no']).pk}/refund" not in html  # staff: no refund button


def test_refund_with_confirmation_step_then_resolves(client, two_shops):
    a, _, users = two_shops
    payment = a.payment(a.pay(5000)["out_trade_no"])
    login(client, users["admin_a"])
    url = f"/payments/{payment.pk}/refund"

    first = client.post(url, {"amount": "12.34", "reason": "少送一杯"})
    assert first.status_code == 200 and "¥12.34" in first.content.decode()
    assert payment.refunds.count() == 0  # nothing happens before the confirmation
    form = confirmation(first)
    assert form["confirmed"] == "1" and len(form["request_key"]) >= 16
    confirmed = client.post(url, form)
    assert confirmed.status_code == 302
    refund = payment.refunds.get()
    assert (refund.refund_fee, refund.reason, refund.created_by) == (1234, "少送一杯", users["admin_a"])
    # The same confirmation again (double click, back + resubmit): the same refund, not a second one.
    assert client.post(url, form).status_code == 302
    assert payment.refunds.count() == 1
    payment.refresh_from_db()
    assert payment.reserved_refund_fee == 1234
    # A new confirmation of the same amount is a new refund (a second partial refund is legitimate).
    assert client.post(url, confirmation(client.post(url, {"amount": "12.34"}))).status_code == 302
    assert payment.refunds.count() == 2
    a.run_worker(30)
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCESS
    assert AuditLog.objects.filter(action="payment.refund", actor=users["admin_a"]).count() == 2  # not the replay


def test_a_confirmation_whose_refund_failed_offers_a_new_one(client, two_shops, monkeypatch):
    from payments import channels
    from payments.channels import Answer
    from payments.gateways.base import Outcome

    a, _, users = two_shops
    payment = a.payment(a.pay(5000)["out_trade_no"])
    login(client, users["admin_a"])
    url = f"/payments/{payment.pk}/refund"
    form = confirmation(client.post(url, {"amount": "10.00"}))
    with monkeypatch.context() as patch:
        patch.setattr(channels, "refund_submit", lambda **kw: Answer(outcome=Outcome.REJECTED, code="NOTENOUGH"))
        assert client.post(url, form).status_code == 302
        a.run_worker(30)
    assert payment.refunds.get().status == Refund.Status.FAILED
    # Back, and the same confirmation again: not "requested" (nothing would happen), but a new confirmation.
    again = client.post(url, form)
    assert again.status_code == 200 and "NOTENOUGH" in again.content.decode()
    fresh = confirmation(again)
    assert fresh["request_key"] != form["request_key"] and fresh["amount"] == "10.00"
    assert client.post(url, fresh).status_code == 302
    a.run_worker(30)
    assert sorted(payment.refunds.values_list("status", flat=True)) == ["FAILED", "SUCCESS"]
    payment.refresh_from_db()
    assert payment.refunded_fee == 1000


def confirmation(page) -> dict[str, str]:
    """The hidden fields of a refund confirmation page, as the browser would post them."""
    html = page.content.decode()
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))


@pytest.mark.parametrize("amount", ["0", "-1", "abc", "12.345", "50.01", "1e30", "9" * 29])
@pytest.mark.parametrize("step", ["continue", "confirm"])
def test_bad_refund_amount_is_a_field_error_and_changes_nothing(client, two_shops, amount, step):
    a, _, users = two_shops
    payment = a.payment(a.pay(5000)["out_trade_no"])
    login(client, users["admin_a"])
    form = {"amount": amount}
    if step == "confirm":  # a confirmation whose amount was edited in the page
        form = {**confirmation(client.post(f"/payments/{payment.pk}/refund", {"amount": "1.00"})), **form}
    response = client.post(f"/payments/{payment.pk}/refund", form)
    assert response.status_code == 400
    assert 'class="field-error"' in response.content.decode()
    payment.refresh_from_db()
    assert (payment.refunds.count(), payment.reserved_refund_fee) == (0, 0)


def test_a_refusal_from_the_service_reads_in_the_consoles_language(client, two_shops):
    a, _, users = two_shops
    payment = a.payment(a.pay(5000)["out_trade_no"])
    login(client, users["admin_a"])
    url = f"/payments/{payment.pk}/refund"
    form = {**confirmation(client.post(url, {"amount": "1.00"})), "amount": "50.01"}  # edited after "continue"
    body = client.post(url, form).content.decode()
    assert "超过了可退款的余额" in body and "fen" not in body


def test_confirmation_without_its_key_refunds_nothing(client, two_shops):
    a, _, users = two_shops
    payment = a.payment(a.pay(5000)["out_trade_no"])
    login(client, users["admin_a"])
    response = client.post(f"/payments/{payment.pk}/refund", {"amount": "1.00", "confirmed": "1"})
    assert response.status_code == 400
    assert payment.refunds.count() == 0


def test_reviewer_and_staff_cannot_refund_or_reverse(client, two_shops):
    a, _, users = two_shops
    payment = a.payment(a.pay(5000)["out_trade_no"])
    for role in ("reviewer_a", "staff_a"):
        login(client, users[role])
        assert client.get(f"/payments/{payment.pk}/refund").status_code == 403
        assert client.post(f"/payments/{payment.pk}/refund", {"amount": "1", "confirmed": "1"}).status_code == 403
        assert client.post(f"/payments/{payment.pk}/reverse").status_code == 403
    assert payment.refunds.count() == 0
    payment.refresh_from_db()
    assert payment.status == "SUCCESS"


def test_staff_is_read_only_but_reviewer_resolves_attention(client, two_shops):
    a, _, users = two_shops
    stuck = a.payment(a.pay(1109)["out_trade_no"])
    a.run_worker(90)
    stuck.refresh_from_db()
    assert stuck.status == "ATTENTION"

    login(client, users["staff_a"])
    assert client.post(f"/payments/{stuck.pk}/resolve", {"outcome": "FAILED", "note": "x"}).status_code == 403
    # Settling an anomaly is the service provider's work: the merchant admin may ask the channel, not
    # record the outcome of its own payment.
    login(client, users["admin_a"])
    html = client.get(f"/payments/{stuck.pk}/").content.decode()
    assert f"/payments/{stuck.pk}/refresh" in html and f"/payments/{stuck.pk}/resolve" not in html
    assert client.post(f"/payments/{stuck.pk}/resolve", {"outcome": "FAILED", "note": "x"}).status_code == 403
    login(client, users["reviewer_a"])
    settle = client.get(f"/payments/{stuck.pk}/").content.decode()
    assert '<option value="REVERSED">已撤销</option>' in settle  # the outcome by its name, not its code
    missing_note = client.post(f"/payments/{stuck.pk}/resolve", {"outcome": "FAILED", "note": ""}, follow=True)
    assert "请写明核对了什么" in missing_note.content.decode()  # the reason, in the console's language
    stuck.refresh_from_db()
    assert stuck.status == "ATTENTION"
    client.post(f"/payments/{stuck.pk}/resolve", {"outcome": "REVERSED", "note": "商户平台显示已撤销"})
    stuck.refresh_from_db()
    assert stuck.status == "REVERSED"
    entry = AuditLog.objects.get(action="payment.resolve")
    assert (entry.actor, entry.details["outcome"]) == (users["reviewer_a"], "REVERSED")


def test_staff_reverse_of_a_paid_payment(client, two_shops):
    a, _, users = two_shops
    payment = a.payment(a.pay(3000)["out_trade_no"])
    login(client, users["admin_a"])
    client.post(f"/payments/{payment.pk}/reverse")
    a.run_worker(20)
    payment.refresh_from_db()
    assert payment.status == "REVERSED"
    assert AuditLog.objects.filter(action="payment.reverse", actor=users["admin_a"]).exists()


def test_staff_reverse_is_neither_offered_nor_accepted_after_the_reverse_window(client, make_shop):
    shop = make_shop(Merchant.Channel.UMPAY)  # UMF reverses on the order's day only
    admin = make_user("umf-admin", role=Role.MERCHANT_ADMIN, merchant=shop.merchant)
    payment = shop.payment(shop.pay(3000)["out_trade_no"])
    login(client, admin)
    assert f"/payments/{payment.pk}/reverse" in client.get(f"/payments/{payment.pk}/").content.decode()
    made = datetime.strptime(payment.order_time, "%Y%m%d%H%M%S") - timedelta(days=1)
    Payment.objects.filter(pk=payment.pk).update(order_time=f"{made:%Y%m%d%H%M%S}")
    assert f"/payments/{payment.pk}/reverse" not in client.get(f"/payments/{payment.pk}/").content.decode()
    client.post(f"/payments/{payment.pk}/reverse")
    shop.run_worker(20)
    payment.refresh_from_db()
    assert (payment.status, payment.next_check_at) == ("SUCCESS", None)
    assert not AuditLog.objects.filter(action="payment.reverse").exists()


def test_staff_refresh_is_audited(client, two_shops):
    a, _, users = two_shops
    payment = a.payment(a.pay(1000)["out_trade_no"])
    login(client, users["reviewer_a"])
    assert client.post(f"/payments/{payment.pk}/refresh").status_code == 302
    assert payment.events.filter(action="orderquery", actor_user=users["reviewer_a"]).exists()
    entry = AuditLog.objects.get(action="payment.refresh")
    assert (entry.actor, entry.details["status"]) == (users["reviewer_a"], "SUCCESS")


def test_csv_export_writes_text_that_looks_like_a_formula_as_text(client, two_shops):
    a, _, users = two_shops
    Store.objects.filter(pk=a.device.store_id).update(store_id='=HYPERLINK("http://x.test")')
    a.pay(1000)
    login(client, users["provider_admin_a"])
    response = client.get("/payments/export.csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    store_id = rows[0].index("门店编号")
    assert rows[1][store_id] == '\'=HYPERLINK("http://x.test")'
    assert rows[1][rows[0].index("订单金额（元）")] == "10.00"  # an amount is not guarded: it stays a number


def test_audit_log_is_scoped(client, two_shops):
    a, b, users = two_shops
    a.payment(a.pay(3000)["out_trade_no"])
    from payments import services

    pa = a.payment(a.pay(2000)["out_trade_no"])
    pb = b.payment(b.pay(2000)["out_trade_no"])
    services.refund_create(payment=pa, refund_fee=100, reason="a", user=users["admin_a"])
    services.refund_create(payment=pb, refund_fee=100, reason="b", user=users["admin_b"])
    login(client, users["reviewer_a"])
    html = client.get("/audit/?action=payment.refund").content.decode()
    assert pa.out_trade_no in html and pb.out_trade_no not in html
    login(client, users["staff_a"])
    assert client.get("/audit/").status_code == 403


def test_chinese_by_default_english_on_request(client, two_shops):
    _, _, users = two_shops
    login(client, users["admin_a"])
    assert "支付" in client.get("/payments/").content.decode()
    client.cookies["django_language"] = "en"
    assert "Export CSV" in client.get("/payments/").content.decode()
