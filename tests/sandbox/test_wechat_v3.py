"""WeChat Pay v3 (PayScore, facemch) round-trips; Authorization checks; signed and encrypted notifications."""

from __future__ import annotations

import json

import httpx
import pytest

from payments.gateways import wechatpay_v3 as v3
from payments.gateways.base import Outcome
from sandbox import services
from sandbox.models import SandboxNotification, SandboxPayscoreOrder

from .conftest import API_V3_KEY, MCH_ID, WX_BASE, v3_config

pytestmark = pytest.mark.django_db
SERVICE_ID = "500001"
NOTIFY_URL = "http://merchant.test/notify/wechatpay/payscore/"


def create_request(out_order_no: str = "PS1", **overrides) -> v3.PayscoreCreateRequest:
    values = {
        "out_order_no": out_order_no,
        "service_id": SERVICE_ID,
        "service_introduction": "充电宝租借",
        # With an end time: WeChat requires one at the latest when completing.
        "time_range": v3.TimeRange(start_time="OnAccept", end_time="20301231235959"),
        "risk_fund": v3.RiskFund(name="DEPOSIT", amount=10000),
        "notify_url": NOTIFY_URL,
    }
    values.update(overrides)
    return v3.PayscoreCreateRequest(**values)


@pytest.fixture
def config(wechat_merchant, merchant_keys, sandbox_clock):
    return v3_config(wechat_merchant, merchant_keys)


def clock_of(sandbox_clock):
    return sandbox_clock.timestamp


