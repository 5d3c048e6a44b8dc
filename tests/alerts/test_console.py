"""The console's alert pages: scoped by role, read marks and the header's unread count, the robots' pages for provider
and merchant admins (audited; never showing a robot's address or secret again), in Chinese by default."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts import rules
from alerts.models import Alert, AlertChannel, AlertRead, RobotKind, Severity
from payments.models import PaymentStatus
from portal.models import AuditLog, Store
from sandbox.models import SandboxRobot, SandboxRobotMessage
from sandbox.robots import robot_create
from tests.factories import login_verified

pytestmark = pytest.mark.django_db


def get(client, user, url: str, language: str = "zh-hans"):
    login_verified(client, user)
    client.cookies["django_language"] = language
    return client.get(url)


@pytest.fixture
def alerted(world):
    """An ATTENTION payment of each merchant, alerted."""
    payments = {
        m: world.payment(m, status=PaymentStatus.ATTENTION) for m in (world.merchant, world.other, world.foreign)
    }
    rules.evaluate()
    return {m: Alert.objects.get(data__payment=p.pk) for m, p in payments.items()}


def titles(html: str) -> set[str]:
    return set(re.findall(r"支付订单 (T\d+) 需人工处理", html))


def test_each_role_sees_only_its_alerts(client, world, alerted):
    numbers = {m: a.data["out_trade_no"] for m, a in alerted.items()}

    def seen(role):
        response = get(client, world.users[role], "/alerts/")
        assert response.status_code == 200
        return titles(response.content.decode())

    assert seen("root") == set(numbers.values())
    assert seen("p_admin") == seen("p_reviewer") == {numbers[world.merchant], numbers[world.other]}
    assert seen("m_admin") == seen("m_staff") == {numbers[world.merchant]}
    assert seen("o_admin") == {numbers[world.other]}
    assert seen("f_admin") == {numbers[world.foreign]}
    # Another merchant's alert is not found, nor marked read.
    assert get(client, world.users["m_admin"], f"/alerts/{alerted[world.other].pk}/").status_code == 404
    assert client.post(f"/alerts/{alerted[world.other].pk}/read").status_code == 404
    assert not AlertRead.objects.exists()


def test_a_merchant_filter_names_only_merchants_the_user_sees(client, world, alerted):
    html = get(client, world.users["p_admin"], f"/alerts/?merchant={world.foreign.pk}").content.decode()
    assert titles(html) == {alerted[m].data["out_trade_no"] for m in (world.merchant, world.other)}  # ignored
    html = get(client, world.users["p_admin"], f"/alerts/?merchant={world.other.pk}").content.decode()
    assert titles(html) == {alerted[world.other].data["out_trade_no"]}
    html = get(client, world.users["m_admin"], f"/alerts/?merchant={world.other.pk}").content.decode()
    assert titles(html) == {alerted[world.merchant].data["out_trade_no"]}  # no merchant filter for merchant staff


def test_read_marks_are_per_user_and_the_header_counts_the_unread(client, world, alerted):
    admin, staff = world.users["m_admin"], world.users["m_staff"]
    html = get(client, admin, "/alerts/").content.decode()
    assert '未读告警 <span class="badge bad">1</span>' in html

    detail = get(client, admin, f"/alerts/{alerted[world.merchant].pk}/").content.decode()
    assert "前往处理" in detail and f"/payments/{alerted[world.merchant].data['payment']}/" in detail

    assert "未读告警" not in get(client, admin, "/alerts/").content.decode()
    assert '未读告警 <span class="badge bad">1</span>' in get(client, staff, "/alerts/").content.decode()
    assert titles(get(client, staff, "/alerts/?read=read").content.decode()) == set()
    assert len(titles(get(client, admin, "/alerts/?read=read").content.decode())) == 1


def test_mark_all_read_and_the_filters(client, world, alerted):
    provider_admin = world.users["p_admin"]
    rules.evaluate()
    login_verified(client, provider_admin)
    response = client.post("/alerts/read-all", {"next": "/alerts/?rule=payment_attention"})
    assert response.status_code == 302 and response["Location"] == "/alerts/?rule=payment_attention"
    assert AlertRead.objects.filter(user=provider_admin).count() == 2
    assert titles(get(client, provider_admin, "/alerts/?read=unread").content.decode()) == set()
    assert titles(get(client, provider_admin, f"/alerts/?severity={Severity.WARNING}").content.decode()) == set()
    html = get(client, provider_admin, "/alerts/?rule=device_offline").content.decode()
    assert titles(html) == set() and "没有符合筛选条件的告警。" in html


def test_the_unread_count_is_one_query_per_page(client, world, alerted):
    login_verified(client, world.users["p_admin"])
    with CaptureQueriesContext(connection) as captured:
        client.get("/alerts/")
    assert sum('"alerts_alertread"' in query["sql"] and "COUNT" in query["sql"] for query in captured) == 1


def test_the_pages_in_english(client, world, alerted):
    html = get(client, world.users["m_admin"], "/alerts/", "en").content.decode()
    assert "needs attention" in html and "Mark all read" in html


# --- robots --------------------------------------------------------------------------------------------------------


def create(client, user, **fields):
    login_verified(client, user)
    data = {"name": "运营群", "kind": RobotKind.WECOM, "min_severity": Severity.WARNING, "quiet_minutes": 30} | fields
    return client.post("/alerts/robots/new", data)


def test_only_admins_manage_robots(client, world):
    for role in ("p_reviewer", "m_staff"):
        assert get(client, world.users[role], "/alerts/robots/").status_code == 403
    for role in ("p_admin", "m_admin"):
        assert get(client, world.users[role], "/alerts/robots/").status_code == 200
    nav = get(client, world.users["m_staff"], "/alerts/").content.decode()
    assert 'href="/alerts/robots/"' not in nav and 'href="/alerts/"' in nav


def test_a_merchant_admin_cannot_make_a_robot_for_another_merchant_or_the_provider(client, world):
    robot_url = "http://testserver/sandbox/wecom-robot/abcdef0123456789abcdef"
    for owner in (f"merchant:{world.other.pk}", f"merchant:{world.foreign.pk}", f"provider:{world.provider.pk}"):
        response = create(client, world.users["m_admin"], owner=owner, webhook_url=robot_url)
        assert response.status_code == 400
    assert not AlertChannel.objects.exists()

    assert (
        create(client, world.users["m_admin"], owner=f"merchant:{world.merchant.pk}", webhook_url=robot_url).status_code
        == 302
    )
    assert AlertChannel.objects.get().merchant == world.merchant


def test_a_provider_admin_makes_robots_for_the_provider_or_its_merchants_only(client, world):
    url = "http://testserver/sandbox/dingtalk-robot?access_token=tok"
    admin = world.users["p_admin"]
    assert create(client, admin, owner=f"merchant:{world.foreign.pk}", kind=RobotKind.DINGTALK, webhook_url=url,
                  secret="SECabc").status_code == 400  # fmt: skip
    assert create(client, admin, owner=f"provider:{world.provider.pk}", kind=RobotKind.DINGTALK, webhook_url=url,
                  secret="SECabc").status_code == 302  # fmt: skip
    assert AlertChannel.objects.get().provider == world.provider


def test_a_dingtalk_robot_needs_its_access_token_and_secret(client, world):
    owner = f"merchant:{world.merchant.pk}"
    response = create(client, world.users["m_admin"], owner=owner, kind=RobotKind.DINGTALK,
                      webhook_url="https://oapi.dingtalk.com/robot/send", secret="SECx")  # fmt: skip
    assert response.status_code == 400 and "末尾带有 access_token" in response.content.decode()
    response = create(client, world.users["m_admin"], owner=owner, kind=RobotKind.DINGTALK,
                      webhook_url="https://oapi.dingtalk.com/robot/send?access_token=t")  # fmt: skip
    assert response.status_code == 400 and "加签密钥" in response.content.decode()


def test_robots_of_others_are_not_found(client, world, chat):
    channel, _ = chat.wecom(world.other)
    login_verified(client, world.users["m_admin"])
    assert world.other.name not in client.get("/alerts/robots/").content.decode()
    for action in ("test", "toggle", "delete"):
        assert client.post(f"/alerts/robots/{channel.pk}/{action}", {"confirm": "yes"}).status_code == 404
    channel.refresh_from_db()
    assert (
        channel.is_active
        and not AuditLog.objects.filter(action__startswith="alert_channel.").exclude(actor=None).exists()
    )


def test_a_robots_secrets_never_appear_on_a_page_or_in_the_audit_log(client, world, chat):
    robot = robot_create(SandboxRobot.Kind.DINGTALK)
    secret = robot.secret.reveal()
    admin = world.users["p_admin"]
    response = create(
        client, admin, owner=f"provider:{world.provider.pk}", kind=RobotKind.DINGTALK, name="钉钉运营群",
        webhook_url=f"http://testserver/sandbox/dingtalk-robot?access_token={robot.token}", secret=secret,
    )  # fmt: skip
    assert response.status_code == 302
    channel = AlertChannel.objects.get()
    world.payment(status=PaymentStatus.ATTENTION)
    rules.evaluate()

    pages = [client.get(url).content.decode() for url in ("/alerts/robots/", "/alerts/", "/audit/")]
    pages.append(client.get(f"/alerts/{Alert.objects.get().pk}/").content.decode())
    pages.append(client.post(f"/alerts/robots/{channel.pk}/test", follow=True).content.decode())
    for html in pages:
        assert robot.token not in html and secret not in html
    assert "<code>http://testserver</code>" in pages[0]  # what is shown of the address
    assert "机器人 钉钉运营群 已接收测试消息。" in pages[-1]
    details = str(list(AuditLog.objects.filter(action__startswith="alert_channel.").values_list("details", flat=True)))
    assert robot.token not in details and secret not in details
    assert "添加了告警机器人 钉钉运营群" in pages[2]


def test_a_robot_is_tested_disabled_and_deleted_with_an_audit_entry_for_each(client, world, chat):
    channel, robot = chat.wecom(world.merchant, name="门店群")
    login_verified(client, world.users["m_admin"])
    client.cookies["django_language"] = "zh-hans"

    page = client.post(f"/alerts/robots/{channel.pk}/test", follow=True).content.decode()
    assert "机器人 门店群 已接收测试消息。" in page
    assert "刷脸支付管理台测试消息" in SandboxRobotMessage.objects.get(robot=robot).body

    client.post(f"/alerts/robots/{channel.pk}/toggle")
    channel.refresh_from_db()
    assert not channel.is_active
    client.post(f"/alerts/robots/{channel.pk}/toggle")
    confirm = client.post(f"/alerts/robots/{channel.pk}/delete").content.decode()
    assert "删除机器人" in confirm and AlertChannel.objects.filter(pk=channel.pk).exists()
    client.post(f"/alerts/robots/{channel.pk}/delete", {"confirm": "yes"})
    assert not AlertChannel.objects.filter(pk=channel.pk).exists()

    actions = list(AuditLog.objects.filter(actor=world.users["m_admin"]).values_list("action", "merchant"))
    assert actions == [(a, world.merchant.pk) for a in ("alert_channel.delete", "alert_channel.enable",
                                                         "alert_channel.disable", "alert_channel.test")]  # fmt: skip
    audit = client.get("/audit/").content.decode()
    for sentence in (
        "删除了告警机器人 门店群",
        "启用了告警机器人 门店群",
        "停用了告警机器人 门店群",
        "向告警机器人 门店群 发送了测试消息",
    ):
        assert sentence in audit


def test_a_failed_test_message_says_why(client, world, chat):
    channel, _robot = chat.dingtalk(world.merchant, secret="SEC" + "1" * 64)
    login_verified(client, world.users["m_admin"])
    client.cookies["django_language"] = "zh-hans"
    page = client.post(f"/alerts/robots/{channel.pk}/test", follow=True).content.decode()
    assert "未接收测试消息：errcode 310000: sign not match" in page


# --- a store's opening hours ------------------------------------------------------------------------------------------


def test_a_stores_opening_hours_are_edited_in_its_form_and_audited(client, world):
    store = world.device.store
    login_verified(client, world.users["m_admin"])
    client.cookies["django_language"] = "zh-hans"
    form = client.get(f"/stores/{store.pk}/edit/").content.decode()
    assert "开门时间" in form and "打烊时间" in form and 'type="time"' in form

    response = client.post(f"/stores/{store.pk}/edit/", {"name": store.name, "opens_at": "09:00"})
    assert response.status_code == 400 and "请同时填写开门和打烊时间，或都不填。" in response.content.decode()
    response = client.post(f"/stores/{store.pk}/edit/", {"name": store.name, "opens_at": "09:00", "closes_at": "21:30"})
    assert response.status_code == 302
    store = Store.objects.get(pk=store.pk)
    assert (store.opens_at.isoformat(), store.closes_at.isoformat()) == ("09:00:00", "21:30:00")
    assert AuditLog.objects.get(action="store.update").details["opens_at"] == {"from": None, "to": "09:00"}
    assert "开门时间 — → 09:00" in re.sub(r"<[^>]+>", " ", client.get("/audit/").content.decode()).replace("  ", " ")
