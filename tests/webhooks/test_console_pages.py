"""Console: webhook endpoints — the list, making one (its secret shown once), settings, rotation, a test event, the
delivery log and one delivery with its attempts, resending; per role, scoped, audited, in Chinese."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditLog, Merchant, StaffMembership
from tests.factories import MerchantFactory, ServiceProviderFactory, login_verified, make_user
from webhooks import services
from webhooks.models import SUBSCRIBABLE, EventType, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role
Status = WebhookDelivery.Status
SECRET = re.compile(r"whsec_[A-Za-z0-9_-]{20,}")


def emit(merchant: Merchant, type: str = EventType.PAYMENT_SUCCEEDED, **data) -> WebhookEvent:
    """An event as the payment services write it: one delivery per subscribed active endpoint of the merchant."""
    merchant = Merchant.objects.get(pk=merchant.pk)  # its current subscriptions
    event = services.event_emit(merchant=merchant, type=type, data=lambda: {"out_trade_no": "T1", **data})
    assert event is not None
    return event


def failed(delivery: WebhookDelivery, *, code: int = 500) -> WebhookDelivery:
    """Mark a delivery as the sender leaves it when its retries are used up, with one logged attempt."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=Status.FAILED, attempts=1, retry_step=15, next_attempt_at=None, last_status_code=code,
        last_error=f"HTTP {code}", last_attempt_at=timezone.now(),
    )  # fmt: skip
    WebhookAttempt.objects.create(
        delivery=delivery, number=1, started_at=timezone.now(), status_code=code, latency_ms=87,
        request_headers={"Facepay-Event-Id": delivery.event.event_id, "Facepay-Signature": "v1=abc123"},
        response_excerpt="receiver says no", error="",
    )  # fmt: skip
    delivery.refresh_from_db()
    return delivery


@pytest.fixture
def world():
    provider, other_provider = ServiceProviderFactory(), ServiceProviderFactory()
    a = MerchantFactory(provider=provider, name="Merchant A")
    a2 = MerchantFactory(provider=provider, name="Merchant A2")
    b = MerchantFactory(provider=other_provider, name="Merchant B")
    ep_a, secret_a = services.endpoint_create(
        merchant=a, url="https://a.example.com/hook", events=list(SUBSCRIBABLE), description="A's shop", user=None
    )
    ep_a2, _ = services.endpoint_create(
        merchant=a2, url="https://a2.example.com/hook", events=[EventType.REFUND_SUCCEEDED], user=None
    )
    ep_b, _ = services.endpoint_create(
        merchant=b, url="https://b.example.com/hook", events=[EventType.PAYMENT_SUCCEEDED], user=None
    )
    delivery_a = failed(emit(a).deliveries.get())
    delivery_a2 = failed(emit(a2, EventType.REFUND_SUCCEEDED).deliveries.get())
    delivery_b = emit(b).deliveries.get()
    return {
        "a": a, "a2": a2, "b": b, "ep_a": ep_a, "secret_a": secret_a, "ep_a2": ep_a2, "ep_b": ep_b,
        "delivery_a": delivery_a, "delivery_a2": delivery_a2, "delivery_b": delivery_b,
        "a_admin": make_user("a_admin", role=Role.MERCHANT_ADMIN, merchant=a),
        "a_staff": make_user("a_staff", role=Role.MERCHANT_STAFF, merchant=a),
        "p_admin": make_user("p_admin", role=Role.PROVIDER_ADMIN, provider=provider),
        "p_reviewer": make_user("p_reviewer", role=Role.PROVIDER_REVIEWER, provider=provider),
    }  # fmt: skip


def as_user(client, user, language="en"):
    login_verified(client, user)
    client.cookies["django_language"] = language
    return client


def url(name: str, *args) -> str:
    return reverse(f"portal:{name}", args=args)


def page(client, address: str) -> str:
    response = client.get(address)
    assert response.status_code == 200, (address, response.status_code)
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def endpoint_post(merchant=None, **fields) -> dict:
    data = {"url": "https://new.example.com/hook", "description": "till 3", "events": [EventType.PAYMENT_SUCCEEDED]}
    if merchant is not None:
        data["merchant"] = merchant.pk
    return {**data, **fields}


# --- access ------------------------------------------------------------------------------------------------------


