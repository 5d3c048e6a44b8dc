"""The console speaks Chinese everywhere (the issue's acceptance test): for each console role, every page reachable
by links from the home page, rendered in zh-hans, shows neither an English string our catalogs translate nor a raw
enum code (SUCCESS, WECHAT_DIRECT, PROVIDER_ADMIN, …) where its display name belongs."""

from __future__ import annotations

import ast
import functools
import re
import warnings
from collections import Counter, defaultdict
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from django.apps import apps
from django.conf import settings
from django.urls import Resolver404, resolve
from django.utils import timezone

from alerts import rules as alert_rules
from alerts import services as alert_services
from alerts.models import RobotKind
from members import services as member_services
from members.models import Member
from merchant_api import services as api_client_services
from payments import services as payment_services
from payments.models import Payment, PaymentEvent, PaymentStatus, Refund
from payscore.models import ServiceOrder
from portal.models import Merchant, StaffMembership
from reconciliation.models import Bill, DayResult, Difference
from tests.factories import MerchantFactory, StoreFactory, login_verified, make_device, make_user
from webhooks import services as webhook_services
from webhooks.models import SUBSCRIBABLE, WebhookAttempt, WebhookDelivery

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role

# --- what counts as untranslated -------------------------------------------------------------------------------------

PROJECT_APPS = ("portal", "payments", "payscore", "members", "reconciliation", "webhooks", "merchant_api", "alerts")


def _po_string(lines: list[str]) -> str:
    return "".join(ast.literal_eval(line) for line in lines)


def read_catalog(path: Path) -> dict[str, str]:
    """{msgid: msgstr} of a .po file (plural forms: each msgid with the first form; fuzzy entries: no translation,
    as gettext ignores them)."""
    entries: dict[str, str] = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, list[str]] = {}
        current = None
        fuzzy = False
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            elif line.startswith("#") or not line:
                continue
            elif line.startswith('"') and current:
                fields[current].append(line)
            else:
                keyword, _, value = line.partition(" ")
                current = keyword
                fields[current] = [value]
        if "msgid" not in fields:
            continue
        translation = "" if fuzzy else _po_string(fields.get("msgstr", fields.get("msgstr[0]", ['""'])))
        for key in ("msgid", "msgid_plural"):
            if key in fields and (msgid := _po_string(fields[key])):
                entries[msgid] = translation
    return entries


@functools.cache
def english_catalog_strings() -> frozenset[str]:
    """Every msgid of our catalogs whose Chinese differs from the English (a brand name translated as itself, e.g.
    "UMF", is not a sign of anything)."""
    root = Path(settings.BASE_DIR)
    paths = [path for path in root.glob("**/locale/*/LC_MESSAGES/django.po") if ".venv" not in path.parts]
    assert paths, "no catalogs found"
    strings = set()
    for path in paths:
        for msgid, translation in read_catalog(path).items():
            if translation != msgid and not re.search(r"%[(\w)]|\{\w*\}", msgid):
                strings.add(msgid)
    return frozenset(strings)


# Choice values that may be shown as they are. Keep it tiny; every entry says why.
ALLOWED_CODES = {
    "API",  # PaymentEvent.Actor "API", but also the ordinary word in "API 客户端" (API clients)
}


@functools.cache
def enum_codes() -> frozenset[str]:
    """Values of every choices field of our models (the sandbox's stand-in models excluded: their values are
    WeChat's and UMF's own wire codes, which the console shows verbatim as upstream error codes)."""
    codes = set()
    for app_label in PROJECT_APPS:
        for model in apps.get_app_config(app_label).get_models():
            for field in model._meta.get_fields():
                for value, _label in getattr(field, "flatchoices", None) or []:
                    if isinstance(value, str) and value:
                        codes.add(value)
    return frozenset(codes - ALLOWED_CODES)


