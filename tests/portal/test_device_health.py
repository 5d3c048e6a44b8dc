"""Device health: every authenticated terminal request moves the device's last_seen_at (at most one write a minute
per device, never a second one within it), online / offline derived from it, and the console's device list across
stores, scoped by role."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from payments.terminal_client import authorization_header
from portal import services
from portal.models import Device, Presence, StaffMembership
from portal.views_onboarding import PAGE_SIZE
from tests.console.test_zh_crawl import english_catalog_strings, enum_codes, offences
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


def signed(client, device, secret, method="GET", path="/api/terminal/v1/payments/NO-SUCH-ORDER", body=b""):
    """A device-signed request through Django's test client (a GET of an order that does not exist answers 404
    after authenticating, so it writes nothing but what authentication writes)."""
    header = authorization_header(
        device_id=device.device_id, secret=secret, method=method, path_with_query=path, body=body
    )
    if method == "GET":
        return client.get(path, HTTP_AUTHORIZATION=header)
    return client.post(path, data=body, content_type="application/json", HTTP_AUTHORIZATION=header)


def device_updates(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "portal_device"')]


def seen_at(device) -> datetime | None:
    return Device.objects.values_list("last_seen_at", flat=True).get(pk=device.pk)


def set_seen(device, ago: float | None) -> None:
    Device.objects.filter(pk=device.pk).update(
        last_seen_at=None if ago is None else timezone.now() - timedelta(seconds=ago)
    )


# --- last_seen on every authenticated request --------------------------------------------------------------------


def test_any_signed_request_moves_last_seen_with_one_update_of_that_column(client):
    device, secret = make_device()
    assert seen_at(device) is None
    before = timezone.now()

    with CaptureQueriesContext(connection) as queries:
        response = signed(client, device, secret)

    assert response.status_code == 404 and response.json()["code"] == "PAYMENT_NOT_FOUND"
    assert before <= seen_at(device) <= timezone.now()
    [update] = device_updates(queries)
    assert re.match(r'UPDATE "portal_device" SET "last_seen_at" = [^,]+ WHERE', update), update
    assert '"last_seen_at" IS NULL' in update and '"last_seen_at" <' in update  # conditional: written once


def test_a_second_request_within_the_interval_issues_no_update(client):
    device, secret = make_device()
    signed(client, device, secret)
    first = seen_at(device)

    with CaptureQueriesContext(connection) as queries:
        response = signed(client, device, secret)

    assert response.status_code == 404
    assert device_updates(queries) == []
    assert not [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert seen_at(device) == first


def test_after_the_interval_the_next_request_writes_again(client, settings):
    settings.DEVICE_SEEN_WRITE_SECONDS = 60
    device, secret = make_device()
    set_seen(device, 59)
    kept = seen_at(device)
    signed(client, device, secret)
    assert seen_at(device) == kept

    set_seen(device, 61)
    with CaptureQueriesContext(connection) as queries:
        signed(client, device, secret)

    assert len(device_updates(queries)) == 1
    assert timezone.now() - seen_at(device) < timedelta(seconds=5)


def test_the_update_repeats_the_condition_so_concurrent_requests_write_once():
    """Two requests of one device loaded the row before either wrote: the second's UPDATE matches no row."""
    device, _ = make_device()
    first, second = Device.objects.get(pk=device.pk), Device.objects.get(pk=device.pk)

    services.device_mark_seen(first)
    written = seen_at(device)
    services.device_mark_seen(second)

    assert written is not None and seen_at(device) == written
    assert first.last_seen_at == written and second.last_seen_at is None  # the loser's copy is left as loaded


def test_requests_refused_before_the_signature_is_proven_do_not_count(client):
    device, secret = make_device()

    response = signed(client, device, secret + "x")

    assert response.status_code == 401
    assert seen_at(device) is None


def test_a_disabled_device_that_proves_itself_is_refused_but_seen(client):
    """Operators see that a disabled terminal is still switched on and calling."""
    device, secret = make_device()
    services.device_set_active(device=device, is_active=False, actor=None, actor_label="test")

    response = signed(client, device, secret)

    assert response.status_code == 403 and response.json()["code"] == "DEVICE_DISABLED"
    assert seen_at(device) is not None


