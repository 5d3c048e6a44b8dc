"""Role scoping of service orders."""

import pytest

from payscore.models import ServiceOrder
from payscore.selectors import service_orders_visible_to
from portal.models import StaffMembership
from tests.factories import MerchantFactory, StoreFactory, make_user

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role


def _order(merchant, out_order_no):
    return ServiceOrder.objects.create(
        merchant=merchant,
        store=StoreFactory(merchant=merchant),
        out_order_no=out_order_no,
        service_id="500001",
        service_introduction="租借",
        risk_fund={"name": "DEPOSIT", "amount": 100},
        time_range={"start_time": "OnAccept"},
        notify_url="http://testserver/notify/wechatpay/payscore/",
        request_fingerprint="x",
    )


def test_service_orders_visible_to_each_role():
    mine = MerchantFactory()
    sibling = MerchantFactory(provider=mine.provider)
    stranger = MerchantFactory()
    a, b, c = _order(mine, "A1"), _order(sibling, "B1"), _order(stranger, "C1")

    def visible(user):
        return set(service_orders_visible_to(user).values_list("out_order_no", flat=True))

    assert visible(make_user("ma", role=Role.MERCHANT_ADMIN, merchant=mine)) == {a.out_order_no}
    assert visible(make_user("ms", role=Role.MERCHANT_STAFF, merchant=mine)) == {a.out_order_no}
    assert visible(make_user("pa", role=Role.PROVIDER_REVIEWER, provider=mine.provider)) == {"A1", b.out_order_no}
    assert visible(make_user("root", superuser=True)) == {"A1", "B1", c.out_order_no}
    assert visible(make_user("nobody")) == set()


def test_constraints_hold_in_the_database():
    from django.db import IntegrityError, transaction

    merchant = MerchantFactory()
    order = _order(merchant, "OK1")
    for change in ({"state": "PAID"}, {"state": "CREATED", "state_description": "USER_CONFIRM"}, {"paid_amount": -1}):
        with pytest.raises(IntegrityError), transaction.atomic():
            ServiceOrder.objects.filter(pk=order.pk).update(**change)
    with pytest.raises(IntegrityError), transaction.atomic():
        _order(merchant, "OK1")
    with pytest.raises(IntegrityError), transaction.atomic():
        _order(merchant, "含中文")
