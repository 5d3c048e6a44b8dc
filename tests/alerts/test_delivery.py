"""Alerts reach the chat robots over real HTTP: WeCom's and DingTalk's message formats, DingTalk's signature (checked
by an implementation of the test's own and by the sandbox), refusals, timeouts and 5xx with bounded retries, and at
most ALERT_ROBOT_MESSAGES_PER_MINUTE messages a minute per robot with the excess in one summary."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from django.utils import timezone

from alerts import delivery, rules, tasks
from alerts import services as alert_services
from alerts.models import AlertChannel, AlertDelivery, RobotKind
from payments.models import PaymentStatus
from portal.celery import app
from sandbox.models import SandboxRobotMessage

pytestmark = pytest.mark.django_db
Status = AlertDelivery.Status


def received(robot) -> list[dict]:
    return [json.loads(m.body) for m in SandboxRobotMessage.objects.filter(robot=robot, errcode=0).order_by("id")]


def test_an_alert_reaches_a_wecom_group_robot(world, chat, clock):
    channel, robot = chat.wecom(world.provider)
    payment = world.payment(status=PaymentStatus.ATTENTION, total_fee=1234)

    rules.evaluate(now=clock.now())
    assert delivery.deliver(now=clock.now()) == 1

    (message,) = received(robot)
    assert message["msgtype"] == "markdown"
    content = message["markdown"]["content"]
    assert content.startswith(f"### 【严重】支付订单 {payment.out_trade_no} 需人工处理")
    assert "¥12.34" in content and "南山店" in content and "甲商户" in content
    assert "(http://testserver/alerts/" in content  # a link to the alert in the console
    (request,) = chat.transport.requests
    assert request.url.path == f"/sandbox/wecom-robot/{robot.token}"
    assert request.headers["Content-Type"].startswith("application/json")
    sent = AlertDelivery.objects.get(channel=channel)
    assert (sent.status, sent.attempts, sent.in_summary, sent.last_error) == (Status.SENT, 1, False, "")


def independent_dingtalk_sign(secret: str, timestamp: str) -> str:
    """DingTalk's 加签 as its documentation states it, written apart from the product's: HmacSHA256 over
    timestamp + "\\n" + secret keyed with the secret, then Base64, then URL-encoding."""
    mac = crypto_hmac.HMAC(secret.encode("utf-8"), hashes.SHA256())
    mac.update((timestamp + "\n" + secret).encode("utf-8"))
    return quote(base64.b64encode(mac.finalize()).decode("ascii"), safe="")


def test_a_dingtalk_message_is_signed_as_dingtalk_documents(world, chat, clock):
    channel, robot = chat.dingtalk(world.merchant)
    world.payment(status=PaymentStatus.ATTENTION)

    rules.evaluate(now=clock.now())
    delivery.deliver(now=clock.now())

    (request,) = chat.transport.requests
    raw_query = dict(part.split("=", 1) for part in request.url.query.decode().split("&"))
    assert raw_query["access_token"] == robot.token
    timestamp = raw_query["timestamp"]
    assert abs(int(timestamp) - timezone.now().timestamp() * 1000) < 60_000  # milliseconds, now
    assert raw_query["sign"] == independent_dingtalk_sign(robot.secret.reveal(), timestamp)
    body = json.loads(request.content)
    assert body["msgtype"] == "markdown" and body["markdown"]["title"].startswith("【严重】")
    assert "需人工处理" in body["markdown"]["text"]
    assert [m["msgtype"] for m in received(robot)] == ["markdown"]  # the sandbox verified it too
    assert AlertDelivery.objects.get(channel=channel).status == Status.SENT


def test_a_wrong_dingtalk_secret_is_refused_and_recorded_as_failed_without_retry(world, chat, clock):
    channel, robot = chat.dingtalk(world.merchant, secret="SEC" + "0" * 64)
    world.payment(status=PaymentStatus.ATTENTION)

    rules.evaluate(now=clock.now())
    delivery.deliver(now=clock.now())

    failed = AlertDelivery.objects.get(channel=channel)
    assert (failed.status, failed.next_attempt_at) == (Status.FAILED, None)
    assert failed.last_error == "errcode 310000: sign not match"
    assert received(robot) == []


def test_a_timestamp_an_hour_off_dingtalks_clock_is_refused(world, chat, clock):
    channel, _robot = chat.dingtalk(world.merchant)
    world.payment(status=PaymentStatus.ATTENTION)
    rules.evaluate()
    clock.advance(hours=1, minutes=1)  # DingTalk's clock, as the sandbox keeps it

    delivery.deliver()

    assert AlertDelivery.objects.get(channel=channel).last_error == "errcode 310000: invalid timestamp"


def test_an_answer_with_an_errcode_is_a_failure(world, chat, clock):
    channel, robot = chat.wecom(world.merchant)
    AlertChannel.objects.filter(pk=channel.pk).update(
        webhook_url="http://testserver/sandbox/wecom-robot/no-such-robot-key-000000"
    )
    world.payment(status=PaymentStatus.ATTENTION)

    rules.evaluate(now=clock.now())
    delivery.deliver(now=clock.now())

    failed = AlertDelivery.objects.get(channel=channel)
    assert (failed.status, failed.last_error) == (Status.FAILED, "errcode 93000: invalid webhook url")


def stub_channel(world, stub_robot) -> AlertChannel:
    return alert_services.channel_create(
        owner=world.merchant, name="stub", kind=RobotKind.WECOM, webhook_url=stub_robot.url, quiet_minutes=0, user=None
    )


def test_a_timeout_is_recorded_and_retried_a_bounded_number_of_times(world, stub_robot, settings):
    stub_robot.delay = 3  # past ALERT_ROBOT_TIMEOUT (0.5 s)
    channel = stub_channel(world, stub_robot)
    world.payment(status=PaymentStatus.ATTENTION)
    now = timezone.now()
    rules.evaluate(now=now)

    delivery.deliver(now=now)

    waiting = AlertDelivery.objects.get(channel=channel)
    assert (waiting.status, waiting.attempts, waiting.last_error) == (Status.PENDING, 1, "timeout")
    assert waiting.next_attempt_at == now + timedelta(seconds=settings.ALERT_ROBOT_RETRY_SCHEDULE[0])
    assert delivery.deliver(now=now + timedelta(seconds=5)) == 0  # not due yet

    for wait in settings.ALERT_ROBOT_RETRY_SCHEDULE:
        now += timedelta(seconds=wait)
        assert delivery.deliver(now=now) == 1

    failed = AlertDelivery.objects.get(channel=channel)
    assert (failed.status, failed.attempts, failed.last_error) == (Status.FAILED, 4, "timeout")
    assert len(stub_robot.received) == 4


def test_a_5xx_answer_is_retried_and_then_delivered(world, stub_robot):
    stub_robot.answer = (502, b"<html>Bad Gateway</html>")
    channel = stub_channel(world, stub_robot)
    world.payment(status=PaymentStatus.ATTENTION)
    now = timezone.now()
    rules.evaluate(now=now)

    delivery.deliver(now=now)
    assert AlertDelivery.objects.get(channel=channel).last_error == "HTTP 502"

    stub_robot.answer = (200, b'{"errcode":0,"errmsg":"ok"}')
    delivery.deliver(now=now + timedelta(seconds=15))
    sent = AlertDelivery.objects.get(channel=channel)
    assert (sent.status, sent.attempts) == (Status.SENT, 2)


def test_the_robots_address_never_reaches_an_error_or_a_log(world, stub_robot, caplog):
    stub_robot.answer = (
        200,
        json.dumps({"errcode": 93000, "errmsg": f"invalid webhook url {stub_robot.url}"}).encode(),
    )
    channel = stub_channel(world, stub_robot)
    world.payment(status=PaymentStatus.ATTENTION)
    rules.evaluate()

    delivery.deliver()

    failed = AlertDelivery.objects.get(channel=channel)
    assert failed.status == Status.FAILED and failed.last_error.startswith("errcode 93000: invalid webhook url ")
    for text in (failed.last_error, caplog.text):
        assert "stub-robot-key-0123456789" not in text
    assert "alerts: robot" in caplog.text


def test_a_robot_is_sent_at_most_its_messages_a_minute_and_the_rest_in_one_summary(world, chat, clock, settings):
    channel, robot = chat.wecom(world.provider)
    for _ in range(25):
        world.payment(status=PaymentStatus.ATTENTION)
    start = clock.now()
    rules.evaluate(now=start)

    assert delivery.deliver(now=start) == settings.ALERT_ROBOT_MESSAGES_PER_MINUTE == 20

    messages = SandboxRobotMessage.objects.filter(robot=robot)
    assert messages.count() == 20 and not messages.exclude(errcode=0).exists()  # the robot refused none
    deliveries = AlertDelivery.objects.filter(channel=channel)
    assert deliveries.filter(status=Status.SENT).count() == 25
    assert deliveries.filter(in_summary=True).count() == 6
    summary = json.loads(messages.order_by("-id").first().body)["markdown"]["content"]
    assert summary.startswith("### 另有 6 条告警") and summary.count("- 【严重】") == 6

    for _ in range(2):
        world.payment(status=PaymentStatus.ATTENTION)
    rules.evaluate(now=clock.advance(seconds=30))
    assert delivery.deliver(now=clock.now()) == 0  # the minute's messages are used up: they wait
    assert deliveries.filter(status=Status.PENDING).count() == 2

    assert delivery.deliver(now=clock.advance(seconds=31)) == 2
    assert deliveries.filter(status=Status.SENT).count() == 27
    assert not SandboxRobotMessage.objects.exclude(errcode=0).exists()


def test_the_beat_task_evaluates_and_sends(world, chat, settings):
    _channel, robot = chat.wecom(world.merchant)
    world.payment(status=PaymentStatus.ATTENTION)

    tasks.evaluate()

    assert len(received(robot)) == 1
    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"alerts.tasks.evaluate", "alerts.tasks.prune"} <= schedule
    app.loader.import_default_modules()  # the tasks modules, as a worker imports them
    assert {"alerts.tasks.evaluate", "alerts.tasks.prune"} <= set(app.tasks)


def test_old_alerts_are_pruned_with_their_deliveries(world, chat, settings):
    chat.wecom(world.merchant)
    world.payment(status=PaymentStatus.ATTENTION)
    rules.evaluate(now=timezone.now() - timedelta(days=settings.ALERT_RETENTION_DAYS + 1))
    world.payment(status=PaymentStatus.ATTENTION)
    rules.evaluate()

    tasks.prune()

    assert AlertDelivery.objects.count() == 1
    assert AlertDelivery.objects.get().alert.created_at > timezone.now() - timedelta(days=1)


def test_the_parse_of_a_signed_url_keeps_the_robots_own_parameters():
    from alerts.robots import dingtalk_signed_url

    url = dingtalk_signed_url(
        "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1", "SECx", 1700000000000
    )
    query = parse_qs(urlsplit(url).query)
    assert query["access_token"] == ["abc"] and query["timestamp"] == ["1700000000000"] and len(query["sign"]) == 1