def test_pages_need_login(client, world):
    for address in (url("webhook_list"), url("webhook_create"), url("webhook_detail", world["ep_a"].pk),
                    url("webhook_delivery", world["delivery_a"].pk)):  # fmt: skip
        response = client.get(address)
        assert response.status_code == 302 and "/login/" in response["Location"], address


@pytest.mark.parametrize("role", ["a_admin", "p_admin"])
def test_every_page_renders_for_merchant_and_provider_admins(client, world, role):
    as_user(client, world[role])
    listing = page(client, url("webhook_list"))
    assert "https://a.example.com/hook" in listing
    assert 'href="/webhooks/new"' in listing
    assert 'name="events"' in page(client, url("webhook_create"))
    assert "https://a.example.com/hook" in page(client, url("webhook_detail", world["ep_a"].pk))
    assert world["delivery_a"].event.event_id in page(client, url("webhook_delivery", world["delivery_a"].pk))


@pytest.mark.parametrize("role", ["a_staff", "p_reviewer"])
def test_reviewers_and_merchant_staff_are_refused_every_page_and_action(client, world, role):
    as_user(client, world[role])
    ep, delivery = world["ep_a"], world["delivery_a"]
    for address in (url("webhook_list"), url("webhook_create"), url("webhook_detail", ep.pk),
                    url("webhook_delivery", delivery.pk), url("webhook_delivery_status", delivery.pk)):  # fmt: skip
        assert client.get(address).status_code == 403, address
    posts = [
        (url("webhook_create"), endpoint_post(world["a"])),
        (url("webhook_detail", ep.pk), endpoint_post(is_active="on")),
        (url("webhook_rotate", ep.pk), {"confirm": "yes"}),
        (url("webhook_test", ep.pk), {}),
        (url("webhook_resend_failed", ep.pk), {"since": "2000-01-01T00:00"}),
        (url("webhook_delivery_resend", delivery.pk), {}),
    ]
    for address, data in posts:
        assert client.post(address, data).status_code == 403, address
    ep.refresh_from_db()
    assert ep.url == "https://a.example.com/hook" and ep.secret.reveal() == world["secret_a"]
    assert WebhookEndpoint.objects.count() == 3 and WebhookEvent.objects.count() == 3
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == Status.FAILED
    assert not AuditLog.objects.filter(actor=world[role]).exists()


def test_post_only_actions_refuse_get(client, world):
    as_user(client, world["a_admin"])
    ep, delivery = world["ep_a"], world["delivery_a"]
    for address in (url("webhook_rotate", ep.pk), url("webhook_test", ep.pk), url("webhook_resend_failed", ep.pk),
                    url("webhook_delivery_resend", delivery.pk)):  # fmt: skip
        assert client.get(address).status_code == 405, address
    assert WebhookEvent.objects.count() == 3
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == Status.FAILED


# --- scoping -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "foreign"), [("a_admin", "a2"), ("a_admin", "b"), ("p_admin", "b")])
def test_another_merchants_endpoint_and_delivery_are_not_found(client, world, role, foreign):
    as_user(client, world[role])
    ep, delivery = world[f"ep_{foreign}"], world[f"delivery_{foreign}"]
    before = (ep.secret.reveal(), ep.url, delivery.status, WebhookEvent.objects.count())
    for address in (url("webhook_detail", ep.pk), url("webhook_delivery", delivery.pk),
                    url("webhook_delivery_status", delivery.pk)):  # fmt: skip
        assert client.get(address).status_code == 404, address
    posts = [
        (url("webhook_detail", ep.pk), endpoint_post(url="https://evil.example.com/", is_active="on")),
        (url("webhook_rotate", ep.pk), {"confirm": "yes"}),
        (url("webhook_test", ep.pk), {}),
        (url("webhook_resend_failed", ep.pk), {"since": "2000-01-01T00:00"}),
        (url("webhook_delivery_resend", delivery.pk), {}),
    ]
    for address, data in posts:
        assert client.post(address, data).status_code == 404, address
    ep.refresh_from_db()
    delivery.refresh_from_db()
    assert (ep.secret.reveal(), ep.url, delivery.status, WebhookEvent.objects.count()) == before
    assert not AuditLog.objects.filter(actor=world[role]).exists()


