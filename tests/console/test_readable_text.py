"""The payment timeline, the audit log and the PayScore pages read as sentences in the console's language: amounts in
yuan, statuses and API calls by name, China date-times, codes labelled beside the sentence, never a raw dict; and
every audit action the code base records has a sentence (portal/audit_text.py)."""

from __future__ import annotations

import ast
import re
from html import unescape
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from payments import services as payment_services
from payments.models import Refund
from payscore.models import ServiceOrder, ServiceOrderEvent
from portal import audit_text
from portal import services as portal_services
from portal.models import AuditLog, Merchant, StaffMembership
from tests.factories import MerchantFactory, StoreFactory, login_verified, make_device, make_user

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role
ROOT = Path(settings.BASE_DIR)
CHINA = ZoneInfo("Asia/Shanghai")


def visible(html: str) -> str:
    """The page's text as read (tags, scripts and the collapsed raw request/response left out), whitespace folded."""
    html = re.sub(r"<(script|style|details|pre)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def section(html: str, heading: str) -> str:
    return html.split(f"<h2>{heading}</h2>", 1)[1].split("</section>", 1)[0]


def page(client, user, url: str, language: str = "zh-hans") -> str:
    login_verified(client, user)
    client.cookies["django_language"] = language
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def china(moment) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


# --- the payment timeline ------------------------------------------------------------------------------------------


@pytest.fixture
def wechat(make_shop):
    shop = make_shop()
    shop.admin = make_user("admin-a", role=Role.MERCHANT_ADMIN, merchant=shop.merchant)
    return shop


def test_a_payment_never_paid_reads_as_sentences_with_its_codes_labelled(client, wechat):
    payment = wechat.payment(wechat.pay(1102)["out_trade_no"])  # USERPAYING until the query window ends: reversed
    wechat.run_worker(120)

    html = page(client, wechat.admin, f"/payments/{payment.pk}/")
    timeline = visible(section(html, "时间线"))

    assert "创建订单，金额 ¥11.02" in timeline
    assert "向微信支付下单，金额 ¥11.02" in timeline
    assert "微信返回码 USERPAYING" in timeline  # the code stays, labelled
    assert "向微信支付查询订单" in timeline
    assert "状态变更：支付中（结果未定） → 撤销中 查询时限内仍未支付成功。" in timeline
    assert "向微信支付撤销订单" in timeline
    assert "状态变更：撤销中 → 已撤销" in timeline
    first = payment.events.order_by("created_at", "id").first()
    assert china(first.created_at) in timeline  # the date with the time, in China time
    for raw in ("micropay", "orderquery", "reverse", "state", "PAYING", "REVERSING", "Still not paid", "SUCCESS"):
        assert not re.search(rf"\b{raw}\b", timeline), raw


def test_a_refund_in_the_timeline_is_in_yuan_with_its_reason(client, wechat):
    payment = wechat.payment(wechat.pay(5000)["out_trade_no"])
    refund = payment_services.refund_create(payment=payment, refund_fee=550, reason="少送一杯", user=wechat.admin)
    wechat.run_worker(30)

    timeline = visible(section(page(client, wechat.admin, f"/payments/{payment.pk}/"), "时间线"))

    assert f"发起退款 {refund.out_refund_no}，金额 ¥5.50 原因：少送一杯" in timeline
    assert f"向微信支付申请退款 {refund.out_refund_no}，金额 ¥5.50" in timeline
    assert f"向微信支付查询退款 {refund.out_refund_no}" in timeline
    assert "状态变更：支付成功 → 部分退款" in timeline
    assert "550 fen" not in timeline and "REFUND" not in timeline


def test_a_refund_settled_by_hand_reads_in_the_timeline_and_the_audit_log(client, wechat):
    payment = wechat.payment(wechat.pay(5000)["out_trade_no"])
    refund = payment_services.refund_create(payment=payment, refund_fee=550, reason="少送一杯", user=wechat.admin)
    Refund.objects.filter(pk=refund.pk).update(status=Refund.Status.ATTENTION, next_check_at=None)  # given up on
    reviewer = make_user("reviewer-a", role=Role.PROVIDER_REVIEWER, provider=wechat.merchant.provider)
    refund.refresh_from_db()
    payment_services.refund_resolve_attention(refund=refund, outcome="FAILED", note="商户平台查无此退款", user=reviewer)

    timeline = visible(section(page(client, reviewer, f"/payments/{payment.pk}/"), "时间线"))
    audit = visible(page(client, reviewer, "/audit/?action=refund.resolve").split("<tbody>", 1)[1])

    assert f"人工处理退款 {refund.out_refund_no}：失败（未退款） 商户平台查无此退款" in timeline
    settled = f"reviewer-a 将支付订单 {payment.out_trade_no} 的退款 {refund.out_refund_no} 人工处理为“失败（未退款）”"
    assert settled in audit
    assert "refund_resolve" not in timeline and "FAILED" not in timeline + audit


def test_a_payment_refused_by_umf_names_umf_and_its_code(client, make_shop):
    shop = make_shop(Merchant.Channel.UMPAY)
    admin = make_user("umf-admin", role=Role.MERCHANT_ADMIN, merchant=shop.merchant)
    payment = shop.payment(shop.pay(1203)["out_trade_no"])  # declined by the wallet

    html = page(client, admin, f"/payments/{payment.pk}/")
    timeline = visible(section(html, "时间线"))

    assert "向联动优势下单，金额 ¥12.03" in timeline
    assert f"联动优势返回码 {payment.err_code}" in timeline
    assert f"联动优势返回码 {payment.err_code}" in visible(section(html, "详情"))  # the payment's last error too


def test_the_timeline_in_english(client, wechat):
    payment = wechat.payment(wechat.pay(1102)["out_trade_no"])
    wechat.run_worker(120)

    timeline = visible(section(page(client, wechat.admin, f"/payments/{payment.pk}/", "en"), "Timeline"))

    assert "Sent the payment of ¥11.02 to WeChat Pay" in timeline
    assert "WeChat Pay code USERPAYING" in timeline
    assert "Status changed: Paying (outcome not yet definite) → Reversing Still not paid after the query window." in (
        timeline
    )
    assert "micropay" not in timeline


# --- the audit log -------------------------------------------------------------------------------------------------


@pytest.fixture
def audited(make_shop):
    shop = make_shop()
    zhang = make_user("zhangsan", role=Role.PROVIDER_ADMIN, provider=shop.merchant.provider)
    zhang.first_name = "张三"
    zhang.save(update_fields=["first_name"])
    store = StoreFactory(merchant=shop.merchant, name="南山科技园店")
    portal_services.device_register(store=store, device_id="POS-02", actor=zhang)
    payment = shop.payment(shop.pay(5000)["out_trade_no"])
    payment_services.refund_create(payment=payment, refund_fee=550, reason="少送一杯", user=zhang)
    portal_services.store_update(store=store, name="南山科技园店", address="科技园南区", actor=zhang)
    portal_services.merchant_set_status(merchant=shop.merchant, status=Merchant.Status.SUSPENDED, actor=zhang)
    return {"shop": shop, "zhang": zhang, "store": store, "payment": payment}


def test_audit_entries_read_as_sentences_with_labelled_details(client, audited):
    html = page(client, audited["zhang"], "/audit/")
    entries = visible(html.split("<tbody>", 1)[1].split("</tbody>", 1)[0])
    out_trade_no = audited["payment"].out_trade_no

    assert "张三 为门店 南山科技园店 登记了设备 POS-02" in entries
    assert f"张三 为支付订单 {out_trade_no} 申请退款 ¥5.50" in entries
    # The details as labelled fields, in the order of their keys.
    assert f"类型 退款接口 退款单号 {out_trade_no}R01 订单号 {out_trade_no} 原因 少送一杯 退款金额 ¥5.50" in entries
    assert "张三 修改了门店 南山科技园店 的资料" in entries and "地址 — → 科技园南区" in entries
    assert "张三 将商户" in entries and "的状态改为“已暂停”" in entries and "原值 正常 新值 已暂停" in entries
    assert '<dl class="facts">' in html
    for raw in ("device.register", "payment.refund", "{'", "'}", "Device ", "Store ", "SUSPENDED", "REFUND"):
        assert raw not in entries, raw
    options = re.findall(r'<option value="([\w.]+)"[^>]*>([^<]+)</option>', html)
    assert ("device.register", "设备已登记") in options  # the filter by name, the code as its value


def test_an_action_without_a_sentence_reads_generically_with_its_code(client, audited):
    root = make_user("root", superuser=True)
    AuditLog.objects.create(actor_label="cli", action="future.thing", object_type="Gadget", object_id="7")

    html = page(client, root, "/audit/?action=future.thing")

    assert "命令行操作员 对 Gadget 7 执行了 future.thing" in visible(html)
    assert "<code>future.thing</code>" in html


def test_the_audit_log_in_english(client, audited):
    entries = visible(page(client, audited["zhang"], "/audit/", "en").split("<tbody>", 1)[1])

    assert "张三 registered device POS-02 at store 南山科技园店" in entries
    assert "Kind Refund API (退款) Refund no." in entries and "Reason 少送一杯 Refund amount ¥5.50" in entries


@pytest.mark.parametrize("details", [{}, {"from": "A", "to": "B", "count": 2, "changed": {}}])
def test_every_sentence_fills_in_whatever_the_details_hold(audited, details):
    """A sentence renders for any entry of its action, even one whose details lack what it names."""
    merchant = audited["shop"].merchant
    entries = [
        AuditLog(
            action=action, actor_label="system", object_type="X", object_id="1", merchant=merchant, details=details
        )
        for action in audit_text.ACTIONS
    ]

    for line in audit_text.audit_lines(entries):
        assert "%(" not in line.sentence and line.sentence.startswith(str(audit_text.ACTORS["system"]))


# Every action string the product records (an AST scan of the apps' source), resolved through the helpers that
# record them: audit_record, audit_account, AuditLog.objects.create, and the functions that pass an action on.
AUDIT_HELPERS = {"audit_record", "audit_account"}
APPS = ("portal", "payments", "payscore", "members", "reconciliation", "webhooks", "merchant_api", "alerts")


def _callee(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")


def _argument(call: ast.Call, function: ast.FunctionDef, name: str) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    positional = [arg.arg for arg in function.args.posonlyargs + function.args.args]
    if name in positional and positional.index(name) < len(call.args):
        return call.args[positional.index(name)]
    return None


class _Module:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.tree = ast.parse(path.read_text(encoding="utf-8"))
        self.calls: list[tuple[ast.Call, ast.FunctionDef | None]] = []  # each call with its enclosing function
        self.functions: dict[str, ast.FunctionDef] = {}
        self._visit(self.tree, None)

    def _visit(self, node: ast.AST, function: ast.FunctionDef | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = function
            if isinstance(child, ast.FunctionDef):
                self.functions[child.name] = inner = child
            elif isinstance(child, ast.Call):
                self.calls.append((child, function))
            self._visit(child, inner)

    def strings(self, node: ast.expr, function: ast.FunctionDef | None) -> set[str]:
        """The values `node` can take where it is used in `function`."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.IfExp):
            return self.strings(node.body, function) | self.strings(node.orelse, function)
        if isinstance(node, ast.JoinedStr):
            values = {""}
            for part in node.values:
                found = self.strings(part.value if isinstance(part, ast.FormattedValue) else part, function)
                values = {before + after for before in values for after in found}
            return values
        if isinstance(node, ast.Name) and function is not None:
            if function.name in AUDIT_HELPERS:
                return set()  # a helper's own parameter: its callers are scanned themselves
            values = set()
            for call, caller in self.calls:
                if _callee(call) == function.name and (argument := _argument(call, function, node.id)) is not None:
                    values |= self.strings(argument, caller)
            if values:
                return values
        raise AssertionError(f"{self.path}: cannot tell which audit action {ast.unparse(node)!r} records")

    def audit_actions(self) -> set[str]:
        found = set()
        for call, function in self.calls:
            if _callee(call) in AUDIT_HELPERS or ast.unparse(call.func) == "AuditLog.objects.create":
                action = next((keyword.value for keyword in call.keywords if keyword.arg == "action"), None)
                if action is not None:
                    found |= self.strings(action, function)
        return found


def recorded_actions() -> set[str]:
    found = set()
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                found |= _Module(path).audit_actions()
    return found


def test_every_action_the_code_records_has_a_sentence_and_every_sentence_an_action():
    recorded = recorded_actions()

    # The scan sees literal, conditional, passed-on and composed actions (it is only as good as what it finds).
    assert {"device.register", "device.disable", "staff.two_factor_enrolled", "member.retention_anonymise"} <= recorded
    assert {"payscore.complete", "payscore.refresh", "webhook.resend_failed", "reconciliation.upload"} <= recorded
    assert recorded - set(audit_text.ACTIONS) == set(), "add these actions' sentences to portal/audit_text.py"
    assert set(audit_text.ACTIONS) - recorded == set(), "no longer recorded: remove them from portal/audit_text.py"


# --- PayScore ------------------------------------------------------------------------------------------------------


@pytest.fixture
def service_order():
    merchant = MerchantFactory()
    store = StoreFactory(merchant=merchant)
    device, _ = make_device(store)
    order = ServiceOrder.objects.create(
        merchant=merchant, store=store, device=device, out_order_no="PS-READ-1", service_id="500001",
        service_introduction="充电宝租借", risk_fund={"name": "ESTIMATE_ORDER_COST", "amount": 9900},
        notify_url="https://example.com/notify/", request_fingerprint="x" * 64, state="DOING",
        state_description="MCH_COMPLETE", collection_state="USER_PAYING", last_error_code="NOT_APPLIED",
        last_error_message="WeChat did not act on the complete call; send it again.",
    )  # fmt: skip
    actor = ServiceOrderEvent.Actor
    events = [
        {"action": "created", "actor": actor.TERMINAL, "to_state": "PENDING"},
        {"action": "create", "actor": actor.TERMINAL, "outcome": "SUCCESS"},
        {"action": "state", "actor": actor.TERMINAL, "from_state": "PENDING", "to_state": "CREATED"},
        {"action": "facemch", "actor": actor.TERMINAL, "outcome": "SUCCESS", "code": "NO_UNIONID",
         "message": "WeChat returned no union_id for this user."},
        {"action": "notification", "actor": actor.NOTIFICATION, "code": "PAYSCORE.USER_CONFIRM",
         "message": "用户确认订单"},
        {"action": "state", "actor": actor.NOTIFICATION, "from_state": "CREATED", "to_state": "DOING/USER_CONFIRM"},
        {"action": "complete.requested", "actor": actor.STAFF, "response": {"total_amount": 550}},
        {"action": "complete", "actor": actor.STAFF, "outcome": "UNKNOWN", "code": "TIMEOUT", "message": "ReadTimeout"},
        {"action": "pending.not_applied", "actor": actor.WORKER, "code": "NOT_APPLIED", "message": "COMPLETE"},
        {"action": "state", "actor": actor.WORKER, "from_state": "DOING/USER_CONFIRM",
         "to_state": "DOING/MCH_COMPLETE (USER_PAYING)"},
    ]  # fmt: skip
    for fields in events:
        ServiceOrderEvent.objects.create(service_order=order, **fields)
    return order


def test_the_payscore_order_reads_in_chinese(client, service_order):
    admin = make_user("ps-admin", role=Role.MERCHANT_ADMIN, merchant=service_order.merchant)

    html = page(client, admin, f"/payscore/{service_order.pk}/")
    text, timeline = visible(html), visible(section(html, "时间线"))

    assert "风险金 预估订单费用 ¥99.00" in text
    assert "微信支付未执行上一次请求，请重新发送。 系统代码 NOT_APPLIED" in text  # the order's last error
    assert "创建支付分订单：充电宝租借（预估订单费用，最高 ¥99.00）" in timeline
    assert "向微信支付创建支付分订单 成功" in timeline
    assert "状态变更：待确认（微信尚未答复） → 已创建（等待用户确认）" in timeline
    assert "向微信支付查询刷脸用户的 unionid 成功 微信支付未返回该用户的 unionid。 系统代码 NO_UNIONID" in timeline
    assert "收到微信支付通知：用户已确认订单 用户确认订单 通知类型 PAYSCORE.USER_CONFIRM" in timeline
    assert "申请完结订单，金额 ¥5.50" in timeline
    assert "向微信支付完结支付分订单 结果未知 渠道未在规定时间内答复。 系统代码 TIMEOUT" in timeline
    assert "微信支付未执行完结请求，请重新发送。" in timeline
    assert "状态变更：服务中 · 用户已确认 → 服务中 · 商户已完结 · 收款中" in timeline
    first = service_order.events.order_by("created_at", "id").first()
    assert china(first.created_at) in timeline
    for raw in ("ESTIMATE_ORDER_COST", "facemch", "DOING", "USER_CONFIRM (", "complete.requested", "ReadTimeout"):
        assert raw not in text.replace("PAYSCORE.USER_CONFIRM", ""), raw


def test_the_payscore_order_in_english(client, service_order):
    admin = make_user("ps-admin", role=Role.MERCHANT_ADMIN, merchant=service_order.merchant)

    timeline = visible(section(page(client, admin, f"/payscore/{service_order.pk}/", "en"), "Timeline"))

    assert "Service order created for 充电宝租借 (Estimated order cost, at most ¥99.00)" in timeline
    assert "Looked up the face-pay user's unionid at WeChat Pay Succeeded" in timeline
    assert "WeChat Pay did not act on the complete call; send it again." in timeline


def test_a_risk_fund_name_wechat_does_not_know_is_shown_as_it_is():
    order = ServiceOrder(risk_fund={"name": "SOMETHING_NEW"})
    assert order.risk_fund_label == "SOMETHING_NEW"
    assert str(ServiceOrder(risk_fund={"name": "DEPOSIT"}).risk_fund_label) == "Deposit"


def test_the_audit_page_reads_the_objects_it_names_once_per_page(client, audited):
    """The devices and stores the entries name are read once per page, not once per entry."""
    login_verified(client, audited["zhang"])

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/audit/").status_code == 200
        return len(captured.captured_queries)

    before = queries()
    for number in range(5):
        store = StoreFactory(merchant=audited["shop"].merchant)
        portal_services.device_register(store=store, device_id=f"POS-1{number}", actor=audited["zhang"])
        portal_services.store_set_active(store=store, is_active=False, actor=audited["zhang"])
    assert queries() == before
