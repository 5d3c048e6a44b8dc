"""The WeChat Pay API v3 wire rules every sandbox v3 endpoint shares: request authentication, signed and unsigned
JSON answers, the JSON body.

Every request's Authorization is verified with the registered merchant certificate (serial, 300 s timestamp
window, SHA256withRSA over the five-line message with the path exactly as sent). Answers to a known merchant are
signed with its platform key as sandbox/platform_keys.py chooses (certificate, public key, or either in transition).
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse

from payments.gateways import wechatpay_v3 as v3
from payments.gateways.base import VerificationError
from portal.terminal_auth import signed_paths

from . import clock, identity, platform_keys
from .models import SandboxWechatMerchant


class ApiError(Exception):
    """A refusal answered as signed JSON {code, message} with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def unsigned(status: int, code: str, message: str) -> HttpResponse:
    body = json.dumps({"code": code, "message": message}, ensure_ascii=False)
    return HttpResponse(body, status=status, content_type="application/json")


def signed(
    merchant: SandboxWechatMerchant,
    status: int,
    data: dict[str, Any],
    *,
    key: platform_keys.SigningKey | None = None,
) -> HttpResponse:
    """`data` as compact JSON with Wechatpay-* headers (signed with `key`, else the merchant's signing key now)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    response = HttpResponse(body, status=status, content_type="application/json")
    for name, value in platform_keys.sign(merchant, body, key=key).items():
        response[name] = value
    response["Request-ID"] = identity.random_token(24)
    return response


def error(merchant: SandboxWechatMerchant, status: int, code: str, message: str) -> HttpResponse:
    return signed(merchant, status, {"code": code, "message": message})


def authenticate(request: HttpRequest, *, sign_refusal: bool = True) -> SandboxWechatMerchant | HttpResponse:
    """The merchant whose Authorization verifies, or the refusal: 401 SIGN_ERROR (unsigned when the header cannot be
    parsed; for a known merchant signed when `sign_refusal`, else unsigned as WeChat answers a request whose signature
    it did not accept), 403 NO_AUTH (unsigned) for an unknown mchid."""
    header = request.headers.get("Authorization", "")
    try:
        params = v3.parse_authorization(header)
    except VerificationError as exc:
        return unsigned(401, "SIGN_ERROR", f"Authorization invalid: {exc}")
    merchant = SandboxWechatMerchant.objects.filter(mch_id=params["mchid"]).first()
    if merchant is None:
        return unsigned(403, "NO_AUTH", "商户信息不合法")
    keys = {merchant.merchant_certificate_serial: merchant.merchant_certificate_pem}
    failure: VerificationError | None = None
    for path in signed_paths(request):
        try:
            v3.verify_request_authorization(
                header,
                method=request.method or "GET",
                path_with_query=path,
                body=request.body,
                merchant_keys=keys,
                clock=clock.timestamp,
            )
            return merchant
        except VerificationError as exc:
            failure = exc
    if sign_refusal:
        return error(merchant, 401, "SIGN_ERROR", f"签名错误: {failure}")
    return unsigned(401, "SIGN_ERROR", f"签名错误: {failure}")


def json_body(request: HttpRequest) -> dict[str, Any] | None:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None
