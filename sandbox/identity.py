"""Identifiers the sandbox hands out, and the fake users behind payment codes, face codes and face_sids.

A sandbox "user" is an 8-digit number. Payment codes and face codes carry it in digits 3-10 (after the 2-digit
prefix), face_sids after "fsid", so micropay, facemch and the terminal helper agree on the openid without storing
anything. Real codes from other sources still work: their digits simply name some user.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string

from django.utils import timezone

from . import clock

_FACE_SID = re.compile(r"^fsid(\d{8})[0-9a-f]{16}$")


def _digits(count: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(count))


def _today() -> str:
    return timezone.localtime(clock.now()).strftime("%Y%m%d")


def wechat_transaction_id() -> str:
    return "4200" + "0" + _today() + _digits(15)  # 28 digits, like WeChat's


def wechat_refund_id() -> str:
    return "5030" + _today() + _digits(17)


def umpay_transaction_id() -> str:
    return _today() + _digits(16)


def payscore_order_id() -> str:
    return "1000" + _today() + _digits(12)


def random_token(length: int = 64) -> str:
    return secrets.token_urlsafe(length)[:length]


def public_key_id() -> str:
    return "PUB_KEY_ID_" + "01" + _digits(30)


def new_user() -> str:
    return _digits(8)


def user_of_code(code: str) -> str:
    return code[2:10] if len(code) >= 10 else code


def openid_for(user: str, appid: str = "") -> str:
    # openids are per appid at WeChat; the same user has a different openid under another appid.
    return "oSbx" + hashlib.sha256(f"openid:{appid}:{user}".encode()).hexdigest()[:24]


def union_id_for(user: str) -> str:
    return "oUbx" + hashlib.sha256(f"unionid:{user}".encode()).hexdigest()[:24]


def face_code_for(user: str) -> str:
    # 18 digits starting 13: the shape of a WeChat payment code (face_code_type "1" in the face SDK).
    return "13" + user + _digits(8)


def face_sid_for(user: str) -> str:
    return "fsid" + user + secrets.token_hex(8)


def user_of_face_sid(face_sid: str) -> str | None:
    match = _FACE_SID.match(face_sid)
    return match.group(1) if match else None


def is_wechat_payment_code(code: str) -> bool:
    # WeChat payment codes: 18 digits starting 10-15; WeChat answers AUTH_CODE_INVALID to anything else.
    return len(code) == 18 and code.isdigit() and 10 <= int(code[:2]) <= 15