def test_the_list_shows_each_admin_only_its_merchants_endpoints(client, world):
    mine = page(as_user(client, world["a_admin"]), url("webhook_list"))
    table = mine.split('id="webhook-endpoints"')[1]
    assert "https://a.example.com/hook" in table
    assert "a2.example.com" not in table and "b.example.com" not in table
    assert "Merchant A<" not in table  # one merchant: no merchant column

    providers = page(as_user(client, world["p_admin"]), url("webhook_list"))
    table = providers.split('id="webhook-endpoints"')[1]
    assert "https://a.example.com/hook" in table and "https://a2.example.com/hook" in table
    assert "b.example.com" not in table
    assert '<td data-label="Merchant">Merchant A</td>' in table
    assert '<td data-label="Merchant">Merchant A2</td>' in table


def test_the_list_counts_pending_and_failed_deliveries(client, world):
    ep = world["ep_a"]
    emit(world["a"])
    emit(world["a"])  # two pending, besides the failed one
    delivered = emit(world["a"]).deliveries.get()
    moment = datetime(2026, 3, 10, 4, 5, 6, tzinfo=UTC)
    WebhookDelivery.objects.filter(pk=delivered.pk).update(status=Status.DELIVERED, delivered_at=moment)

    html = page(as_user(client, world["a_admin"]), url("webhook_list"))
    row = html.split("https://a.example.com/hook")[1].split("</tr>")[0]
    assert '<span class="badge warn">2</span>' in row
    assert f'href="/webhooks/{ep.pk}/?status=FAILED"><span class="badge bad">1</span>' in row
    assert "2026-03-10 12:05:06" in row  # China time


def test_an_admin_cannot_make_an_endpoint_for_another_merchant(client, world):
    as_user(client, world["a_admin"])
    for merchant in (world["a2"], world["b"]):
        response = client.post(url("webhook_create"), endpoint_post(merchant))
        assert response.status_code == 400
        assert "Select a valid choice" in response.content.decode()
    as_user(client, world["p_admin"])
    assert client.post(url("webhook_create"), endpoint_post(world["b"])).status_code == 400
    assert not WebhookEndpoint.objects.filter(url="https://new.example.com/hook").exists()
    assert not AuditLog.objects.filter(action="webhook.create").exclude(actor=None).exists()


# --- making an endpoint: the secret once -------------------------------------------------------------------------


def test_the_create_form_preselects_a_lone_merchant_and_checks_every_event(client, world):
    html = page(as_user(client, world["a_admin"]), url("webhook_create"))
    assert f'<input type="hidden" name="merchant" value="{world["a"].pk}"' in html
    boxes = re.findall(r'<input type="checkbox" name="events" value="([^"]+)"[^>]*>', html)
    assert boxes == list(SUBSCRIBABLE) and html.count('name="events"') == len(SUBSCRIBABLE)
    assert len(re.findall(r'name="events" value="[^"]+"[^>]*checked', html)) == len(SUBSCRIBABLE)
    assert EventType.TEST.value not in boxes

    html = page(as_user(client, world["p_admin"]), url("webhook_create"))
    choices = html.split('name="merchant"')[1].split("</select>")[0]
    assert "Merchant A<" in choices and "Merchant A2<" in choices and "Merchant B" not in choices


def test_creating_shows_the_secret_once_and_never_again(client, world):
    as_user(client, world["a_admin"])
    response = client.post(url("webhook_create"), endpoint_post(world["a"]))

    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    endpoint = WebhookEndpoint.objects.get(url="https://new.example.com/hook")
    secret = endpoint.secret.reveal()
    html = response.content.decode()
    assert f'id="webhook-secret">{secret}</div>' in html
    assert "it is shown only this once and will not be shown again" in html
    assert f"python manage.py webhook_listen --port 8765 --secret {secret}" in html
    assert endpoint.events == [EventType.PAYMENT_SUCCEEDED] and endpoint.description == "till 3"
    assert AuditLog.objects.filter(action="webhook.create", actor=world["a_admin"], merchant=world["a"]).exists()
    # Not kept anywhere the browser or the server would show it again.
    assert secret not in str(dict(client.session.items()))
    assert not messages_of(response)
    detail = page(client, url("webhook_detail", endpoint.pk))
    assert secret not in detail and not SECRET.search(detail)
    assert not SECRET.search(page(client, url("webhook_list")))
    assert world["secret_a"] not in page(client, url("webhook_detail", world["ep_a"].pk))