class VisibleText(HTMLParser):
    """What people read or hear on a page: text nodes outside <script>, <style> and <pre> (raw payloads: a webhook's
    JSON body, a redacted channel answer), and the attributes title, placeholder, aria-label, data-label (a table
    cell's heading at phone width) and the value of a button-like input. Text inside <code> is kept apart: by the
    console's convention it is an identifier shown verbatim (an order number, a webhook event type beside its name,
    a channel's code), so it is checked for untranslated strings but not for codes."""

    HIDDEN = ("script", "style", "pre")
    ATTRIBUTES = ("title", "placeholder", "aria-label", "data-label")

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.verbatim: list[str] = []
        self.hidden_depth = self.code_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.HIDDEN:
            self.hidden_depth += 1
        elif tag == "code":
            self.code_depth += 1
        attributes = dict(attrs)
        self.texts.extend(attributes[name] for name in self.ATTRIBUTES if attributes.get(name))
        if tag == "input" and attributes.get("type") in ("submit", "button", "reset") and attributes.get("value"):
            self.texts.append(attributes["value"])

    def handle_endtag(self, tag):
        if tag in self.HIDDEN and self.hidden_depth:
            self.hidden_depth -= 1
        elif tag == "code" and self.code_depth:
            self.code_depth -= 1

    def handle_data(self, data):
        if not self.hidden_depth:
            (self.verbatim if self.code_depth else self.texts).append(data)


SEPARATOR = re.compile(r"\s+·\s+")  # the console's separator between independent strings (titles, the header)
TOKEN_SPLIT = re.compile(r"[\s()\[\]{}:,;/|\"'“”‘’（）：，；、。！？<>=+*→←]+")


def _normalised(texts: list[str]) -> list[str]:
    out = []
    for raw in texts:
        if text := " ".join(raw.split()):
            out.append(text)
            out.extend(part for part in SEPARATOR.split(text) if part != text)
    return out


def offences(html: str, catalog: frozenset[str], codes: frozenset[str]) -> list[str]:
    """What on the page is not Chinese: whole texts that are English catalog strings, and texts that are, or have
    a token that is, a choice value."""
    parser = VisibleText()
    parser.feed(html)
    found = [f"untranslated: {text!r}" for text in _normalised(parser.verbatim) if text in catalog]
    for text in _normalised(parser.texts):
        if text in catalog:
            found.append(f"untranslated: {text!r}")
        elif text in codes:
            found.append(f"raw code: {text!r}")
        else:
            tokens = {token.strip(".") for token in TOKEN_SPLIT.split(text)}
            found.extend(f"raw code {token!r} in {text!r}" for token in sorted(tokens & codes))
    return found


def test_the_check_sees_english_strings_and_raw_codes_but_not_verbatim_data():
    html = (
        "<title>Payments · 刷脸支付管理台</title><nav aria-label='Main'></nav><p>Needs attention</p><td>PAYING</td>"
        "<option>支付成功 (SUCCESS)</option><code>payment.succeeded</code><pre>{'status': 'REFUNDED'}</pre>"
        "<script>const state = 'FAILED';</script><td>¥10.00</td>"
    )

    found = offences(html, english_catalog_strings(), enum_codes())

    assert sorted(found) == [
        "raw code 'SUCCESS' in '支付成功 (SUCCESS)'",
        "raw code: 'PAYING'",
        "untranslated: 'Main'",
        "untranslated: 'Needs attention'",
        "untranslated: 'Payments'",
    ]


# --- the data set ------------------------------------------------------------------------------------------------