class Receiver:
    """The merchant's notify endpoint: records deliveries, answers with the queued statuses (then 204)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.received: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 204)


def test_payscore_lifecycle_with_notifications(config, wechat_merchant, http_client, sandbox_clock):
    clock = clock_of(sandbox_clock)
    created = v3.payscore_create(config, create_request(), client=http_client, clock=clock)
    assert (created.outcome, created.state) == (Outcome.SUCCESS, "CREATED")
    assert created.order_id and created.package

    again = v3.payscore_create(config, create_request(), client=http_client, clock=clock)
    assert (again.outcome, again.order_id) == (Outcome.SUCCESS, created.order_id)

    early = v3.payscore_complete(
        config,
        "PS1",
        service_id=SERVICE_ID,
        post_payments=[{"name": "租借", "amount": 300}],
        total_amount=300,
        client=http_client,
        clock=clock,
    )
    assert (early.outcome, early.code) == (Outcome.REJECTED, "INVALID_ORDER_STATE")

    services.sandbox_payscore_user_confirm("PS1")
    query = v3.payscore_query(config, service_id=SERVICE_ID, out_order_no="PS1", client=http_client, clock=clock)
    assert (query.state, query.state_description) == ("DOING", "USER_CONFIRM")

    wrong_total = v3.payscore_complete(
        config,
        "PS1",
        service_id=SERVICE_ID,
        post_payments=[{"name": "租借", "amount": 300}],
        post_discounts=[{"name": "券", "description": "d", "amount": 50}],
        total_amount=300,
        client=http_client,
        clock=clock,
    )
    over_risk = v3.payscore_complete(
        config,
        "PS1",
        service_id=SERVICE_ID,
        post_payments=[{"name": "租借", "amount": 20000}],
        total_amount=20000,
        client=http_client,
        clock=clock,
    )
    completed = v3.payscore_complete(
        config,
        "PS1",
        service_id=SERVICE_ID,
        post_payments=[{"name": "租借", "amount": 300}],
        post_discounts=[{"name": "券", "description": "d", "amount": 50}],
        total_amount=250,
        client=http_client,
        clock=clock,
    )
    assert (wrong_total.outcome, wrong_total.code) == (Outcome.REJECTED, "PARAM_ERROR")
    assert (over_risk.outcome, over_risk.code) == (Outcome.REJECTED, "PARAM_ERROR")
    assert (completed.outcome, completed.state, completed.state_description) == (
        Outcome.SUCCESS,
        "DOING",
        "MCH_COMPLETE",
    )
    assert (completed.total_amount, completed.collection_state) == (250, "USER_PAYING")

    modified = v3.payscore_modify(
        config,
        "PS1",
        service_id=SERVICE_ID,
        post_payments=[{"name": "租借", "amount": 200}],
        total_amount=200,
        reason="调价",
        client=http_client,
        clock=clock,
    )
    assert (modified.outcome, modified.total_amount) == (Outcome.SUCCESS, 200)

    services.sandbox_payscore_user_pay("PS1")
    paid = v3.payscore_query(config, service_id=SERVICE_ID, out_order_no="PS1", client=http_client, clock=clock)
    assert (paid.state, paid.collection_state) == ("DONE", "USER_PAID")
    assert paid.data["collection"]["paid_amount"] == 200
    assert services.sandbox_ledger()["PS1"]["charged"] == 200

    receiver = Receiver()
    delivered = services.sandbox_deliver_due_notifications(client=httpx.Client(transport=httpx.MockTransport(receiver)))

    assert delivered == 2
    platform = {wechat_merchant.platform_certificate_serial: wechat_merchant.platform_certificate_pem}
    notes = [
        v3.parse_notification(r.headers, r.content, platform_keys=platform, api_v3_key=API_V3_KEY, clock=clock)
        for r in receiver.received
    ]
    assert [n.event_type for n in notes] == ["PAYSCORE.USER_CONFIRM", "PAYSCORE.USER_PAID"]
    assert notes[0].resource["state"] == "DOING" and notes[0].resource["out_order_no"] == "PS1"
    assert notes[1].resource["collection"]["state"] == "USER_PAID"
    assert notes[1].resource["order_id"] == created.order_id
    assert str(receiver.received[0].url) == NOTIFY_URL
    assert SandboxNotification.objects.filter(delivered_at__isnull=True).count() == 0


def test_create_with_different_content_is_refused(config, http_client, sandbox_clock):
    clock = clock_of(sandbox_clock)
    v3.payscore_create(config, create_request(), client=http_client, clock=clock)
    other = v3.payscore_create(
        config, create_request(risk_fund=v3.RiskFund(name="DEPOSIT", amount=1)), client=http_client, clock=clock
    )
    assert (other.outcome, other.code) == (Outcome.REJECTED, "INVALID_REQUEST")


def test_cancel_and_sync(config, http_client, sandbox_clock):
    clock = clock_of(sandbox_clock)
    v3.payscore_create(config, create_request("C1"), client=http_client, clock=clock)
    cancelled = v3.payscore_cancel(
        config, "C1", service_id=SERVICE_ID, reason="用户不用了", client=http_client, clock=clock
    )
    twice = v3.payscore_cancel(config, "C1", service_id=SERVICE_ID, reason="again", client=http_client, clock=clock)
    assert cancelled.outcome is Outcome.SUCCESS
    assert (twice.outcome, twice.code) == (Outcome.REJECTED, "ORDER_CANCELED")

    v3.payscore_create(config, create_request("S1"), client=http_client, clock=clock)
    services.sandbox_payscore_user_confirm("S1")
    v3.payscore_complete(
        config,
        "S1",
        service_id=SERVICE_ID,
        post_payments=[{"name": "x", "amount": 100}],
        total_amount=100,
        client=http_client,
        clock=clock,
    )
    synced = v3.payscore_sync(
        config, "S1", service_id=SERVICE_ID, paid_time="20240101120000", client=http_client, clock=clock
    )
    assert (synced.outcome, synced.state, synced.collection_state) == (Outcome.SUCCESS, "DONE", "USER_PAID")
    missing = v3.payscore_query(config, service_id=SERVICE_ID, out_order_no="NOPE", client=http_client, clock=clock)
    assert (missing.outcome, missing.code) == (Outcome.REJECTED, "ORDER_NOT_EXIST")


def test_auto_scenario_confirms_and_pays(config, http_client, sandbox_clock):
    clock = clock_of(sandbox_clock)
    http_client.headers["X-Sandbox-Scenario"] = "PAYSCORE_AUTO"
    created = v3.payscore_create(config, create_request("A1"), client=http_client, clock=clock)
    assert created.state == "CREATED"  # the answer is the created order; the user confirms right after
    assert SandboxPayscoreOrder.objects.get().state == "DOING"
    v3.payscore_complete(
        config,
        "A1",
        service_id=SERVICE_ID,
        post_payments=[{"name": "x", "amount": 100}],
        total_amount=100,
        client=http_client,
        clock=clock,
    )
    assert SandboxPayscoreOrder.objects.get().state == "DONE"
    assert list(SandboxNotification.objects.values_list("event_type", flat=True).order_by("pk")) == [
        "PAYSCORE.USER_CONFIRM",
        "PAYSCORE.USER_PAID",
    ]


def test_public_key_mode(wechat_merchant, merchant_keys, http_client, sandbox_clock):
    services.sandbox_register_wechat_merchant(
        mch_id=MCH_ID,
        appid=wechat_merchant.appid,
        api_v2_key="abcdefghijklmnopqrstuvwxyz012345",
        api_v3_key=API_V3_KEY,
        merchant_certificate_pem=merchant_keys.cert_pem,
        key_mode="PUBLIC_KEY",
    )
    wechat_merchant.refresh_from_db()
    assert wechat_merchant.platform_public_key_id.startswith("PUB_KEY_ID_")
    config = v3_config(wechat_merchant, merchant_keys, public_key_mode=True)
    created = v3.payscore_create(config, create_request(), client=http_client, clock=sandbox_clock.timestamp)
    assert created.outcome is Outcome.SUCCESS
    # A client that only knows the certificate cannot verify public-key-mode answers.
    cert_only = v3_config(wechat_merchant, merchant_keys)
    result = v3.payscore_query(cert_only, service_id=SERVICE_ID, out_order_no="PS1", client=http_client)
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "BAD_SIGNATURE")

    services.sandbox_payscore_user_confirm("PS1")
    receiver = Receiver()
    services.sandbox_deliver_due_notifications(client=httpx.Client(transport=httpx.MockTransport(receiver)))
    note = v3.parse_notification(
        receiver.received[0].headers,
        receiver.received[0].content,
        platform_keys={wechat_merchant.platform_public_key_id: wechat_merchant.platform_public_key_pem},
        api_v3_key=API_V3_KEY,
        clock=sandbox_clock.timestamp,
    )
    assert note.serial == wechat_merchant.platform_public_key_id


def test_registration_is_idempotent_and_keeps_platform_key(wechat_merchant, merchant_keys):
    again = services.sandbox_register_wechat_merchant(
        mch_id=MCH_ID,
        appid="wxnew",
        api_v2_key="k" * 32,
        api_v3_key=API_V3_KEY,
        merchant_certificate_pem=merchant_keys.cert_pem,
    )
    assert again.pk == wechat_merchant.pk and again.appid == "wxnew"
    assert again.platform_certificate_serial == wechat_merchant.platform_certificate_serial
    assert again.api_v2_key.reveal() == "k" * 32


def test_wrong_merchant_key_is_refused(wechat_merchant, merchant_keys, other_keys, http_client, sandbox_clock):
    # Signed with another key, naming the registered certificate's serial.
    config = v3_config(wechat_merchant, merchant_keys, merchant_private_key_pem=other_keys.private_pem)
    result = v3.payscore_create(config, create_request(), client=http_client, clock=sandbox_clock.timestamp)
    assert (result.outcome, result.code, result.http_status) == (Outcome.REJECTED, "SIGN_ERROR", 401)
    assert not SandboxPayscoreOrder.objects.exists()


def test_unknown_serial_and_stale_timestamp_are_refused(
    wechat_merchant, merchant_keys, other_keys, http_client, sandbox_clock
):
    unknown = v3_config(wechat_merchant, merchant_keys, merchant_serial_no=other_keys.serial)
    result = v3.payscore_create(unknown, create_request(), client=http_client, clock=sandbox_clock.timestamp)
    assert (result.code, result.http_status) == ("SIGN_ERROR", 401)

    # A stale timestamp (301 s): signed raw, since a client with that clock would also reject the fresh answer.
    body = b"{}"
    auth = v3.build_authorization(
        mchid=MCH_ID,
        serial_no=merchant_keys.serial,
        private_key=merchant_keys.private_pem,
        method="POST",
        path_with_query="/sandbox/wechatpay/v3/payscore/serviceorder",
        body=body,
        timestamp=int(sandbox_clock.timestamp()) - 301,
    )
    stale = http_client.post(WX_BASE + "/v3/payscore/serviceorder", content=body, headers={"Authorization": auth})
    assert stale.status_code == 401 and stale.json()["code"] == "SIGN_ERROR"
    assert "timestamp" in stale.json()["message"]
    assert not SandboxPayscoreOrder.objects.exists()


def test_tampered_body_and_unknown_merchant(wechat_merchant, merchant_keys, http_client, sandbox_clock):
    body = json.dumps({"out_order_no": "T1"}).encode()
    path = "/sandbox/wechatpay/v3/payscore/serviceorder"
    auth = v3.build_authorization(
        mchid=MCH_ID,
        serial_no=merchant_keys.serial,
        private_key=merchant_keys.private_pem,
        method="POST",
        path_with_query=path,
        body=body,
        timestamp=int(sandbox_clock.timestamp()),
    )
    tampered = http_client.post(
        WX_BASE + "/v3/payscore/serviceorder", content=body + b" ", headers={"Authorization": auth}
    )
    assert tampered.status_code == 401 and tampered.json()["code"] == "SIGN_ERROR"
    assert tampered.headers["Wechatpay-Serial"] == wechat_merchant.platform_certificate_serial

    stranger = auth.replace(f'mchid="{MCH_ID}"', 'mchid="1111111111"')
    refused = http_client.post(WX_BASE + "/v3/payscore/serviceorder", content=body, headers={"Authorization": stranger})
    assert refused.status_code == 403 and refused.json()["code"] == "NO_AUTH"
    missing = http_client.post(WX_BASE + "/v3/payscore/serviceorder", content=body)
    assert missing.status_code == 401 and missing.json()["code"] == "SIGN_ERROR"


def test_out_order_no_with_special_characters(config, http_client, sandbox_clock):
    clock = clock_of(sandbox_clock)
    v3.payscore_create(config, create_request("A|B*C-1"), client=http_client, clock=clock)
    services.sandbox_payscore_user_confirm("A|B*C-1")
    result = v3.payscore_cancel(config, "A|B*C-1", service_id=SERVICE_ID, reason="r", client=http_client, clock=clock)
    assert result.outcome is Outcome.SUCCESS


def test_facemch_user(config, wechat_provider, merchant_keys, http_client, sandbox_clock):
    face = http_client.post("http://testserver/sandbox/terminal/face_code", json={"authinfo": "nope"})
    assert face.status_code == 400
    sid = "fsid12345678" + "0" * 16
    result = v3.facemch_user(config, sid, client=http_client, clock=sandbox_clock.timestamp)
    assert result.outcome is Outcome.SUCCESS
    assert result.union_id.startswith("oUbx") and result.openid.startswith("oSbx")

    sp_config = v3_config(wechat_provider, merchant_keys, sub_mchid="1900000201", sub_appid="wxsub")
    sp_result = v3.facemch_user(sp_config, sid, client=http_client, clock=sandbox_clock.timestamp)
    assert sp_result.union_id == result.union_id and sp_result.sub_openid
    bad_sub = v3_config(wechat_provider, merchant_keys, sub_mchid="1999999999")
    assert v3.facemch_user(bad_sub, sid, client=http_client, clock=sandbox_clock.timestamp).code == "NO_AUTH"
    # WeChat: sub_mchid is required in service-provider mode — the provider asking for itself is refused.
    no_sub = v3.facemch_user(
        v3_config(wechat_provider, merchant_keys), sid, client=http_client, clock=sandbox_clock.timestamp
    )
    assert (no_sub.outcome, no_sub.code) == (Outcome.REJECTED, "PARAM_ERROR")
    bad_sid = v3.facemch_user(config, "garbage", client=http_client, clock=sandbox_clock.timestamp)
    assert (bad_sid.outcome, bad_sid.code) == (Outcome.REJECTED, "PARAM_ERROR")


def test_device_object_is_validated_and_recorded_on_create_complete_and_modify(config, http_client, sandbox_clock):
    """device (2025-03): the sandbox refuses a device id longer than WeChat's string(32) with WeChat's PARAM_ERROR
    and records, per call, the device object it accepted; the request stays signed and verified."""
    clock = clock_of(sandbox_clock)
    too_long = v3.payscore_create(
        config,
        create_request("D1", device=v3.PayscoreDevice(start_device_id="D" * 33)),
        client=http_client,
        clock=clock,
    )
    assert (too_long.outcome, too_long.code) == (Outcome.REJECTED, "PARAM_ERROR")
    assert too_long.message == "device.start_device_id is at most 32 characters"
    assert not SandboxPayscoreOrder.objects.filter(out_order_no="D1").exists()

    start = v3.PayscoreDevice(start_device_id="S" * 32, materiel_no="https://example.test/m")
    created = v3.payscore_create(config, create_request("D1", device=start), client=http_client, clock=clock)
    assert created.outcome is Outcome.SUCCESS
    services.sandbox_payscore_user_confirm("D1")
    payments = [{"name": "租借", "amount": 300}]
    end = v3.PayscoreDevice(end_device_id="E" * 33)
    refused = v3.payscore_complete(
        config,
        "D1",
        service_id=SERVICE_ID,
        post_payments=payments,
        total_amount=300,
        device=end,
        client=http_client,
        clock=clock,
    )
    assert (refused.outcome, refused.code) == (Outcome.REJECTED, "PARAM_ERROR")
    completed = v3.payscore_complete(
        config,
        "D1",
        service_id=SERVICE_ID,
        post_payments=payments,
        total_amount=300,
        device=v3.PayscoreDevice(end_device_id="END-1"),
        client=http_client,
        clock=clock,
    )
    modified = v3.payscore_modify(
        config,
        "D1",
        service_id=SERVICE_ID,
        post_payments=[{"name": "租借", "amount": 200}],
        total_amount=200,
        reason="调价",
        device={"end_device_id": "END-2"},
        client=http_client,
        clock=clock,
    )
    assert (completed.outcome, modified.outcome) == (Outcome.SUCCESS, Outcome.SUCCESS)
    assert completed.request_fields["body"]["device"] == {"end_device_id": "END-1"}
    assert SandboxPayscoreOrder.objects.get(out_order_no="D1").devices == {
        "create": {"start_device_id": "S" * 32, "materiel_no": "https://example.test/m"},
        "complete": {"end_device_id": "END-1"},
        "modify": {"end_device_id": "END-2"},
    }
