"""Settling a refund that needs attention: a person checks the channel and records what happened (refunded, not
refunded) or sends it again under the same refund number."""

import pytest

from payments import services
from payments.models import Refund
from portal.errors import InvalidInput, InvalidState
from portal.models import AuditLog, StaffMembership
from sandbox.services import sandbox_ledger
from tests.factories import ServiceProviderFactory, login_verified, make_user

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role


def refund_in_attention(shop, fee: int = 100, total: int = 1000) -> Refund:
    """A partial refund the worker gave up on (as after REFUND_MAX_ATTEMPTS unknown answers): never sent."""
    order = shop.pay(total)
    made = services.refund_create(
        payment=shop.payment(order["out_trade_no"]), refund_fee=fee, reason="顾客退货", user=None, actor_label="test"
    )
    Refund.objects.filter(pk=made.pk).update(status=Refund.Status.ATTENTION, next_check_at=None)
    made.refresh_from_db()
    return made


def test_not_refunded_releases_the_amount_so_it_can_be_refunded_again(shop):
    made = refund_in_attention(shop)
    reviewer = make_user("reviewer", role=Role.PROVIDER_REVIEWER, provider=shop.merchant.provider)
    services.refund_resolve_attention(refund=made, outcome="FAILED", note="商户平台查无此退款", user=reviewer)

    made.refresh_from_db()
    payment = made.payment
    payment.refresh_from_db()
    assert made.status == Refund.Status.FAILED and made.next_check_at is None
    assert (payment.status, payment.reserved_refund_fee, payment.refunded_fee) == ("SUCCESS", 0, 0)
    event = made.events.get(action="refund_resolve")
    assert (event.actor, event.actor_user, event.code) == ("STAFF", reviewer, "FAILED")
    assert event.message == "商户平台查无此退款"
    audit = AuditLog.objects.get(action="refund.resolve")
    assert audit.details["outcome"] == "FAILED" and audit.details["out_refund_no"] == made.out_refund_no
    again = services.refund_create(payment=payment, refund_fee=1000, reason="全额", user=None, actor_label="test")
    assert again.refund_fee == 1000  # the whole amount is refundable again


def test_refunded_counts_the_refund_on_the_payment(shop):
    made = refund_in_attention(shop)
    services.refund_resolve_attention(refund=made, outcome="SUCCESS", note="商户平台显示退款成功", user=None)
    made.refresh_from_db()
    payment = made.payment
    payment.refresh_from_db()
    assert made.status == Refund.Status.SUCCESS
    assert (payment.status, payment.refunded_fee, payment.reserved_refund_fee) == ("PARTIALLY_REFUNDED", 100, 100)
    state = payment.events.filter(action="state").latest("id")
    assert (state.to_status, state.actor) == ("PARTIALLY_REFUNDED", "STAFF")


def test_send_again_refunds_once_under_the_same_number(shop):
    made = refund_in_attention(shop)
    services.refund_resolve_attention(refund=made, outcome="RETRY", note="渠道已恢复，重新发起", user=None)
    made.refresh_from_db()
    assert made.status == Refund.Status.PENDING and made.next_check_at is not None

    shop.run_worker(30)
    made.refresh_from_db()
    payment = made.payment
    payment.refresh_from_db()
    assert made.status == Refund.Status.SUCCESS
    assert (payment.status, payment.refunded_fee) == ("PARTIALLY_REFUNDED", 100)
    ledger = sandbox_ledger(now=shop.clock.now())[payment.out_trade_no]
    assert ledger["refunded"] == 100


@pytest.mark.parametrize(
    ("outcome", "note", "error"),
    [("REFUNDED", "看过了", InvalidInput), ("SUCCESS", "   ", InvalidInput), ("", "看过了", InvalidInput)],
)
def test_bad_input_changes_nothing(shop, outcome, note, error):
    made = refund_in_attention(shop)
    with pytest.raises(error):
        services.refund_resolve_attention(refund=made, outcome=outcome, note=note, user=None)
    made.refresh_from_db()
    assert made.status == Refund.Status.ATTENTION and not made.events.filter(action="refund_resolve").exists()


def test_only_refunds_in_attention_are_settled_by_hand(shop):
    made = refund_in_attention(shop)
    services.refund_resolve_attention(refund=made, outcome="SUCCESS", note="已核实", user=None)
    made.refresh_from_db()
    with pytest.raises(InvalidState):
        services.refund_resolve_attention(refund=made, outcome="FAILED", note="改主意", user=None)
    made.payment.refresh_from_db()
    assert made.payment.refunded_fee == 100


def test_console_settles_for_provider_staff_only_and_within_their_scope(client, shop):
    made = refund_in_attention(shop)
    url = f"/payments/{made.payment_id}/refunds/{made.pk}/resolve"
    form = {"outcome": "FAILED", "note": "查无此退款"}

    login_verified(client, make_user("shop-admin", role=Role.MERCHANT_ADMIN, merchant=shop.merchant))
    assert client.post(url, form).status_code == 403
    login_verified(client, make_user("other-admin", role=Role.PROVIDER_ADMIN, provider=ServiceProviderFactory()))
    assert client.post(url, form).status_code == 404
    made.refresh_from_db()
    assert made.status == Refund.Status.ATTENTION

    login_verified(client, make_user("reviewer", role=Role.PROVIDER_REVIEWER, provider=shop.merchant.provider))
    answer = client.post(url, form)
    assert answer.status_code == 302 and answer["Location"] == f"/payments/{made.payment_id}/"
    made.refresh_from_db()
    assert made.status == Refund.Status.FAILED


def test_the_payment_page_offers_the_settle_form_in_chinese(client, shop):
    from payments.views import REFUND_RESOLUTION_LABELS

    assert [value for value, _ in REFUND_RESOLUTION_LABELS] == list(services.REFUND_RESOLUTIONS)
    made = refund_in_attention(shop)
    login_verified(client, make_user("reviewer", role=Role.PROVIDER_REVIEWER, provider=shop.merchant.provider))
    page = client.get(f"/payments/{made.payment_id}/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert f'action="/payments/{made.payment_id}/refunds/{made.pk}/resolve"' in page
    assert f"处理退款 {made.out_refund_no}（¥1.00）" in page and "以同一退款单号重新发起" in page
