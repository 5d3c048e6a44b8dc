"""Device authentication for the terminal API (docs/protocols.md, "Terminal API").

    Authorization: TERMINAL-HMAC-SHA256 device="<device_id>",timestamp="<unix seconds>",nonce="<16-32 chars>",
                   signature="<base64>"
    signature = base64(HMAC-SHA256(device_secret,
                       METHOD \\n PATH_WITH_QUERY \\n timestamp \\n nonce \\n RAW_BODY \\n))

Checks run in this order so nothing about a device leaks before its signature is proven: header shape, timestamp
window (before the device is looked up, so it answers alike for every device id), device exists and signature
(one answer for both, SIGNATURE_INVALID: telling them apart would let anyone enumerate device ids; only the server
log says which), nonce unused (a DB unique constraint, so replays are caught across processes), then device / store
/ merchant enabled. An authentic request moves the device's last_seen_at (at most one write a minute per device).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions

from portal.models import Device, DeviceNonce
from portal.request_id import bind
from portal.services import device_mark_seen

logger = logging.getLogger(__name__)

SCHEME = "TERMINAL-HMAC-SHA256"
# The answer to an unknown device and to a wrong signature alike.
_NOT_AUTHENTIC = ("SIGNATURE_INVALID", "The device id or the request signature is not valid.")
# Signs for an unknown device, so that it costs what a known one does (no timing difference from the HMAC).
_NO_SECRET = "no-such-device-secret-0000000000"
_PARAM = re.compile(r'(\w+)="([^"]*)"')
_NONCE = re.compile(r"^[0-9A-Za-z_\-]{16,32}$")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{43}=")


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


def signed_paths(request) -> Iterator[str]:
    """The path + query a client may have signed, most likely first: Django's canonical form (`get_full_path()`:
    the decoded path percent-encoded again, the query string as sent), then the request line exactly as sent when
    the server passes it (ASGI's raw_path, which uvicorn fills; WSGI's RAW_URI or REQUEST_URI), then the path
    encoded with only '/' safe. They name the same resource, so accepting any of them weakens nothing; a client
    that percent-encodes `*` or `|` in an out_trade_no still verifies. Lazy: a request signed in the canonical form
    costs only that one."""
    seen: set[str] = set()

    def forms():
        yield request.get_full_path()
        scope = getattr(request, "scope", None)  # ASGI: the path as sent is the scope's raw_path
        if scope and scope.get("raw_path"):
            query = scope.get("query_string", b"")
            yield (scope["raw_path"] + (b"?" + query if query else b"")).decode("latin-1")
        yield request.META.get("RAW_URI", "")
        yield request.META.get("REQUEST_URI", "")
        query = request.META.get("QUERY_STRING", "")
        yield quote(request.path, safe="/") + ("?" + query if query else "")

    for path in forms():
        if path and path not in seen:
            seen.add(path)
            yield path


def parse_authorization(header: str) -> dict[str, str]:
    if not header.startswith(SCHEME + " "):
        raise TerminalAuthFailed("AUTH_HEADER_INVALID", f"Authorization must use the {SCHEME} scheme.")
    params = dict(_PARAM.findall(header[len(SCHEME) + 1 :]))
    missing = [name for name in ("device", "timestamp", "nonce", "signature") if not params.get(name)]
    if missing:
        raise TerminalAuthFailed("AUTH_HEADER_INVALID", f"Authorization is missing: {', '.join(missing)}.")
    # ASCII digits of a sane length: str.isdigit() also takes '²' and 5,000-digit numbers, which int() refuses.
    if not _TIMESTAMP.fullmatch(params["timestamp"]):
        raise TerminalAuthFailed("AUTH_HEADER_INVALID", "timestamp must be unix seconds.")
    if not _SIGNATURE.fullmatch(params["signature"]):
        raise TerminalAuthFailed("AUTH_HEADER_INVALID", "signature must be base64 of an HMAC-SHA256 (44 characters).")
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
        window = settings.TERMINAL_TIMESTAMP_WINDOW_SECONDS
        if abs(time.time() - int(params["timestamp"])) > window:
            raise TerminalAuthFailed("TIMESTAMP_EXPIRED", f"timestamp is more than {window} s from server time.")

        try:
            # get(), not first(): device_id is unique, and first()'s ORDER BY costs CPU on every request.
            device = Device.objects.select_related("store__merchant__provider").get(device_id=params["device"])
        except Device.DoesNotExist:
            device = None
        secret, body = (device.secret.reveal() if device else _NO_SECRET), request._request.body
        for path in signed_paths(request._request):
            message = canonical_message(request.method, path, params["timestamp"], params["nonce"], body)
            if hmac.compare_digest(compute_signature(secret, message), params["signature"]) and device:
                break
        else:
            if device is None:
                logger.warning("Terminal request refused: no device %r is registered", params["device"][:64])
            else:
                logger.warning("Terminal request refused: bad signature for device %s", device.device_id)
            raise TerminalAuthFailed(*_NOT_AUTHENTIC)

        bind(device_id=device.device_id, merchant_id=device.store.merchant_id)  # on this request's log lines
        if not _record_nonce(device.pk, params["nonce"]):
            raise TerminalAuthFailed("NONCE_REPLAYED", "This nonce was already used; sign every request anew.")
        # The device proved itself: it is alive, even if it is refused below (docs/operations.md, "Device health").
        device_mark_seen(device)

        if not device.is_active:
            raise TerminalForbidden("DEVICE_DISABLED", "This device is disabled.")
        if not device.store.is_active:
            raise TerminalForbidden("STORE_DISABLED", "This device's store is disabled.")
        if not device.store.merchant.is_active:
            raise TerminalForbidden("MERCHANT_SUSPENDED", "This device's merchant is suspended.")
        provider = device.store.merchant.provider
        if provider is not None and not provider.is_active:
            raise TerminalForbidden("PROVIDER_SUSPENDED", "This device's service provider is deactivated.")
        return TerminalPrincipal(device), device

    def authenticate_header(self, request) -> str:
        return SCHEME