@pytest.fixture
def world(make_shop):
    """A provider with a WeChat Pay merchant and a UMF one, each with a store and a device; payments in every status
    (real flows through the sandbox where one exists, rows as the services leave them otherwise), refunds in every
    status, a PayScore order, members (one erased), a reconciliation day with differences, a webhook endpoint with a
    failed delivery, an API client, and a user of each role."""
    wechat, umf = make_shop(Merchant.Channel.WECHAT_DIRECT), make_shop(Merchant.Channel.UMPAY)
    provider = umf.merchant.provider
    Merchant.objects.filter(pk=wechat.merchant.pk).update(provider=provider, name="甲商户")
    Merchant.objects.filter(pk=umf.merchant.pk).update(name="乙商户")
    wechat.merchant.refresh_from_db()
    umf.merchant.refresh_from_db()
    sub = MerchantFactory(
        provider=provider,
        name="丙商户",
        channel=Merchant.Channel.WECHAT_PROVIDER,
        appid="",
        mch_id="",
        sub_mch_id="1900000301",
    )
    make_device(StoreFactory(merchant=sub, name="丙一店"))
    merchant = wechat.merchant
    users = {
        "root": make_user("root", superuser=True),
        "p_admin": make_user("p_admin", role=Role.PROVIDER_ADMIN, provider=provider),
        "p_reviewer": make_user("p_reviewer", role=Role.PROVIDER_REVIEWER, provider=provider),
        "m_admin": make_user("m_admin", role=Role.MERCHANT_ADMIN, merchant=merchant),
        "m_staff": make_user("m_staff", role=Role.MERCHANT_STAFF, merchant=merchant),
    }

    endpoint, _ = webhook_services.endpoint_create(
        merchant=merchant, url="https://shop.example.com/hook", events=list(SUBSCRIBABLE), description="收银", user=None
    )
    api_client_services.api_client_create(merchant=merchant, name="收银系统", actor=users["m_admin"])

    # Payments through the sandbox: paid, refused, stuck (reverse refused: ATTENTION), paid then refunded (partly,
    # wholly) and reversed; one still waiting for the user (PAYING) and one being reversed (REVERSING).
    paid = wechat.pay(1000)
    wechat.pay(1104)
    wechat.pay(1109)
    partly, wholly, reversed_ = wechat.pay(2000), wechat.pay(3000), wechat.pay(4000)
    umf_paid = umf.pay(1000)
    umf.pay(1203)
    wechat.run_worker(90)
    payment_services.refund_create(
        payment=wechat.payment(partly["out_trade_no"]), refund_fee=500, reason="部分退款", user=users["m_admin"]
    )
    for fee in (1000, 2000):  # a whole refund inside the reverse window would be a reverse
        payment_services.refund_create(
            payment=wechat.payment(wholly["out_trade_no"]), refund_fee=fee, reason="分两次退款", user=users["m_admin"]
        )
    payment_services.payment_cancel(
        payment=wechat.payment(reversed_["out_trade_no"]), actor=PaymentEvent.Actor.STAFF, user=users["m_admin"]
    )
    wechat.run_worker(30)
    wechat.pay(1101)  # USERPAYING: stays PAYING until the worker runs again
    reversing = wechat.payment(wechat.pay(5000)["out_trade_no"])
    wechat.run_worker(2)
    payment_services.payment_cancel(payment=reversing, actor=PaymentEvent.Actor.STAFF, user=users["m_admin"])
    stuck_refund = payment_services.refund_create(
        payment=wechat.payment(paid["out_trade_no"]), refund_fee=100, reason="退款待处理", user=users["m_admin"]
    )
    # A refund the worker gave up on, as `_retry_or_attention` leaves it after its last query.
    PaymentEvent.objects.create(
        payment=stuck_refund.payment, refund=stuck_refund, action="refundquery", outcome="TRANSIENT",
        code="SYSTEMERROR", message="系统繁忙，请稍后再试", actor=PaymentEvent.Actor.WORKER,
    )  # fmt: skip
    Refund.objects.filter(pk=stuck_refund.pk).update(
        status=Refund.Status.ATTENTION,
        err_code="SYSTEMERROR",
        err_message="Gave up retrying; a person must check the channel.",
    )
    processing_refund = payment_services.refund_create(
        payment=umf.payment(umf_paid["out_trade_no"]), refund_fee=100, reason="退款处理中", user=users["p_admin"]
    )
    Refund.objects.filter(pk=processing_refund.pk).update(status=Refund.Status.PROCESSING)
    payment_services.refund_create(
        payment=umf.payment(umf_paid["out_trade_no"]), refund_fee=200, reason="退款待发送", user=users["p_admin"]
    )
    Refund.objects.create(
        payment=wechat.payment(paid["out_trade_no"]), out_refund_no=paid["out_trade_no"] + "R09", refund_fee=50,
        kind=Refund.Kind.REFUND, status=Refund.Status.FAILED, err_code="NOTENOUGH", err_message="余额不足",
    )  # fmt: skip
    statuses = set(Payment.objects.values_list("status", flat=True))
    refund_statuses = set(Refund.objects.values_list("status", flat=True))

    # PayScore, members, reconciliation.
    openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    member_services.member_identify(
        device=wechat.device, data=member_services.IdentifyInput(openid=openid, nickname="小明")
    )
    erased = member_services.member_identify(
        device=wechat.device, data=member_services.IdentifyInput(openid="oErasedUser0000000000000001", nickname="小红")
    ).member
    member_services.member_erase(member=erased, actor=users["m_admin"])
    ServiceOrder.objects.create(
        merchant=merchant, store=wechat.device.store, device=wechat.device, out_order_no="PS20260310000001",
        service_id="500001", openid=openid, service_introduction="充电宝租借",
        risk_fund={"name": "ESTIMATE_ORDER_COST", "amount": 10000}, notify_url="https://example.com/notify/",
        request_fingerprint="x" * 64, state=ServiceOrder.State.DOING,
        state_description=ServiceOrder.StateDescription.USER_CONFIRM,
    )  # fmt: skip
    day = timezone.localdate() - timedelta(days=1)
    bill = Bill.objects.create(
        merchant=merchant, bill_date=day, channel=merchant.channel, source=Bill.Source.DOWNLOAD,
        status=Bill.Status.IMPORTED, version=1, sha256="a" * 64, rows=3,
    )  # fmt: skip
    DayResult.objects.create(
        merchant=merchant, bill_date=day, bill=bill, rows=3, matched=2, payment_count=3, payment_total=6000,
        settlement_total=6000, fee_total=36, net_settlement=5964, open_differences=1,
    )  # fmt: skip
    difference_payment = wechat.payment(paid["out_trade_no"])
    Difference.objects.create(
        merchant=merchant, bill_date=day, kind="AMOUNT_DIFFERS", out_trade_no=difference_payment.out_trade_no,
        transaction_id=difference_payment.transaction_id, payment=difference_payment, first_bill=bill, last_bill=bill,
        ours={"payment": difference_payment.pk, "out_trade_no": difference_payment.out_trade_no, "total_fee": 1000,
              "status": "SUCCESS"},
        theirs={"line": 2, "out_trade_no": difference_payment.out_trade_no, "trade_state": "SUCCESS",
                "total_fee": 1001, "settlement_fee": 1001, "fee": 6},
    )  # fmt: skip
    Difference.objects.create(
        merchant=merchant, bill_date=day, kind="MISSING_THERE", out_trade_no=partly["out_trade_no"],
        status=Difference.Status.EXPLAINED, note="次日账单", explained_by=users["p_reviewer"],
        explained_at=timezone.now(),
    )  # fmt: skip

    # The webhook endpoint's deliveries went out with the payments' events; one failed for good.
    delivery = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("id").first()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.FAILED, attempts=1, retry_step=15, next_attempt_at=None, last_status_code=500,
        last_error="HTTP 500", last_attempt_at=timezone.now(),
    )  # fmt: skip
    WebhookAttempt.objects.create(
        delivery=delivery, number=1, started_at=timezone.now(), status_code=500, latency_ms=87,
        request_headers={"Facepay-Event-Id": delivery.event.event_id}, response_excerpt="error", error="",
    )  # fmt: skip
    assert Member.objects.filter(anonymised_at__isnull=False).exists()

    # Alerts of what is above (payments and refunds needing attention, the differences), for a provider's robot.
    alert_services.channel_create(
        owner=provider, name="运营群", kind=RobotKind.WECOM, user=users["p_admin"],
        webhook_url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=00000000-0000-0000-0000-000000000000",
    )  # fmt: skip
    assert alert_rules.evaluate() > 0
    return {"users": users, "statuses": statuses, "refund_statuses": refund_statuses}


