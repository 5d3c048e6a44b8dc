"""Console details that are easy to lose: Chinese everywhere (roles, PayScore states), readable error messages, pages
that survive odd input and sparse data, every link a role is shown opens, and personal data that erasure and the
logs must not keep."""

from __future__ import annotations

import pytest
from django.urls import reverse

from members import services as member_services
from members.models import Member
from payments.models import Payment
from payscore.models import ServiceOrder
from portal.models import StaffMembership
from tests.factories import (
    MerchantFactory,
    ServiceProviderFactory,
    StoreFactory,
    login_verified,
    make_device,
    make_user,
)

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


@pytest.fixture
def world():
    provider = ServiceProviderFactory()
    merchant = MerchantFactory(provider=provider, name="Merchant A")
    store = StoreFactory(merchant=merchant)
    device, _ = make_device(store)
    member_services.member_identify(device=device, data=member_services.IdentifyInput(openid=OPENID, nickname="小明"))
    order = ServiceOrder.objects.create(
        merchant=merchant,
        store=store,
        device=device,
        out_order_no="PS-REVIEW-1",
        service_id="500001",
        openid=OPENID,
        union_id="oUnionOfXiaoMing",
        service_introduction="租借",
        risk_fund={"name": "ESTIMATE_ORDER_COST", "amount": 10000},
        notify_url="https://example.com/notify/",
        request_fingerprint="x" * 64,
        state=ServiceOrder.State.CREATED,
    )
    return {
        "merchant": merchant,
        "store": store,
        "device": device,
        "order": order,
        "member": Member.objects.get(merchant=merchant, openid=OPENID),
        "a_admin": make_user("a_admin", role=Role.MERCHANT_ADMIN, merchant=merchant),
        "p_admin": make_user("p_admin", role=Role.PROVIDER_ADMIN, provider=provider),
    }


def zh(client, user):
    login_verified(client, user)
    client.cookies["django_language"] = "zh-hans"
    return client


# --- i18n: English text in the zh-hans console ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["a_admin", "p_admin"])
def test_role_in_the_header_is_translated(client, world, role):
    body = zh(client, world[role]).get(reverse("portal:member_list")).content.decode()

    for english in ("Merchant admin", "Provider admin"):
        assert english not in body, f"header shows the untranslated role {english!r}"


def test_payscore_state_labels_are_translated(client, world):
    user = zh(client, world["a_admin"])

    listing = user.get(reverse("portal:payscore_list")).content.decode()
    detail = user.get(reverse("portal:payscore_detail", args=[world["order"].pk])).content.decode()

    assert "Created (awaiting the user)" not in listing  # the badge and the state filter
    assert "Pending (not yet confirmed by WeChat)" not in listing  # the state filter's options
    assert "Created (awaiting the user)" not in detail


# --- feedback: readable error messages -----------------------------------------------------------------------------


def test_payscore_cancel_with_a_bad_reason_says_so_readably_and_keeps_it(client, world):
    user = zh(client, world["a_admin"])

    response = user.post(reverse("portal:payscore_cancel", args=[world["order"].pk]), {"reason": "退" * 51})
    body = response.content.decode()

    assert response.status_code == 400
    assert "ErrorDetail" not in body
    assert 'value="' + "退" * 51 + '"' in body  # what was typed is still there
    assert ServiceOrder.objects.get(pk=world["order"].pk).state == "CREATED"


def test_payscore_sync_with_a_malformed_time_says_so_readably_and_keeps_it(client, world):
    ServiceOrder.objects.filter(pk=world["order"].pk).update(state="DOING", state_description="MCH_COMPLETE")
    user = zh(client, world["a_admin"])

    response = user.post(reverse("portal:payscore_sync", args=[world["order"].pk]), {"paid_time": "yesterday"})
    body = response.content.decode()

    assert response.status_code == 400
    assert "ErrorDetail" not in body
    assert 'value="yesterday"' in body


def test_payscore_complete_with_an_unnamed_line_says_so_readably(client, world):
    ServiceOrder.objects.filter(pk=world["order"].pk).update(state="DOING", state_description="USER_CONFIRM")
    user = zh(client, world["a_admin"])

    response = user.post(
        reverse("portal:payscore_complete", args=[world["order"].pk]),
        {"name": [""], "amount": ["1.00"], "description": [""]},
    )
    body = response.content.decode()

    assert response.status_code == 400
    assert "ErrorDetail" not in body, [line for line in body.splitlines() if "ErrorDetail" in line]


