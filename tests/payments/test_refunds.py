"""Refunds: reverse when allowed, else the refund API; partial; never more than was paid; resolved to definite."""

import pytest
from django.core.management import call_command

from payments import channels, services
from payments.channels import Answer
from payments.gateways.base import Outcome
from payments.models import Refund
from portal.errors import Conflict, InvalidInput, InvalidState
from portal.models import AuditLog, ChannelCredentials, Merchant, StaffMembership
from sandbox.services import sandbox_ledger
from tests.factories import login_verified, make_user

pytestmark = pytest.mark.django_db


def refund(shop, out_trade_no, fee, reason="顾客退货"):
    return services.refund_create(
        payment=shop.payment(out_trade_no), refund_fee=fee, reason=reason, user=None, actor_label="test"
    )


def test_partial_then_rest_refund_through_the_refund_api(shop):
    order = shop.pay(10000)
    first = refund(shop, order["out_trade_no"], 3000)
    assert first.kind == Refund.Kind.REFUND  # partial: a reverse would return everything

    shop.run_worker(30)
    first.refresh_from_db()
    payment = shop.payment(order["out_trade_no"])
    assert first.status == Refund.Status.SUCCESS
    assert (payment.status, payment.refunded_fee) == ("PARTIALLY_REFUNDED", 3000)

    second = refund(shop, order["out_trade_no"], 7000)
    shop.run_worker(30)
    second.refresh_from_db()
    payment.refresh_from_db()
    assert second.status == Refund.Status.SUCCESS
    assert (payment.status, payment.refunded_fee) == ("REFUNDED", 10000)
    calls = shop.upstream_calls()
    assert calls.count("secapi/pay/refund") == 2
    assert calls.count("pay/refundquery") >= 2
    ledger = sandbox_ledger(now=shop.clock.now())[order["out_trade_no"]]
    assert (ledger["charged"], ledger["refunded"]) == (0, 10000)


def test_full_refund_inside_the_window_is_a_reverse(shop, monkeypatch):
    sent = []
    reverse = channels.reverse
    monkeypatch.setattr(channels, "reverse", lambda **kw: sent.append(shop.clock.now()) or reverse(**kw))
    order = shop.pay(5000)
    full = refund(shop, order["out_trade_no"], 5000)
    assert full.kind == Refund.Kind.REVERSE
    shop.run_worker(5)
    full.refresh_from_db()
    assert (full.status, sent) == (Refund.Status.PENDING, [])  # WeChat: no reverse within 15 s of the payment
    shop.run_worker(15)
    full.refresh_from_db()
    payment = shop.payment(order["out_trade_no"])
    assert len(sent) == 1 and (sent[0] - payment.submitted_at).total_seconds() >= 15
    assert full.status == Refund.Status.SUCCESS
    assert (payment.status, payment.refunded_fee) == ("REVERSED", 5000)
    assert "secapi/pay/refund" not in shop.upstream_calls()
    assert sandbox_ledger(now=shop.clock.now())[order["out_trade_no"]]["charged"] == 0


def test_refund_more_than_paid_is_refused_and_reserves_nothing(shop):
    order = shop.pay(1000)
    refund(shop, order["out_trade_no"], 600)
    with pytest.raises(InvalidInput) as error:
        refund(shop, order["out_trade_no"], 500)
    assert error.value.code == "REFUND_EXCEEDS_PAYMENT"
    assert error.value.details == {"refund_fee": "At most 400 fen can still be refunded."}
    payment = shop.payment(order["out_trade_no"])
    assert payment.reserved_refund_fee == 600
    assert payment.refunds.count() == 1


def test_unpaid_payment_cannot_be_refunded(shop):
    order = shop.pay(1104)  # NOTENOUGH → FAILED
    with pytest.raises(InvalidState):
        refund(shop, order["out_trade_no"], 100)


@pytest.mark.parametrize("fee", [0, -1, True, "100"])
def test_refund_fee_must_be_positive_integer(shop, fee):
    order = shop.pay(1000)
    with pytest.raises(InvalidInput):
        refund(shop, order["out_trade_no"], fee)


def test_umpay_partial_refund(make_shop):
    shop = make_shop(Merchant.Channel.UMPAY)
    order = shop.pay(3000)
    r = refund(shop, order["out_trade_no"], 1000)
    shop.run_worker(30)
    r.refresh_from_db()
    assert r.status == Refund.Status.SUCCESS
    assert shop.payment(order["out_trade_no"]).status == "PARTIALLY_REFUNDED"
    assert "pay/refund" in shop.upstream_calls()


