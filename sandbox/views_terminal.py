"""Helpers that play the face SDK's part for the terminal simulator (not part of any upstream protocol).

- `POST terminal/rawdata` → `{"rawdata"}`: what getWxpayfaceRawdata would return.
- `POST terminal/face_code {"authinfo", "user"?}` → `{"face_code", "openid", "face_sid", "user"}`: what
  getWxpayfaceCode returns after a face is recognised. The authinfo must be one the sandbox issued and unexpired,
  as the SDK would insist. `user` (8 digits) picks a returning customer; without it a new user is made up.
- `POST terminal/payment_code {"user"?}` → `{"auth_code", "user"}`: an 18-digit payment code as a scanner reads it.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import clock, identity
from .models import SandboxAuthinfo


def _body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}
    return request.POST.dict()


def _user(data: dict[str, Any]) -> str | None:
    user = str(data.get("user") or "")
    if not user:
        return identity.new_user()
    return user if len(user) == 8 and user.isdigit() else None


@csrf_exempt
@require_POST
def rawdata(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"rawdata": secrets.token_urlsafe(192)})


@csrf_exempt
@require_POST
def face_code(request: HttpRequest) -> JsonResponse:
    data = _body(request)
    issued = SandboxAuthinfo.objects.filter(authinfo=str(data.get("authinfo") or "")).first()
    if issued is None or issued.expires_at <= clock.now():
        return JsonResponse({"code": "AUTHINFO_INVALID", "message": "authinfo unknown or expired"}, status=400)
    user = _user(data)
    if user is None:
        return JsonResponse({"code": "PARAM_ERROR", "message": "user must be 8 digits"}, status=400)
    return JsonResponse(
        {
            "face_code": identity.face_code_for(user),
            "openid": identity.openid_for(user, issued.appid),
            "face_sid": identity.face_sid_for(user),
            "user": user,
        }
    )


@csrf_exempt
@require_POST
def payment_code(request: HttpRequest) -> JsonResponse:
    user = _user(_body(request))
    if user is None:
        return JsonResponse({"code": "PARAM_ERROR", "message": "user must be 8 digits"}, status=400)
    return JsonResponse({"auth_code": identity.face_code_for(user), "user": user})