def test_a_provider_admin_makes_an_endpoint_for_one_of_its_merchants(client, world):
    as_user(client, world["p_admin"])
    response = client.post(url("webhook_create"), endpoint_post(world["a2"]))
    assert response.status_code == 200
    assert WebhookEndpoint.objects.get(url="https://new.example.com/hook").merchant == world["a2"]


def test_service_errors_are_shown_next_to_the_fields_and_the_form_is_kept(client, world):
    as_user(client, world["a_admin"])
    response = client.post(
        url("webhook_create"),
        endpoint_post(world["a"], url="ftp://files.example.com/x", events=[EventType.REFUND_FAILED]),
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert '<div class="field-error" id="url-error">An http(s) address of at most 500 characters.</div>' in html
    assert 'value="ftp://files.example.com/x"' in html and 'value="till 3"' in html
    checked = re.findall(r'name="events" value="([^"]+)"[^>]*checked', html)
    assert checked == [EventType.REFUND_FAILED]
    assert not SECRET.search(html)

    response = client.post(url("webhook_create"), endpoint_post(world["a"], events=[]))
    assert response.status_code == 400
    assert '<div class="field-error" id="events-error">Choose one or more events.</div>' in response.content.decode()
    assert WebhookEndpoint.objects.count() == 3


def test_https_required_is_explained_in_chinese(client, world, settings):
    settings.WEBHOOK_REQUIRE_HTTPS = True
    as_user(client, world["a_admin"], "zh-hans")
    response = client.post(url("webhook_create"), endpoint_post(world["a"], url="http://plain.example.com/"))
    assert response.status_code == 400
    assert "地址必须以 https:// 开头。" in response.content.decode()


# --- settings, rotation, test event ------------------------------------------------------------------------------


def test_editing_an_endpoint_saves_it_and_is_audited(client, world):
    as_user(client, world["a_admin"])
    ep = world["ep_a"]
    response = client.post(
        url("webhook_detail", ep.pk),
        {"url": "https://a.example.com/v2", "description": "new", "events": [EventType.REFUND_SUCCEEDED]},
    )
    assert response.status_code == 302 and response["Location"] == url("webhook_detail", ep.pk)
    ep.refresh_from_db()
    assert (ep.url, ep.description, ep.events, ep.is_active) == (
        "https://a.example.com/v2", "new", [EventType.REFUND_SUCCEEDED], False,
    )  # fmt: skip
    entry = AuditLog.objects.get(action="webhook.update", actor=world["a_admin"])
    assert entry.details["changed"]["is_active"] == {"from": True, "to": False}

    html = page(client, url("webhook_detail", ep.pk))
    assert "The endpoint was saved." in html
    assert re.search(r'name="events" value="refund.succeeded"[^>]*checked', html)
    assert not re.search(r'name="events" value="payment.succeeded"[^>]*checked', html)

    response = client.post(url("webhook_detail", ep.pk), {"url": "nope", "events": [EventType.REFUND_SUCCEEDED]})
    assert response.status_code == 400 and 'id="url-error"' in response.content.decode()
    ep.refresh_from_db()
    assert ep.url == "https://a.example.com/v2"


def test_rotating_asks_first_then_shows_the_new_secret_once_and_keeps_the_old_one_valid(client, world, settings):
    settings.WEBHOOK_SECRET_OVERLAP_HOURS = 24
    as_user(client, world["a_admin"])
    ep, old = world["ep_a"], world["secret_a"]

    asked = client.post(url("webhook_rotate", ep.pk))
    assert asked.status_code == 200 and 'name="confirm" value="yes"' in asked.content.decode()
    ep.refresh_from_db()
    assert ep.secret.reveal() == old and not SECRET.search(asked.content.decode())

    response = client.post(url("webhook_rotate", ep.pk), {"confirm": "yes"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    ep.refresh_from_db()
    new = ep.secret.reveal()
    html = response.content.decode()
    assert new != old and f'id="webhook-secret">{new}</div>' in html and old not in html
    until = timezone.localtime(ep.previous_secret_expires_at)
    assert until - timezone.now() == pytest.approx(timedelta(hours=24), abs=timedelta(minutes=1))
    assert f"The previous secret keeps working until {until:%Y-%m-%d %H:%M:%S}" in html
    assert services.signing_secrets(ep) == [new, old]
    assert services.signing_secrets(ep, now=ep.previous_secret_expires_at + timedelta(seconds=1)) == [new]
    assert AuditLog.objects.filter(action="webhook.rotate_secret", actor=world["a_admin"]).count() == 1

    detail = page(client, url("webhook_detail", ep.pk))
    assert new not in detail and old not in detail
    assert f"The previous secret also signs until {until:%Y-%m-%d %H:%M:%S}." in detail


def test_a_test_event_goes_to_that_endpoint_only_and_its_status_is_polled(client, world):
    as_user(client, world["p_admin"])
    ep = world["ep_a"]
    before = set(WebhookDelivery.objects.values_list("pk", flat=True))

    response = client.post(url("webhook_test", ep.pk))

    created = WebhookDelivery.objects.exclude(pk__in=before)
    assert created.count() == 1
    delivery = created.get()
    assert (delivery.endpoint, delivery.status, delivery.event.type) == (ep, Status.PENDING, EventType.TEST)
    assert response.status_code == 302 and response["Location"] == url("webhook_delivery", delivery.pk)
    assert AuditLog.objects.filter(action="webhook.test", actor=world["p_admin"]).count() == 1

    html = page(client, response["Location"])
    assert "A test event was queued for this endpoint" in html
    assert f'hx-get="{url("webhook_delivery_status", delivery.pk)}" hx-trigger="every 3s"' in html
    fragment = client.get(url("webhook_delivery_status", delivery.pk))
    assert fragment.status_code == 200 and "HX-Refresh" not in fragment and "Pending" in fragment.content.decode()

    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=Status.DELIVERED, last_status_code=200)
    fragment = client.get(url("webhook_delivery_status", delivery.pk))
    assert fragment["HX-Refresh"] == "true" and "hx-get" not in fragment.content.decode()


# --- the delivery log --------------------------------------------------------------------------------------------


def test_the_delivery_log_is_filtered_paginated_and_newest_first(client, world):
    a, ep = world["a"], world["ep_a"]
    refund = emit(a, EventType.REFUND_SUCCEEDED).deliveries.get()
    services.endpoint_create(
        merchant=a, url="https://a.example.com/other", events=[EventType.PAYMENT_SUCCEEDED], user=None
    )
    newest = emit(a).deliveries.get(endpoint=ep)  # and one to the merchant's other endpoint, not in this log
    old = world["delivery_a"]
    WebhookDelivery.objects.filter(pk=old.pk).update(created_at=datetime(2026, 3, 9, 15, 59, tzinfo=UTC))
    WebhookDelivery.objects.filter(pk=refund.pk).update(created_at=datetime(2026, 3, 9, 16, 0, tzinfo=UTC))
    as_user(client, world["a_admin"])
    base = url("webhook_detail", ep.pk)

    def ids(query: str = "") -> list[str]:
        table = page(client, base + query).split('id="webhook-deliveries"')
        return re.findall(r"<code>(evt_[0-9a-f]+)</code>", table[1]) if len(table) > 1 else []

    everything = ids()
    assert everything == [newest.event.event_id, refund.event.event_id, old.event.event_id]
    assert ids("?status=FAILED") == [old.event.event_id]
    assert ids("?type=refund.succeeded") == [refund.event.event_id]
    # 2026-03-09 15:59 UTC is 23:59 on the 9th in China; 16:00 UTC is the 10th
    assert ids("?from=2026-03-10&to=2026-03-10") == [refund.event.event_id]
    assert ids("?to=2026-03-09") == [old.event.event_id]
    assert ids("?status=bogus&from=nope") == everything
    assert "2026-03-10 00:00:00" in page(client, base)

    for _ in range(26):
        emit(a, EventType.PAYMENT_FAILED)
    first, second = ids(), ids("?page=2")
    assert len(first) == 25 and len(second) == 4 and not set(first) & set(second)
    assert "type=payment.failed&amp;page=2" in page(client, base + "?type=payment.failed")


def test_a_delivery_shows_its_event_and_every_attempt(client, world):
    delivery = world["delivery_a"]
    html = page(as_user(client, world["a_admin"]), url("webhook_delivery", delivery.pk))
    body = json.dumps(json.loads(delivery.event.body), indent=2, ensure_ascii=False)
    assert body.replace('"', "&quot;") in html
    attempts = html.split('id="webhook-attempts"')[1]
    assert "receiver says no" in attempts and "87 ms" in attempts and '<span class="badge bad">500</span>' in attempts
    assert "Facepay-Signature: v1=abc123" in attempts
    assert 'action="' + url("webhook_delivery_resend", delivery.pk) in html


def test_resending_a_delivery_requeues_it_and_is_audited(client, world):
    as_user(client, world["a_admin"])
    delivery = world["delivery_a"]
    response = client.post(url("webhook_delivery_resend", delivery.pk))
    assert response.status_code == 302 and response["Location"] == url("webhook_delivery", delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == Status.PENDING and delivery.retry_step == 0 and delivery.next_attempt_at
    entry = AuditLog.objects.get(action="webhook.resend", actor=world["a_admin"])
    assert entry.details["event"] == delivery.event.event_id and entry.merchant == world["a"]

    html = page(client, url("webhook_delivery", delivery.pk))
    assert "queued to be sent again" in html
    assert 'action="' + url("webhook_delivery_resend", delivery.pk) not in html  # pending: no resend button

    response = client.post(url("webhook_delivery_resend", delivery.pk), follow=True)
    assert "This delivery is already waiting to be sent." in messages_of(response)
    assert AuditLog.objects.filter(action="webhook.resend").count() == 1


def test_resend_failed_since_requeues_the_failed_of_that_endpoint_from_then_on(client, world):
    a, ep = world["a"], world["ep_a"]
    old, recent = world["delivery_a"], failed(emit(a).deliveries.get())
    WebhookEvent.objects.filter(pk=old.event_id).update(created_at=datetime(2026, 3, 1, 0, 0, tzinfo=UTC))
    WebhookEvent.objects.filter(pk=recent.event_id).update(created_at=datetime(2026, 3, 5, 0, 0, tzinfo=UTC))
    as_user(client, world["a_admin"])

    # 2026-03-05 08:00 China time is exactly the recent event's moment
    response = client.post(url("webhook_resend_failed", ep.pk), {"since": "2026-03-05T08:00"}, follow=True)
    assert response.redirect_chain == [(url("webhook_detail", ep.pk), 302)]
    assert "1 failed delivery since 2026-03-05 08:00:00 was queued again." in messages_of(response)
    assert WebhookDelivery.objects.get(pk=recent.pk).status == Status.PENDING
    assert WebhookDelivery.objects.get(pk=old.pk).status == Status.FAILED
    assert WebhookDelivery.objects.get(pk=world["delivery_a2"].pk).status == Status.FAILED  # another endpoint's
    entry = AuditLog.objects.get(action="webhook.resend_failed", actor=world["a_admin"])
    assert entry.details["count"] == 1

    response = client.post(url("webhook_resend_failed", ep.pk), {"since": "yesterday"}, follow=True)
    assert "Enter a date and time, e.g. 2026-03-10 08:00." in messages_of(response)
    assert AuditLog.objects.filter(action="webhook.resend_failed").count() == 1
    assert WebhookDelivery.objects.get(pk=old.pk).status == Status.FAILED


# --- Chinese -----------------------------------------------------------------------------------------------------


def test_the_pages_are_in_chinese(client, world):
    as_user(client, world["p_admin"], "zh-hans")
    listing = page(client, url("webhook_list"))
    assert "Webhook 接收地址" in listing and "新建接收地址" in listing and "全部事件" in listing
    assert "退款成功" in listing  # A2's one event, by its label
    create = page(client, url("webhook_create"))
    assert "支付成功" in create and "支付分订单已完成" in create and "对账发现差异" in create
    detail = page(client, url("webhook_detail", world["ep_a"].pk))
    assert "失败（重试已用完）" in detail and "发送测试事件" in detail and "轮换密钥" in detail
    assert "重新推送失败的记录" in detail
    delivery = page(client, url("webhook_delivery", world["delivery_a"].pk))
    assert "推送尝试" in delivery and "请求头" in delivery and "重新推送" in delivery
    secret_page = client.post(url("webhook_create"), endpoint_post(world["a"])).content.decode()
    assert "请立即复制签名密钥" in secret_page
    for english in ("Webhook endpoints", "Pending", "Failed (retries used up)", "Payment succeeded", "Attempts",
                    "Resend", "Signing secret", "Events"):  # fmt: skip
        for html in (listing, create, detail, delivery, secret_page):
            assert f">{english}<" not in html, english