def test_refund_command_and_audit(shop):
    order = shop.pay(2000)
    call_command(
        "payment_refund",
        "--merchant",
        str(shop.merchant.pk),
        "--out-trade-no",
        order["out_trade_no"],
        "--fee",
        "500",
        "--reason",
        "partial",
        stdout=open("/dev/null", "w"),
    )
    entry = AuditLog.objects.get(action="payment.refund")
    assert entry.details["refund_fee"] == 500
    assert entry.actor_label == "cli"


# --- staff API scoping -------------------------------------------------------------------------------------------


def test_staff_refund_api_roles_and_scoping(client, make_shop):
    shop_a, shop_b = make_shop(), make_shop()
    order_a = shop_a.pay(1000)
    order_b = shop_b.pay(1000)
    payment_a, payment_b = shop_a.payment(order_a["out_trade_no"]), shop_b.payment(order_b["out_trade_no"])
    admin_a = make_user("admin-a", role=StaffMembership.Role.MERCHANT_ADMIN, merchant=shop_a.merchant)
    staff_a = make_user("staff-a", role=StaffMembership.Role.MERCHANT_STAFF, merchant=shop_a.merchant)
    reviewer = make_user("rev", role=StaffMembership.Role.PROVIDER_REVIEWER, provider=shop_a.merchant.provider)

    login_verified(client, admin_a)
    other = client.post(
        f"/api/staff/v1/payments/{payment_b.pk}/refunds", {"refund_fee": 100}, content_type="application/json"
    )
    assert other.status_code == 404  # another merchant's payment does not exist for this user
    own = client.post(
        f"/api/staff/v1/payments/{payment_a.pk}/refunds",
        {"refund_fee": 100, "reason": "r"},
        content_type="application/json",
    )
    assert own.status_code == 201, own.text
    assert own.json()["refund_fee"] == 100

    for user in (staff_a, reviewer):
        login_verified(client, user)
        denied = client.post(
            f"/api/staff/v1/payments/{payment_a.pk}/refunds", {"refund_fee": 100}, content_type="application/json"
        )
        assert denied.status_code == 403
        assert denied.json()["code"] == "ROLE_CANNOT_REFUND"
    assert payment_b.refunds.count() == 0
    assert payment_a.refunds.count() == 1


def test_staff_refund_api_request_key_makes_a_retry_safe(client, shop):
    payment = shop.payment(shop.pay(1000)["out_trade_no"])
    login_verified(client, make_user("admin", role=StaffMembership.Role.MERCHANT_ADMIN, merchant=shop.merchant))
    url = f"/api/staff/v1/payments/{payment.pk}/refunds"
    body = {"refund_fee": 300, "request_key": "till-7-20261201-0001"}
    first = client.post(url, body, content_type="application/json")
    retry = client.post(url, body, content_type="application/json")  # the answer to the first was lost
    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json()["out_refund_no"] == first.json()["out_refund_no"]
    assert first.json()["request_key"] == "till-7-20261201-0001"
    changed = client.post(url, {**body, "refund_fee": 400}, content_type="application/json")
    assert (changed.status_code, changed.json()["code"]) == (409, "REQUEST_KEY_CONFLICT")
    bad = client.post(url, {**body, "request_key": "has space"}, content_type="application/json")
    assert bad.status_code == 400 and "request_key" in bad.json()["details"]
    text = client.post(url, {**body, "refund_fee": "300"}, content_type="application/json")  # money is a JSON integer
    assert text.status_code == 400 and "refund_fee" in text.json()["details"]
    payment.refresh_from_db()
    assert (payment.refunds.count(), payment.reserved_refund_fee) == (1, 300)


def test_only_the_secapi_calls_decrypt_the_client_certificate(shop, monkeypatch):
    """reverse and refund go to secapi/*, which needs the API client certificate (mutual TLS in production; the
    sandbox cannot check it): their configs carry the certificate and key. micropay, orderquery and refundquery
    leave both encrypted."""
    from payments.gateways import wechatpay_v2

    carried: dict[str, set[bool]] = {}

    def spying(name, real):
        def spy(config, *args, **kwargs):
            carried.setdefault(name, set()).add(bool(config.client_cert_pem and config.client_key_pem))
            return real(config, *args, **kwargs)

        return spy

    for name in ("micropay", "orderquery", "reverse", "refund", "refundquery"):
        monkeypatch.setattr(wechatpay_v2, name, spying(name, getattr(wechatpay_v2, name)))

    partly = shop.pay(10000)
    refund(shop, partly["out_trade_no"], 3000)
    queried = shop.pay(1101)  # USERPAYING, then paid: found by orderquery
    cancelled = shop.pay(1102)  # USERPAYING, never paid: reversed after the cancel, once WeChat lets it (45 s)
    shop.terminal.post(f"payments/{cancelled['out_trade_no']}/cancel")
    shop.run_worker(70)

    assert shop.payment(partly["out_trade_no"]).status == "PARTIALLY_REFUNDED"
    assert shop.payment(queried["out_trade_no"]).status == "SUCCESS"
    assert shop.payment(cancelled["out_trade_no"]).status == "REVERSED"
    assert carried == {
        "micropay": {False},
        "orderquery": {False},
        "refund": {True},
        "refundquery": {False},
        "reverse": {True},
    }