def test_the_heartbeat_still_records_versions_and_last_seen(client):
    device, secret = make_device()
    path = "/api/terminal/v1/heartbeat"

    for sdk in ("2.15.120", "2.16.0"):
        body = f'{{"sdk_version": "{sdk}", "app_version": "1.4.0"}}'.encode()
        response = signed(client, device, secret, method="POST", path=path, body=body)
        assert response.status_code == 200
        assert response.json()["sdk_version"] == sdk

    device.refresh_from_db()
    assert (device.sdk_version, device.app_version) == ("2.16.0", "1.4.0")
    assert timezone.now() - device.last_seen_at < timedelta(seconds=5)


def test_a_payment_pays_one_update_a_minute_for_last_seen_outside_its_transaction(shop):
    """The hot path's budget: the first payment of a minute adds one UPDATE (before the payment's transaction
    opens), the next payments within the minute none."""
    shop.pay(1000)  # warm-up; also the device's first request: seen now

    with CaptureQueriesContext(connection) as within:
        shop.pay(1000)
    set_seen(shop.device, 61)
    with CaptureQueriesContext(connection) as after:
        shop.pay(1000)

    assert device_updates(within) == []
    [update] = device_updates(after)
    ours = [q["sql"] for q in after.captured_queries if "sandbox_" not in q["sql"]]
    # Tests run inside a transaction, so the payment's own atomic blocks show as savepoints: the UPDATE comes first.
    first_savepoint = next(i for i, sql in enumerate(ours) if sql.startswith("SAVEPOINT"))
    assert ours.index(update) < first_savepoint
    assert len(ours) == len([q for q in within.captured_queries if "sandbox_" not in q["sql"]]) + 1


# --- online / offline ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ago", "threshold", "expected"),
    [
        (None, 300, Presence.NEVER),
        (0, 300, Presence.ONLINE),
        (299, 300, Presence.ONLINE),
        (301, 300, Presence.OFFLINE),
        (61, 60, Presence.OFFLINE),
        (3000, 3600, Presence.ONLINE),
    ],
)
def test_presence_follows_the_offline_threshold_in_python_and_in_sql(settings, ago, threshold, expected):
    settings.DEVICE_OFFLINE_AFTER_SECONDS = threshold
    device, _ = make_device()
    set_seen(device, ago)
    device.refresh_from_db()
    now = timezone.now()

    assert device.presence(now) == expected
    matching = {p for p in Presence.values if Device.objects.filter(pk=device.pk).presence(p, now).exists()}
    assert matching == {expected}
    counts = Device.objects.filter(pk=device.pk).presence_counts(now)
    assert counts == {"total": 1, "online": 0, "offline": 0, "never": 0, expected.value: 1}


# --- the console's device list -------------------------------------------------------------------------------------


def device_in(store, device_id, *, ago=None, sdk="", app="", name=""):
    device, _ = make_device(store, device_id=device_id)
    Device.objects.filter(pk=device.pk).update(sdk_version=sdk, app_version=app, name=name)
    set_seen(device, ago)
    return device


@pytest.fixture
def world():
    """Provider P1 with merchants A (two stores) and C; provider P2 with merchant B. Devices online, offline and
    never seen, on two SDK versions; a user per role."""
    p1, p2 = ServiceProviderFactory(name="P1"), ServiceProviderFactory(name="P2")
    a = MerchantFactory(provider=p1, name="甲商户")
    c = MerchantFactory(provider=p1, name="丙商户")
    b = MerchantFactory(provider=p2, name="乙商户")
    a1, a2 = StoreFactory(merchant=a, name="甲一店"), StoreFactory(merchant=a, name="甲二店")
    c1, b1 = StoreFactory(merchant=c, name="丙一店"), StoreFactory(merchant=b, name="乙一店")
    devices = {
        "a1_on": device_in(a1, "A1-ON", ago=130, sdk="2.15.120", app="1.4.0", name="前台"),
        "a1_off": device_in(a1, "A1-OFF", ago=3600, sdk="2.14.0", name="后门"),
        "a1_never": device_in(a1, "A1-NEW"),
        "a2_on": device_in(a2, "A2-ON", ago=10, sdk="2.15.120"),
        "c1_on": device_in(c1, "C1-ON", ago=5, sdk="2.13.9"),
        "b1_on": device_in(b1, "B1-ON", ago=5, sdk="9.9.9-foreign"),
        "b1_off": device_in(b1, "B1-OFF", ago=900),
    }
    users = {
        "root": make_user("root", superuser=True),
        "p1_admin": make_user("p1_admin", role=Role.PROVIDER_ADMIN, provider=p1),
        "p1_reviewer": make_user("p1_reviewer", role=Role.PROVIDER_REVIEWER, provider=p1),
        "a_admin": make_user("a_admin", role=Role.MERCHANT_ADMIN, merchant=a),
        "a_staff": make_user("a_staff", role=Role.MERCHANT_STAFF, merchant=a),
    }
    return {"a": a, "b": b, "c": c, "a1": a1, "a2": a2, "b1": b1, "c1": c1, **devices, **users}