def test_the_data_set_has_every_status(world):
    assert world["statuses"] == set(PaymentStatus.values)
    assert world["refund_statuses"] == set(Refund.Status.values)


# --- the crawl -------------------------------------------------------------------------------------------------------

SKIPPED_PREFIXES = ("/static/", "/i18n/", "/admin/", "/api/", "/sandbox/", "/logout/")
PER_VIEW = 2  # URLs visited per view name: every kind of page, with and without a filter, and still fast


def crawl(client) -> list[tuple[str, str, str]]:
    """(path, view name, html) of every console page reachable by links from the home page: same-origin GET links,
    breadth first, at most PER_VIEW URLs per view name; not the sign-out, the language switch, the admin, the APIs,
    the sandbox or the exports."""
    pages, queue, seen, per_view = [], ["/"], {"/"}, Counter()
    while queue:
        path = queue.pop(0)
        try:
            view_name = resolve(urlsplit(path).path).view_name
        except Resolver404:
            view_name = path
        if per_view[view_name] >= PER_VIEW:
            continue
        per_view[view_name] += 1
        response = client.get(path)
        if "text/html" not in response.get("Content-Type", ""):
            continue
        html = response.content.decode()
        pages.append((path, view_name, html))
        for href in re.findall(r'<a\b[^>]*\bhref="([^"#]*)"', html):
            parts = urlsplit(urljoin(path, unescape(href)))
            if parts.scheme not in ("", "http") or parts.netloc not in ("", "testserver"):
                continue
            if parts.path.startswith(SKIPPED_PREFIXES) or "export" in parts.path:
                continue
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return pages