def test_same_out_trade_no_at_two_merchants_both_refund(make_shop):
    """out_trade_no is unique per merchant, and so is the out_refund_no made from it."""
    wechat, umf = make_shop(Merchant.Channel.WECHAT_DIRECT), make_shop(Merchant.Channel.UMPAY)
    for shop in (wechat, umf):
        assert shop.pay(1000, out_trade_no="SAME1")["status"] == "SUCCESS"
        assert refund(shop, "SAME1", 100).out_refund_no == "SAME1R01"
        shop.run_worker(30)
        assert shop.payment("SAME1").refunded_fee == 100


def test_request_key_makes_a_repeated_refund_request_the_same_refund(shop):
    order = shop.pay(5000)
    payment = shop.payment(order["out_trade_no"])
    first = services.refund_create(payment=payment, refund_fee=1000, user=None, actor_label="t", request_key="k" * 20)
    again = services.refund_create(payment=payment, refund_fee=1000, user=None, actor_label="t", request_key="k" * 20)
    assert again.pk == first.pk
    with pytest.raises(Conflict) as error:
        services.refund_create(payment=payment, refund_fee=2000, user=None, actor_label="t", request_key="k" * 20)
    assert error.value.code == "REQUEST_KEY_CONFLICT"
    other = services.refund_create(payment=payment, refund_fee=1000, user=None, actor_label="t", request_key="j" * 20)
    assert other.pk != first.pk
    payment.refresh_from_db()
    assert (payment.refunds.count(), payment.reserved_refund_fee) == (2, 2000)
    with pytest.raises(InvalidInput):
        services.refund_create(payment=payment, refund_fee=1, user=None, actor_label="t", request_key="short")


def test_request_key_replay_after_the_payment_is_fully_refunded_returns_the_refund(shop):
    order = shop.pay(3000)
    payment = shop.payment(order["out_trade_no"])
    first = services.refund_create(payment=payment, refund_fee=3000, user=None, actor_label="t", request_key="r" * 16)
    shop.run_worker(30)
    assert shop.payment(order["out_trade_no"]).status == "REVERSED"
    again = services.refund_create(payment=payment, refund_fee=3000, user=None, actor_label="t", request_key="r" * 16)
    assert again.pk == first.pk


def test_refund_whose_channel_call_raises_is_recorded_and_ends_in_attention(shop, settings):
    """Credentials removed after the payment: every refund call raises while it is built. Each attempt is an event
    and counts, so the refund ends in ATTENTION after REFUND_MAX_ATTEMPTS instead of being re-driven forever."""
    settings.REFUND_MAX_ATTEMPTS = 4
    order = shop.pay(1000)
    made = refund(shop, order["out_trade_no"], 100)
    ChannelCredentials.objects.filter(merchant=shop.merchant).delete()
    shop.run_worker(300)
    made.refresh_from_db()
    assert (made.status, made.attempts) == (Refund.Status.ATTENTION, 4)
    codes = list(made.events.filter(action="refund").values_list("code", flat=True))
    assert codes == ["CHANNEL_NOT_CONFIGURED"] * 4
    payment = shop.payment(order["out_trade_no"])
    assert (payment.reserved_refund_fee, payment.refunded_fee) == (100, 0)  # kept: a person settles it


def test_a_late_refusal_does_not_undo_a_refund_accepted_meanwhile(shop, monkeypatch):
    """If the lease ran out during a slow call and another worker had the refund accepted, the first call's late
    REJECTED answer is recorded only: the refund stays PROCESSING with its amount reserved."""
    order = shop.pay(1000)
    made = refund(shop, order["out_trade_no"], 400)

    def slow_refusal(*, refund):
        Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.PROCESSING)  # the other worker's success
        return Answer(outcome=Outcome.REJECTED, code="NOTENOUGH", message="late")

    monkeypatch.setattr(channels, "refund_submit", slow_refusal)
    services.refund_process(refund_id=made.pk, now=shop.clock.now())
    made.refresh_from_db()
    payment = shop.payment(order["out_trade_no"])
    assert made.status == Refund.Status.PROCESSING
    assert payment.reserved_refund_fee == 400
    assert made.events.filter(action="refund", code="NOTENOUGH").exists()