LIST = reverse("portal:device_list")


def as_user(client, user, language="en"):
    login_verified(client, user)
    client.cookies["django_language"] = language
    return client


def listed(response) -> list[str]:
    return [device.device_id for device in response.context["page"].object_list]


def test_the_list_needs_a_sign_in(client):
    response = client.get(LIST)
    assert response.status_code == 302 and response["Location"].startswith(reverse("portal:login"))


def test_provider_staff_see_their_merchants_devices_with_counts_and_the_merchant_column(client, world):
    response = as_user(client, world["p1_reviewer"]).get(LIST)

    assert response.status_code == 200
    assert listed(response) == ["C1-ON", "A1-NEW", "A1-OFF", "A1-ON", "A2-ON"]  # merchant, store, number
    assert response.context["counts"] == {"total": 5, "online": 3, "offline": 1, "never": 1}
    body = response.content.decode()
    assert "<th>Merchant</th>" in body and 'data-label="Merchant">丙商户' in body
    assert [m.name for m in response.context["merchants"]] == ["丙商户", "甲商户"]
    assert response.context["stores"] is None  # a merchant first, then its stores
    assert list(response.context["sdk_versions"]) == ["2.13.9", "2.14.0", "2.15.120"]


@pytest.mark.parametrize(
    ("params", "expected", "counts"),
    [
        ({"status": "online"}, ["C1-ON", "A1-ON", "A2-ON"], (3, 3, 0, 0)),
        ({"status": "offline"}, ["A1-OFF"], (1, 0, 1, 0)),
        ({"status": "never"}, ["A1-NEW"], (1, 0, 0, 1)),
        ({"sdk": "2.15.120"}, ["A1-ON", "A2-ON"], (2, 2, 0, 0)),
        ({"q": "a1-o"}, ["A1-OFF", "A1-ON"], (2, 1, 1, 0)),  # a prefix, any case
        ({"q": "ON"}, [], (0, 0, 0, 0)),  # not a substring
        ({"q": "前"}, ["A1-ON"], (1, 1, 0, 0)),  # the name's prefix
        ({"merchant": "a", "status": "online"}, ["A1-ON", "A2-ON"], (2, 2, 0, 0)),
        ({"merchant": "a", "store": "a1"}, ["A1-NEW", "A1-OFF", "A1-ON"], (3, 1, 1, 1)),
    ],
)
def test_filters_and_counts_of_the_filtered_set(client, world, params, expected, counts):
    query = {key: str(world[value].pk) if key in ("merchant", "store") else value for key, value in params.items()}

    response = as_user(client, world["p1_admin"]).get(LIST, query)

    assert response.status_code == 200 and response.context["errors"] == []
    assert listed(response) == expected
    assert tuple(response.context["counts"][key] for key in ("total", "online", "offline", "never")) == counts


def test_choosing_a_merchant_offers_its_stores_and_its_sdk_versions_only(client, world):
    response = as_user(client, world["p1_admin"]).get(LIST, {"merchant": world["c"].pk})

    assert [s.name for s in response.context["stores"]] == ["丙一店"]
    assert list(response.context["sdk_versions"]) == ["2.13.9"]


def test_a_store_of_another_merchant_than_the_chosen_one_is_an_error(client, world):
    response = as_user(client, world["p1_admin"]).get(LIST, {"merchant": world["c"].pk, "store": world["a1"].pk})

    assert response.context["errors"] and "page" not in response.context
    assert "A1-ON" not in response.content.decode()