# --- pages that break ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [{"start": "0001-01-01"}, {"end": "9999-12-31 23:59"}])
def test_payment_list_and_export_answer_a_date_at_the_calendars_edge(client, world, params):
    """A date at the edge of the calendar (which turns into an out-of-range date-time once moved to UTC) is a visible
    refusal or a filter, never a server error."""
    Payment.objects.create(
        merchant=world["merchant"], store=world["store"], channel=world["merchant"].channel,
        method=Payment.Method.FACE, out_trade_no="REVIEW-PAY-1", total_fee=100, body="x", request_fingerprint="x" * 64,
    )  # fmt: skip
    client.raise_request_exception = False
    user = zh(client, world["a_admin"])

    listing = user.get(reverse("portal:payment_list"), params)
    export = user.get(reverse("portal:payment_export"), params)

    assert listing.status_code in (200, 400)
    assert export.status_code in (200, 400)
    if export.status_code == 200:
        assert b"".join(export.streaming_content)


# --- privacy: erasure ------------------------------------------------------------------------------------------------


def test_erasing_a_member_removes_the_unionid_kept_on_their_payscore_orders(world):
    """The order's openid stays (a record of money, like a payment's); the unionid learnt from the face goes."""
    member_services.member_erase(member=world["member"], actor=world["a_admin"])

    order = ServiceOrder.objects.get(pk=world["order"].pk)
    assert (order.union_id, order.openid) == ("", OPENID)


# --- crawl: every link a role is shown opens (no 403/500) ---------------------------------------------------------


def _crawl(client, start="/", limit=300):
    import re
    from urllib.parse import urljoin, urlsplit

    seen, queue, problems = set(), [start], []
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        if response.status_code in (301, 302):
            continue
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            if response.status_code != 200:
                problems.append((path, response.status_code))
            continue
        for href in re.findall(r'href="([^"#]+)"', response.content.decode()):
            href = urljoin(path, href.replace("&amp;", "&"))
            parts = urlsplit(href)
            if parts.netloc or parts.path.startswith(("/static", "/i18n", "/admin", "/api", "/logout", "/sandbox")):
                continue
            if parts.path.endswith(".csv"):
                continue
            target = parts.path + (("?" + parts.query) if parts.query else "")
            if target not in seen:
                queue.append(target)
    return seen, problems


@pytest.fixture
def crawl_world(world):
    from django.utils import timezone

    merchant = world["merchant"]
    MerchantFactory(provider=merchant.provider, name="No stores")
    StoreFactory(merchant=merchant, name="No devices")
    Payment.objects.create(
        merchant=merchant, store=world["store"], device=None, channel=merchant.channel, method=Payment.Method.CODE,
        out_trade_no="REVIEW-NODEV", total_fee=100, body="x", openid=OPENID, request_fingerprint="y" * 64,
        status="ATTENTION",
    )  # fmt: skip
    now = timezone.now()
    Member.objects.create(merchant=merchant, openid="oNoVisits", first_seen_at=now, last_seen_at=now)
    world["p_reviewer"] = make_user("p_reviewer", role=Role.PROVIDER_REVIEWER, provider=merchant.provider)
    world["a_staff"] = make_user("a_staff", role=Role.MERCHANT_STAFF, merchant=merchant)
    return world


@pytest.mark.parametrize("role", ["p_admin", "p_reviewer", "a_admin", "a_staff"])
def test_every_link_shown_to_a_role_opens(client, crawl_world, role):
    client.raise_request_exception = False
    seen, problems = _crawl(zh(client, crawl_world[role]))

    assert len(seen) > 5
    assert problems == []


# --- privacy: the face_sid (the credential for a user's unionid) stays out of the log ------------------------------


def test_unionid_lookup_does_not_log_the_face_sid(settings, monkeypatch, wsgi_transport, caplog):
    import logging

    import httpx

    from payments import channels
    from sandbox import identity
    from tests.members.conftest import configure_wechat_credentials

    settings.WECHATPAY_API_BASE = "http://testserver/sandbox/wechatpay"
    client = httpx.Client(transport=wsgi_transport)
    monkeypatch.setattr(channels, "upstream_client", client)
    merchant = MerchantFactory()
    configure_wechat_credentials(merchant)
    device, _ = make_device(StoreFactory(merchant=merchant))
    user = identity.new_user()
    face_sid = identity.face_sid_for(user)
    caplog.set_level(logging.INFO)  # the project's default LOG_LEVEL

    result = member_services.member_identify(
        device=device,
        data=member_services.IdentifyInput(
            openid=identity.openid_for(user, merchant.appid), face_sid=face_sid, ask_unionid=True
        ),
    )
    client.close()

    assert result.unionid_lookup == "SUCCESS"
    leaked = [r.name + ": " + r.getMessage() for r in caplog.records if face_sid in r.getMessage()]
    assert leaked == []
