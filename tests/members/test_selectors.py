"""Staff reads: role scoping (members_visible_to) and a member's linked payments / PayScore orders."""

import pytest

from members import selectors, services
from members.models import Member
from payments.models import Payment
from portal.models import StaffMembership
from tests.factories import MerchantFactory, ServiceProviderFactory, StoreFactory, make_device, make_user

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


@pytest.fixture
def world():
    provider_a, provider_b = ServiceProviderFactory(), ServiceProviderFactory()
    merchants = {
        "A1": MerchantFactory(provider=provider_a, name="A1"),
        "A2": MerchantFactory(provider=provider_a, name="A2"),
        "B1": MerchantFactory(provider=provider_b, name="B1"),
    }
    devices = {name: make_device(StoreFactory(merchant=m))[0] for name, m in merchants.items()}
    for name, device in devices.items():
        # the same WeChat user at every merchant, plus one merchant-specific user
        services.member_identify(device=device, data=services.IdentifyInput(openid=OPENID))
        services.member_identify(device=device, data=services.IdentifyInput(openid=f"o{name}"))
    return {"provider_a": provider_a, "provider_b": provider_b, **merchants}


def visible(user):
    return sorted((m.merchant.name, m.openid) for m in selectors.members_visible_to(user))


def test_merchant_admin_sees_only_own_members(world):
    user = make_user("ma", role=Role.MERCHANT_ADMIN, merchant=world["A1"])

    assert visible(user) == sorted([("A1", OPENID), ("A1", "oA1")])
    assert sorted(e.member.merchant.name for e in selectors.member_events_visible_to(user)) == ["A1", "A1"]


def test_another_merchants_admin_cannot_see_them(world):
    user = make_user("mb", role=Role.MERCHANT_STAFF, merchant=world["B1"])

    assert visible(user) == sorted([("B1", OPENID), ("B1", "oB1")])
    assert not selectors.members_visible_to(user).filter(merchant=world["A1"]).exists()


def test_provider_staff_see_their_providers_merchants_members(world):
    user = make_user("pa", role=Role.PROVIDER_REVIEWER, provider=world["provider_a"])

    assert visible(user) == sorted([("A1", OPENID), ("A1", "oA1"), ("A2", OPENID), ("A2", "oA2")])


def test_superuser_sees_all_and_strangers_see_none(world):
    assert len(visible(make_user("root", superuser=True))) == 6
    assert visible(make_user("nobody")) == []
    assert list(selectors.member_events_visible_to(make_user("nobody2"))) == []


def make_payment(merchant, openid, out_trade_no):
    return Payment.objects.create(
        merchant=merchant,
        store=StoreFactory(merchant=merchant),
        channel=merchant.channel,
        method=Payment.Method.FACE,
        out_trade_no=out_trade_no,
        total_fee=100,
        body="coffee",
        openid=openid,
        request_fingerprint="x" * 64,
    )


def test_history_links_payments_by_merchant_and_openid(world):
    # given payments of this user at A1, of another user at A1, and of this user at B1
    mine_1 = make_payment(world["A1"], OPENID, "A1-1")
    mine_2 = make_payment(world["A1"], OPENID, "A1-2")
    make_payment(world["A1"], "oA1", "A1-other")
    make_payment(world["B1"], OPENID, "B1-1")
    member = Member.objects.get(merchant=world["A1"], openid=OPENID)

    history = selectors.member_history(member)

    assert sorted(p.out_trade_no for p in history.payments) == sorted([mine_1.out_trade_no, mine_2.out_trade_no])
    if selectors._service_order_model() is None:
        assert history.payscore_orders is None  # payscore.ServiceOrder not built yet
    else:
        assert list(history.payscore_orders) == []


def test_erased_member_has_no_history(world):
    make_payment(world["A1"], OPENID, "A1-1")
    member = Member.objects.get(merchant=world["A1"], openid=OPENID)
    erased = services.member_erase(member=member, actor=None, actor_label="cli")

    assert list(selectors.member_history(erased).payments) == []