def test_merchant_staff_see_only_their_merchants_devices_without_a_merchant_column(client, world):
    response = as_user(client, world["a_staff"]).get(LIST)

    assert listed(response) == ["A1-NEW", "A1-OFF", "A1-ON", "A2-ON"]
    assert response.context["counts"] == {"total": 4, "online": 2, "offline": 1, "never": 1}
    assert response.context["merchants"] is None
    assert [s.name for s in response.context["stores"]] == ["甲一店", "甲二店"]
    assert list(response.context["sdk_versions"]) == ["2.14.0", "2.15.120"]
    body = response.content.decode()
    assert 'data-label="Merchant"' not in body and "丙商户" not in body and "乙商户" not in body


@pytest.mark.parametrize("role", ["a_admin", "a_staff"])
def test_a_merchant_user_cannot_reach_other_merchants_devices_through_the_query_string(client, world, role):
    client = as_user(client, world[role])

    by_merchant = client.get(LIST, {"merchant": world["b"].pk})
    by_sibling = client.get(LIST, {"merchant": world["c"].pk})
    by_store = client.get(LIST, {"store": world["b1"].pk})
    by_sdk = client.get(LIST, {"sdk": "9.9.9-foreign"})
    by_prefix = client.get(LIST, {"q": "B1"})

    # The merchant filter is not theirs to use: ignored, the list stays their own.
    assert listed(by_merchant) == listed(by_sibling) == ["A1-NEW", "A1-OFF", "A1-ON", "A2-ON"]
    assert by_store.context["errors"] and "page" not in by_store.context  # a foreign store is not a filter
    assert listed(by_sdk) == listed(by_prefix) == []
    assert by_sdk.context["counts"]["total"] == 0
    for response in (by_merchant, by_sibling, by_store, by_sdk, by_prefix):
        body = response.content.decode()
        assert "B1-" not in body and "C1-" not in body and "乙" not in body and "丙" not in body


def test_provider_staff_cannot_choose_another_providers_merchant(client, world):
    response = as_user(client, world["p1_admin"]).get(LIST, {"merchant": world["b"].pk})

    assert response.context["errors"] and "B1-ON" not in response.content.decode()


def test_an_unknown_status_is_an_error(client, world):
    response = as_user(client, world["p1_admin"]).get(LIST, {"status": "ONLINE'"})

    assert response.context["errors"] == ["Status: choose a value from the list."]


def test_the_list_is_paginated_and_counts_the_whole_filtered_set(client, world):
    for n in range(PAGE_SIZE):
        device_in(world["a2"], f"A2-N{n:02d}")

    first = as_user(client, world["a_admin"]).get(LIST, {"status": "never"})
    second = client.get(LIST, {"status": "never", "page": 2})

    assert first.context["counts"]["never"] == PAGE_SIZE + 1
    assert len(listed(first)) == PAGE_SIZE and len(listed(second)) == 1
    assert "page=2" in first.content.decode() and "status=never" in first.content.decode()


def test_the_superuser_sees_every_providers_devices(client, world):
    response = as_user(client, world["root"]).get(LIST)

    assert response.context["counts"]["total"] == 7


def test_the_page_in_chinese_shows_statuses_times_in_china_time_and_no_english_or_codes(client, world):
    Device.objects.filter(pk=world["a1_off"].pk).update(last_seen_at=datetime(2025, 1, 1, 2, 3, 4, tzinfo=UTC))

    response = as_user(client, world["p1_admin"], language="zh-hans").get(LIST)

    body = response.content.decode()
    assert offences(body, english_catalog_strings(), enum_codes()) == []
    for text in ("设备状态", "全部设备", "最近在线 2 分钟前", "从未在线", "离线"):
        assert text in body
    assert "2025-01-01 10:03:04" in body and "自 2025-01-01 10:03 起" in body  # 02:03:04 UTC in China time
    assert 'data-label="最近在线"' in body and 'data-label="应用版本"' in body
    assert 'href="/devices/"' in body  # in the console navigation


def test_the_store_page_shows_each_devices_presence(client, world):
    response = as_user(client, world["a_admin"], language="zh-hans").get(
        reverse("portal:store_detail", args=[world["a1"].pk])
    )

    body = response.content.decode()
    assert "最近在线 2 分钟前" in body and "从未在线" in body and "离线" in body
    assert offences(body, english_catalog_strings(), enum_codes()) == []
