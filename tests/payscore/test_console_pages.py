"""Console pages for PayScore orders: list/detail/timeline, complete with line items, cancel, sync, refresh."""

import pytest

from portal.models import AuditLog, StaffMembership
from sandbox import services as sandbox
from tests.factories import login_verified, make_user

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role


@pytest.fixture
def confirmed(ps):
    assert ps.create("PS-C1").status_code == 201
    sandbox.sandbox_payscore_user_confirm("PS-C1")
    ps.deliver()
    order = ps.order("PS-C1")
    assert (order.state, order.state_description) == ("DOING", "USER_CONFIRM")
    return order


def login(client, user):
    login_verified(client, user)


def test_list_and_detail_are_scoped(client, ps, confirmed, make_shop):
    admin = make_user("ps-admin", role=Role.MERCHANT_ADMIN, merchant=ps.merchant)
    stranger = make_user("other-admin", role=Role.MERCHANT_ADMIN, merchant=make_shop().merchant)
    login(client, admin)
    assert "PS-C1" in client.get("/payscore/").content.decode()
    detail = client.get(f"/payscore/{confirmed.pk}/").content.decode()
    assert "向微信支付创建支付分订单" in detail  # the timeline
    login(client, stranger)
    assert "PS-C1" not in client.get("/payscore/").content.decode()
    assert client.get(f"/payscore/{confirmed.pk}/").status_code == 404
    assert client.post(f"/payscore/{confirmed.pk}/cancel", {"reason": "x"}).status_code == 404


def test_complete_with_line_items(client, ps, confirmed):
    admin = make_user("ps-admin", role=Role.MERCHANT_ADMIN, merchant=ps.merchant)
    login(client, admin)
    response = client.post(
        f"/payscore/{confirmed.pk}/complete",
        {"name": ["租借费", "超时费"], "amount": ["3.00", "1.50"], "description": ["", "30分钟"]},
    )
    assert response.status_code == 302
    confirmed.refresh_from_db()
    assert confirmed.total_amount == 450
    assert confirmed.state_description == "MCH_COMPLETE" or confirmed.state == "DONE"
    assert AuditLog.objects.filter(action__startswith="payscore.complete", actor=admin).exists()


@pytest.mark.parametrize(("amounts", "status"), [(["abc"], 400), (["12.345"], 400), (["200.00"], 400)])
def test_bad_or_excessive_amounts_send_nothing(client, ps, confirmed, amounts, status):
    admin = make_user("ps-admin", role=Role.MERCHANT_ADMIN, merchant=ps.merchant)
    login(client, admin)
    calls_before = len(ps.upstream_calls())
    response = client.post(
        f"/payscore/{confirmed.pk}/complete", {"name": ["租借费"], "amount": amounts, "description": [""]}, follow=False
    )
    assert response.status_code == status
    confirmed.refresh_from_db()
    assert (confirmed.state, confirmed.state_description) == ("DOING", "USER_CONFIRM")  # ¥200 > the ¥99 risk fund
    assert len(ps.upstream_calls()) == calls_before


def test_cancel_and_roles(client, ps, confirmed):
    staff = make_user("ps-staff", role=Role.MERCHANT_STAFF, merchant=ps.merchant)
    reviewer = make_user("ps-rev", role=Role.PROVIDER_REVIEWER, provider=ps.merchant.provider)
    admin = make_user("ps-admin", role=Role.MERCHANT_ADMIN, merchant=ps.merchant)
    for user in (staff, reviewer):
        login(client, user)
        assert client.post(f"/payscore/{confirmed.pk}/cancel", {"reason": "用户取消"}).status_code == 403
        assert client.post(f"/payscore/{confirmed.pk}/complete", {"name": ["a"], "amount": ["1"]}).status_code == 403
    login(client, reviewer)
    assert client.post(f"/payscore/{confirmed.pk}/refresh").status_code == 302  # reviewers may refresh
    login(client, admin)
    client.post(f"/payscore/{confirmed.pk}/cancel", {"reason": "用户取消"})
    confirmed.refresh_from_db()
    assert confirmed.state == "REVOKED"
