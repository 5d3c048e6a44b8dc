"""Device authentication for the terminal API (DESIGN §7).

    Authorization: TERMINAL-HMAC-SHA256 device="<device_id>",timestamp="<unix seconds>",nonce="<16-32 chars>",
                   signature="<base64>"
    signature = base64(HMAC-SHA256(device_secret,
                       METHOD \\n PATH_WITH_QUERY \\n timestamp \\n nonce \\n RAW_BODY \\n))

Checks run in this order so nothing about a device leaks before its signature is proven: header shape, device
exists, timestamp window, signature, nonce unused (a DB unique constraint, so replays are caught across processes),
then device / store / merchant enabled.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions

from portal.models import Device, DeviceNonce

SCHEME = "TERMINAL-HMAC-SHA256"
_PARAM = re.compile(r'(\w+)="([^"]*)"')
_NONCE = re.compile(r"^[0-9A-Za-z_\-]{16,32}$")


class TerminalAuthFailed(exceptions.AuthenticationFailed):
    """401 with a stable code."""

    def __init__(self, code: str, message: str):
        super().__init__(detail=message, code=code)
        self.error_code = code


class TerminalForbidden(exceptions.PermissionDenied):
    """403 with a stable code: the device is known and authentic but not allowed to transact."""

    def __init__(self, code: str, message: str):
        super().__init__(detail=message, code=code)
        self.error_code = code


@dataclass(frozen=True)
class TerminalPrincipal:
    """`request.user` for terminal requests; `request.auth` is the Device."""

    device: Device
    is_authenticated: bool = True

    @property
    def pk(self) -> int:
        return self.device.pk


def canonical_message(method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    head = f"{method.upper()}\n{path_with_query}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


def compute_signature(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()).decode("ascii")


def parse_authorization(header: str) -> dict[str, str]:
    if not header.startswith(SCHEME + " "):
        raise TerminalAuthFailed("AUTH_HEADER_INVALID", f"Authorization must use the {SCHEME} scheme.")
    params = dict(_PARAM.findall(header[len(SCHEME) + 1 :]))
    missing = [name for name in ("device", "timestamp", "nonce", "signature") if not params.get(name)]
    if missing:
        raise TerminalAuthFailed("AUTH_HEADER_INVALID", f"Authorization is missing: {', '.join(missing)}.")
    if not params["timestamp"].isdigit():
        raise TerminalAuthFailed("AUTH_HEADER_INVALID", "timestamp must be unix seconds.")
    if not _NONCE.match(params["nonce"]):
        raise TerminalAuthFailed("AUTH_HEADER_INVALID", "nonce must be 16-32 letters, digits, '_' or '-'.")
    return params


def _record_nonce(device_pk: int, nonce: str) -> bool:
    """Insert the nonce unless this device already used it; False for a replay. One statement, its own transaction
    outside an atomic block: ON CONFLICT DO NOTHING settles concurrent replays on the unique constraint without an
    exception, so no BEGIN/SAVEPOINT is needed around it (PostgreSQL and SQLite both support the clause)."""
    table = connection.ops.quote_name(DeviceNonce._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (device_id, nonce, created_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (device_id, nonce) DO NOTHING RETURNING id",
            [device_pk, nonce, connection.ops.adapt_datetimefield_value(timezone.now())],
        )
        return cursor.fetchone() is not None


class DeviceSignatureAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            raise TerminalAuthFailed("AUTH_HEADER_MISSING", "This API needs a device-signed Authorization header.")
        params = parse_authorization(header)
        try:
            # get(), not first(): device_id is unique, and first()'s ORDER BY costs CPU on every request.
            device = Device.objects.select_related("store__merchant__provider").get(device_id=params["device"])
        except Device.DoesNotExist:
            raise TerminalAuthFailed("DEVICE_UNKNOWN", "No device with this id is registered.") from None

        window = settings.TERMINAL_TIMESTAMP_WINDOW_SECONDS
        if abs(time.time() - int(params["timestamp"])) > window:
            raise TerminalAuthFailed("TIMESTAMP_EXPIRED", f"timestamp is more than {window} s from server time.")

        message = canonical_message(
            request.method, request.get_full_path(), params["timestamp"], params["nonce"], request._request.body
        )
        expected = compute_signature(device.secret.reveal(), message)
        if not hmac.compare_digest(expected, params["signature"]):
            raise TerminalAuthFailed("SIGNATURE_INVALID", "The request signature does not match.")

        if not _record_nonce(device.pk, params["nonce"]):
            raise TerminalAuthFailed("NONCE_REPLAYED", "This nonce was already used; sign every request anew.")

        if not device.is_active:
            raise TerminalForbidden("DEVICE_DISABLED", "This device is disabled.")
        if not device.store.is_active:
            raise TerminalForbidden("STORE_DISABLED", "This device's store is disabled.")
        if not device.store.merchant.is_active:
            raise TerminalForbidden("MERCHANT_SUSPENDED", "This device's merchant is suspended.")
        return TerminalPrincipal(device), device

    def authenticate_header(self, request) -> str:
        return SCHEME
