"""WeChat Pay API v3 stand-in (JSON): PayScore service orders, facemch users and the trade bill (tradebill and its
download_url; the bill is built by sandbox/bills.py, as for v2).

Requests are authenticated and answers signed by sandbox/v3_http.py: every answer to a known merchant — errors
included, and here also the 401 for a signature that does not verify — is signed with the merchant's platform key
(sandbox/platform_keys.py: the certificate in force, the public key, or either in transition mode).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from . import bills as bill_book
from . import book, clock, identity, payscore, scenarios, v3_http
from .models import SandboxWechatMerchant
from .payscore import PayscoreError
from .scenarios import Scenario
from .services import preset_for

_PAYSCORE_SCENARIOS = frozenset(
    {Scenario.SUCCESS, Scenario.PAYSCORE_AUTO_CONFIRM, Scenario.PAYSCORE_AUTO_PAY, Scenario.PAYSCORE_AUTO}
)


def _endpoint(methods: set[str]) -> Callable:
    def decorate(view: Callable[..., HttpResponse]) -> Callable:
        @csrf_exempt
        def wrapper(request: HttpRequest, **kwargs: str) -> HttpResponse:
            if request.method not in methods:
                return v3_http.unsigned(405, "METHOD_NOT_ALLOWED", "method not allowed")
            merchant = v3_http.authenticate(request)
            if isinstance(merchant, HttpResponse):
                return merchant
            try:
                return view(request, merchant, **kwargs)
            except PayscoreError as exc:
                return v3_http.error(merchant, exc.status, exc.code, exc.message)

        wrapper.__name__ = view.__name__
        return wrapper

    return decorate


def _payscore_scenario(request: HttpRequest, out_order_no: str) -> Scenario | None:
    name = (
        request.META.get(scenarios.META_HEADER)
        or preset_for(out_order_no)
        or getattr(settings, "SANDBOX_PAYSCORE_DEFAULT_SCENARIO", "")
    )
    if not name:
        return None
    try:
        scenario = scenarios.parse(name)
    except scenarios.UnknownScenario as exc:
        raise PayscoreError(400, "PARAM_ERROR", str(exc)) from None
    if scenario not in _PAYSCORE_SCENARIOS:
        raise PayscoreError(400, "PARAM_ERROR", f"scenario {scenario} does not apply to PayScore")
    return scenario


@_endpoint({"GET", "POST"})
def serviceorder(request: HttpRequest, merchant: SandboxWechatMerchant) -> HttpResponse:
    if request.method == "GET":
        if request.GET.get("appid") != merchant.appid or not request.GET.get("service_id"):
            raise PayscoreError(400, "PARAM_ERROR", "appid/service_id required")
        out_order_no, query_id = request.GET.get("out_order_no", ""), request.GET.get("query_id", "")
        if bool(out_order_no) == bool(query_id):
            raise PayscoreError(400, "PARAM_ERROR", "exactly one of out_order_no and query_id")
        order = payscore.find(merchant.mch_id, out_order_no=out_order_no, query_id=query_id)
        if order.service_id != request.GET["service_id"]:
            raise PayscoreError(404, "ORDER_NOT_EXIST", "order does not exist")
        return v3_http.signed(merchant, 200, payscore.as_dict(order))
    body = v3_http.json_body(request)
    if body is None:
        raise PayscoreError(400, "PARAM_ERROR", "body is not a JSON object")
    scenario = _payscore_scenario(request, str(body.get("out_order_no", "")))
    return v3_http.signed(merchant, 200, payscore.create(merchant, body, scenario=scenario))


_ACTIONS: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "cancel": payscore.cancel,
    "modify": payscore.modify,
    "complete": payscore.complete,
    "sync": payscore.sync,
}


@_endpoint({"POST"})
def serviceorder_action(
    request: HttpRequest, merchant: SandboxWechatMerchant, out_order_no: str, action: str
) -> HttpResponse:
    handler = _ACTIONS.get(action)
    if handler is None:
        return v3_http.error(merchant, 404, "NOT_FOUND", "unknown action")
    body = v3_http.json_body(request)
    if body is None:
        raise PayscoreError(400, "PARAM_ERROR", "body is not a JSON object")
    with transaction.atomic():
        order = payscore.find(merchant.mch_id, out_order_no=out_order_no, for_update=True)
        return v3_http.signed(merchant, 200, handler(order, body))


@_endpoint({"GET"})
def facemch_user(request: HttpRequest, merchant: SandboxWechatMerchant, face_sid: str) -> HttpResponse:
    if request.GET.get("info_type") != "ASK_UNIONID":
        raise PayscoreError(400, "PARAM_ERROR", "info_type must be ASK_UNIONID")
    appid = request.GET.get("appid", "")
    sub_mchid, sub_appid = request.GET.get("sub_mchid", ""), request.GET.get("sub_appid", "")
    if appid != merchant.appid:
        raise PayscoreError(400, "PARAM_ERROR", "appid and mchid do not match")
    if sub_mchid and not merchant.sub_merchants.filter(sub_mch_id=sub_mchid).exists():
        raise PayscoreError(403, "NO_AUTH", "sub_mchid is not a sub-merchant of this provider")
    if not sub_mchid and merchant.sub_merchants.exists():
        # WeChat: sub_mchid is required in service-provider mode (服务商模式下必填) — a provider asks on behalf of
        # one of its sub-merchants.
        raise PayscoreError(400, "PARAM_ERROR", "sub_mchid is required in service-provider mode")
    user = identity.user_of_face_sid(face_sid)
    if user is None:
        raise PayscoreError(400, "PARAM_ERROR", "face_sid无效")
    data = {"union_id": identity.union_id_for(user), "openid": identity.openid_for(user, appid)}
    if sub_appid:
        data["sub_openid"] = identity.openid_for(user, sub_appid)
    return v3_http.signed(merchant, 200, data)


# --- trade bill (申请交易账单 / 下载账单) ------------------------------------------------------------------------

# The download_url's token says whose bill, which day, which window and until when it may be fetched, signed with
# the SECRET_KEY (django.core.signing): nothing is stored per request, and only the merchant it names can use it.
_BILL_TOKEN_SALT = "sandbox.wechatpay.v3.billdownload"
BILL_DOWNLOAD_SECONDS = 30  # WeChat: the download_url is valid for 30 s


@_endpoint({"GET"})
def tradebill(request: HttpRequest, merchant: SandboxWechatMerchant) -> HttpResponse:
    bill_date = request.GET.get("bill_date", "")
    try:
        day = date.fromisoformat(bill_date) if len(bill_date) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise PayscoreError(400, "PARAM_ERROR", "bill_date must be YYYY-MM-DD")
    if request.GET.get("bill_type", "ALL") != "ALL":
        raise PayscoreError(400, "PARAM_ERROR", "the sandbox serves bill_type ALL only")
    tar_type = request.GET.get("tar_type", "")
    if tar_type not in ("", "GZIP"):
        raise PayscoreError(400, "PARAM_ERROR", "tar_type must be GZIP or absent")
    sub_mchid = request.GET.get("sub_mchid", "")
    if sub_mchid and not merchant.sub_merchants.filter(sub_mch_id=sub_mchid).exists():
        raise PayscoreError(403, "NO_AUTH", "sub_mchid is not a sub-merchant of this provider")
    window = bill_book.window(day)
    if window is None:
        raise PayscoreError(400, "STATEMENT_CREATING", "账单生成中")
    book.advance()
    start, end = window
    rows = bill_book.rows(mch_id=merchant.mch_id, sub_mch_id=sub_mchid, start=start, end=end)
    if not rows:
        raise PayscoreError(400, "NO_STATEMENT_EXIST", "账单文件不存在")
    gzipped = tar_type == "GZIP"
    content = bill_book.file(rows, gzipped=gzipped)
    token = signing.dumps(
        {
            "m": merchant.mch_id,
            "s": sub_mchid,
            "a": start.isoformat(),
            "b": end.isoformat(),
            "g": gzipped,
            "x": int(clock.timestamp()) + BILL_DOWNLOAD_SECONDS,
        },
        salt=_BILL_TOKEN_SALT,
    )
    url = request.build_absolute_uri(reverse("sandbox:wx_billdownload")) + "?token=" + quote(token, safe="")
    return v3_http.signed(
        merchant,
        200,
        {
            "hash_type": "SHA1",
            "hash_value": hashlib.sha1(content, usedforsecurity=False).hexdigest(),
            "download_url": url,
        },
    )


@_endpoint({"GET"})
def billdownload(request: HttpRequest, merchant: SandboxWechatMerchant) -> HttpResponse:
    """The file behind a tradebill download_url: signed request like every v3 call, unsigned answer (the bytes)."""
    try:
        token = signing.loads(request.GET.get("token", ""), salt=_BILL_TOKEN_SALT)
    except signing.BadSignature:
        raise PayscoreError(400, "INVALID_REQUEST", "token invalid") from None
    if token["m"] != merchant.mch_id:
        raise PayscoreError(403, "NO_AUTH", "the token belongs to another merchant")
    if clock.timestamp() > token["x"]:
        raise PayscoreError(400, "INVALID_REQUEST", "download_url expired")
    start, end = datetime.fromisoformat(token["a"]), datetime.fromisoformat(token["b"])
    rows = bill_book.rows(mch_id=merchant.mch_id, sub_mch_id=token["s"], start=start, end=end)
    content = bill_book.file(rows, gzipped=token["g"])
    response = HttpResponse(content, content_type="application/octet-stream")
    response["Request-ID"] = identity.random_token(24)
    return response