# TEMPORARY: (view name, offence) pairs the crawl finds in the areas being rewritten elsewhere while this test was
# written — the payment timeline (payments detail), the audit log, the PayScore pages and the dashboard — reported as
# a warning instead of a failure. Nothing outside those four areas belongs here; once their rewrites are done it
# stays empty. (Empty already: what it held, the dashboard's "still paying" badges, is fixed.)
PENDING_ELSEWHERE: frozenset[tuple[str, str]] = frozenset()

ROLES = ["root", "p_admin", "p_reviewer", "m_admin", "m_staff"]


@pytest.mark.parametrize("role", ROLES)
def test_every_page_a_role_reaches_is_in_chinese(client, world, role):
    login_verified(client, world["users"][role])
    client.cookies["django_language"] = "zh-hans"
    catalog, codes = english_catalog_strings(), enum_codes()

    pages = crawl(client)

    found, pending = defaultdict(list), defaultdict(list)
    for path, view_name, html in pages:
        for offence in offences(html, catalog, codes):
            bucket = pending if (view_name, offence) in PENDING_ELSEWHERE else found
            if path not in bucket[offence]:
                bucket[offence].append(path)
    if pending:
        warnings.warn(f"{role}: left to the pages being rewritten elsewhere:\n{_report(pending)}", stacklevel=1)
    assert len({view_name for _, view_name, _ in pages}) > 10, [path for path, _, _ in pages]
    assert not found, f"{len(found)} problems on {len(pages)} pages in zh-hans:\n{_report(found)}"


def _report(found: dict[str, list[str]]) -> str:
    return "\n".join(f"{offence}  ← {', '.join(paths[:3])}" for offence, paths in sorted(found.items()))
