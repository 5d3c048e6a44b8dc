"""Alerts under test: a provider with two merchants (each a store and a device), another provider's merchant, the
console users, and chat robots played by the sandbox over real HTTP (the WSGI transport), every request recorded."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.utils import timezone

from alerts import delivery, robots
from alerts import services as alert_services
from alerts.models import RobotKind, Severity
from payments.models import Payment, PaymentStatus
from portal.models import Merchant, StaffMembership
from sandbox import clock as sandbox_clock
from sandbox.models import SandboxRobot
from sandbox.robots import robot_create
from tests.factories import MerchantFactory, ServiceProviderFactory, StoreFactory, make_device, make_user

Role = StaffMembership.Role


class RecordingTransport(httpx.BaseTransport):
    """Forwards to the app (the sandbox's robots) and keeps every request as sent."""

    def __init__(self, inner: httpx.BaseTransport):
        self.inner = inner
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.inner.handle_request(request)


@dataclass
class World:
    provider: object
    merchant: Merchant
    other: Merchant  # the same provider's second merchant
    foreign: Merchant  # another provider's merchant
    users: dict = field(default_factory=dict)
    device: object = None

    def payment(self, merchant: Merchant | None = None, *, status=PaymentStatus.SUCCESS, **fields) -> Payment:
        merchant = merchant or self.merchant
        store = merchant.stores.first()
        number = Payment.objects.count() + 1
        return Payment.objects.create(
            merchant=merchant,
            store=store,
            channel=merchant.channel,
            method=Payment.Method.CODE,
            out_trade_no=f"T{number:08d}",
            total_fee=fields.pop("total_fee", 1000),
            body="测试",
            request_fingerprint="x" * 64,
            status=status,
            **fields,
        )


@pytest.fixture
def world(db) -> World:
    provider = ServiceProviderFactory(name="甲服务商")
    merchant = MerchantFactory(provider=provider, name="甲商户")
    other = MerchantFactory(provider=provider, name="乙商户")
    foreign = MerchantFactory(name="外商户")
    device, _secret = make_device(StoreFactory(merchant=merchant, name="南山店"), device_id="POS-001")
    for m in (other, foreign):
        make_device(StoreFactory(merchant=m))
    users = {
        "root": make_user("root", superuser=True),
        "p_admin": make_user("p_admin", role=Role.PROVIDER_ADMIN, provider=provider),
        "p_reviewer": make_user("p_reviewer", role=Role.PROVIDER_REVIEWER, provider=provider),
        "m_admin": make_user("m_admin", role=Role.MERCHANT_ADMIN, merchant=merchant),
        "m_staff": make_user("m_staff", role=Role.MERCHANT_STAFF, merchant=merchant),
        "o_admin": make_user("o_admin", role=Role.MERCHANT_ADMIN, merchant=other),
        "f_admin": make_user("f_admin", role=Role.PROVIDER_ADMIN, provider=foreign.provider),
    }
    return World(provider=provider, merchant=merchant, other=other, foreign=foreign, users=users, device=device)


@dataclass
class Robots:
    """The sandbox's robots, reached over HTTP through the app."""

    transport: RecordingTransport

    def wecom(self, owner, *, name="运营群", min_severity=Severity.WARNING, quiet_minutes=0):
        robot = robot_create(SandboxRobot.Kind.WECOM)
        channel = alert_services.channel_create(
            owner=owner,
            name=name,
            kind=RobotKind.WECOM,
            webhook_url=f"http://testserver/sandbox/wecom-robot/{robot.token}",
            min_severity=min_severity,
            quiet_minutes=quiet_minutes,
            user=None,
        )
        return channel, robot

    def dingtalk(self, owner, *, name="钉钉群", secret: str | None = None, quiet_minutes=0):
        robot = robot_create(SandboxRobot.Kind.DINGTALK)
        channel = alert_services.channel_create(
            owner=owner,
            name=name,
            kind=RobotKind.DINGTALK,
            webhook_url=f"http://testserver/sandbox/dingtalk-robot?access_token={robot.token}",
            secret=secret or robot.secret.reveal(),
            quiet_minutes=quiet_minutes,
            user=None,
        )
        return channel, robot


@pytest.fixture
def chat(db, wsgi_transport, monkeypatch, settings) -> Robots:
    transport = RecordingTransport(wsgi_transport)
    monkeypatch.setattr(robots, "robot_client", httpx.Client(transport=transport))
    monkeypatch.setattr(delivery, "_THREADS", 1)  # the WSGI app's database is this thread's (the test transaction)
    settings.PUBLIC_BASE_URL = "http://testserver"
    return Robots(transport=transport)


@pytest.fixture
def clock(monkeypatch):
    """One moment for the product's rules and senders (passed as `now`) and the sandbox's robots."""

    class Clock:
        moment: datetime = timezone.now()

        def now(self) -> datetime:
            return self.moment

        def advance(self, **delta) -> datetime:
            self.moment += timedelta(**delta)
            return self.moment

    fake = Clock()
    monkeypatch.setattr(sandbox_clock, "now", fake.now)
    return fake


@dataclass
class Stub:
    """A robot on a real socket that answers as the test says: a status and body, or silence past the timeout."""

    url: str
    answer: tuple[int, bytes] = (200, b'{"errcode":0,"errmsg":"ok"}')
    delay: float = 0.0
    received: list[bytes] = field(default_factory=list)


@pytest.fixture
def stub_robot(monkeypatch, settings):
    settings.ALERT_ROBOT_TIMEOUT = 0.5
    state = Stub(url="")
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            state.received.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            if state.delay:
                done.wait(state.delay)
            status, body = state.answer
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/cgi-bin/webhook/send?key=stub-robot-key-0123456789"
    monkeypatch.setattr(robots, "robot_client", robots.new_client())
    yield state
    done.set()
    server.shutdown()
    server.server_close()
