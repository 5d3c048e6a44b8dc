"""WeChat Pay API v3 platform certificates: `GET /v3/certificates` (平台证书下载), verified before anything is trusted.

The answer lists the certificates WeChat signs answers and notifications with — during a rotation the new one next to
the old one, published before WeChat starts signing with it — each encrypted with the merchant's APIv3 key:

    {"data": [{"serial_no", "effective_time", "expire_time",
               "encrypt_certificate": {"algorithm": "AEAD_AES_256_GCM", "nonce", "associated_data", "ciphertext"}}]}

This module downloads and checks them; which ones to keep is the caller's business (payments.platform_certificates).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from . import http
from .base import GatewayResult, Outcome, VerificationError, redact
from .http import DEFAULT_TIMEOUTS, Timeouts
from .wechatpay_v3 import (
    Clock,
    WechatPayV3Config,
    _header,
    _signed_request,
    _status_outcome,
    decrypt_resource,
    verify_response,
)

PATH = "/v3/certificates"


class PlatformCertificate(NamedTuple):
    """One verified platform certificate. `expire_time` is the earlier of WeChat's 弃用时间 and the certificate's
    own notAfter (WeChat may retire a certificate before its notAfter when it rotates)."""

    serial: str  # upper-case hex without leading zeros, as Wechatpay-Serial names it
    pem: str
    effective_time: datetime
    expire_time: datetime


@dataclass(frozen=True, kw_only=True)
class CertificatesResult(GatewayResult):
    # Only on SUCCESS, newest first: the answer was verified and every entry checked out. Never partial.
    certificates: tuple[PlatformCertificate, ...] = ()
    signed_by: str = ""  # the Wechatpay-Serial that signed the answer
    expired: tuple[str, ...] = ()  # serials the answer still listed although their time has passed (left out)


class _Unusable(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _moment(value: Any, name: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise _Unusable("UNPARSEABLE", f"{name} missing")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Unusable("UNPARSEABLE", f"{name} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise _Unusable("UNPARSEABLE", f"{name} has no time zone")
    return moment.astimezone(UTC)


def _entry(item: Any, api_v3_key: str) -> tuple[str, PlatformCertificate]:
    """(the serial as the answer names it, the checked certificate). Raises _Unusable."""
    if not isinstance(item, Mapping) or not isinstance(item.get("encrypt_certificate"), Mapping):
        raise _Unusable("UNPARSEABLE", "certificate entry without encrypt_certificate")
    named = str(item.get("serial_no") or "").strip().upper()
    try:
        named_number = int(named, 16)
    except ValueError:
        raise _Unusable("UNPARSEABLE", "serial_no is not hexadecimal") from None
    try:
        plaintext = decrypt_resource(item["encrypt_certificate"], api_v3_key=api_v3_key)
    except VerificationError as exc:
        raise _Unusable("DECRYPT_FAILED", f"certificate {named[:40]}: {exc}") from None
    try:
        certificate = x509.load_pem_x509_certificate(plaintext)
    except ValueError:
        raise _Unusable("UNPARSEABLE", f"certificate {named[:40]} is not a PEM certificate") from None
    if certificate.serial_number != named_number:
        raise _Unusable("SERIAL_MISMATCH", f"certificate {named[:40]} carries another serial number")
    effective = _moment(item.get("effective_time"), "effective_time")
    expire = min(_moment(item.get("expire_time"), "expire_time"), certificate.not_valid_after_utc)
    pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return named, PlatformCertificate(format(certificate.serial_number, "X"), pem, effective, expire)


def download_certificates(
    config: WechatPayV3Config,
    *,
    client: httpx.Client | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    clock: Clock = time.time,
) -> CertificatesResult:
    """The platform certificates WeChat lists now, each decrypted, parsed and checked, the answer's signature verified.

    How the answer is trusted. Its signature is checked with the key the Wechatpay-Serial header names:
    - one we already trust (`config.platform_keys`: stored certificates, or the platform public key in the
      transition to public-key mode) — the ordinary case, and the only one once keys are stored;
    - otherwise (the first download, or WeChat signing with a certificate we have not stored yet) with the certificate
      of that serial *from this answer*. That certificate is trusted because it decrypted: AEAD_AES_256_GCM with the
      APIv3 key authenticates the ciphertext, and only WeChat and the merchant know that key, so nobody else can
      produce an entry that decrypts. The signature then shows the answer as a whole was made with its private key.
      A serial that is neither stored nor in the answer is refused.

    Anything that does not check out — a ciphertext that does not decrypt, a certificate whose serial is not its
    `serial_no`, an unparseable time, a bad or unknown signature — makes the whole result not SUCCESS (TRANSIENT:
    an answer we cannot verify decides nothing) with no certificates: nothing from it is trusted. Entries whose
    expire time has passed at `clock()` are left out (named in `expired`). Error answers are classified like every
    v3 call's (REJECTED for a definite refusal — e.g. a merchant in public-key mode that has no certificates —,
    TRANSIENT for 429/5xx and transport trouble).
    """
    client = client or http.shared_client()
    request = _signed_request(
        config,
        client,
        "GET",
        config.base_url.rstrip("/") + PATH,
        b"",
        headers={"Accept": "application/json"},
        timeouts=timeouts,
        clock=clock,
    )
    result: dict[str, Any] = {"request_fields": {"method": "GET", "path": PATH}}
    sent = http.send(client, request, changes_state=False)
    if isinstance(sent, http.TransportFailure):
        return CertificatesResult(
            outcome=sent.outcome, code=sent.code, message=sent.message, latency_ms=sent.latency_ms, **result
        )
    result.update(http_status=sent.status, latency_ms=sent.latency_ms)

    def unusable(code: str, message: str) -> CertificatesResult:
        return CertificatesResult(outcome=Outcome.TRANSIENT, code=code, message=message[:255], **result)

    try:
        data = json.loads(sent.body) if sent.body.strip() else {}
    except (ValueError, UnicodeDecodeError):
        data = None
    if not 200 <= sent.status < 300:
        return _error_answer(config, sent, data, result, clock)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return unusable("UNPARSEABLE", "answer has no data list")
    result["response_fields"] = redact(data)

    named: dict[str, PlatformCertificate] = {}
    try:
        for item in data["data"]:
            serial, certificate = _entry(item, config.api_v3_key)
            named[serial] = certificate
    except _Unusable as exc:
        return unusable(exc.code, exc.message)

    signer = _header(sent.headers, "Wechatpay-Serial").strip()
    if signer in config.platform_keys:
        keys: Mapping[str, Any] = config.platform_keys
    elif signer.upper() in named:
        keys = {signer: named[signer.upper()].pem}
    else:
        return unusable("BAD_SIGNATURE", "the answer is signed by a certificate neither stored nor in the answer")
    try:
        verify_response(sent.headers, sent.body, platform_keys=keys, clock=clock)
    except VerificationError as exc:
        return unusable("BAD_SIGNATURE", str(exc))

    now = datetime.fromtimestamp(clock(), UTC)
    current = [c for c in named.values() if c.expire_time > now]
    expired = tuple(sorted(c.serial for c in named.values() if c.expire_time <= now))
    current.sort(key=lambda c: (c.expire_time, c.serial), reverse=True)
    return CertificatesResult(
        outcome=Outcome.SUCCESS, certificates=tuple(current), signed_by=signer, expired=expired, **result
    )


def _error_answer(
    config: WechatPayV3Config,
    sent: http.RawResponse,
    data: Any,
    result: dict[str, Any],
    clock: Clock,
) -> CertificatesResult:
    """A non-2xx answer, read like every v3 error answer: signed ones must verify with a key we trust; only a 401
    (WeChat did not accept our signature) may come unsigned; anything else unsigned is not WeChat's word."""
    verified = True
    if _header(sent.headers, "Wechatpay-Signature"):
        try:
            verify_response(sent.headers, sent.body, platform_keys=config.platform_keys, clock=clock)
        except VerificationError as exc:
            if config.platform_keys:
                return CertificatesResult(outcome=Outcome.TRANSIENT, code="BAD_SIGNATURE", message=str(exc), **result)
            # Nothing is stored yet, so no error answer can be verified: its code is kept to tell the operator
            # (e.g. that the merchant has no certificates), but it decides nothing.
            verified = False
    elif sent.status != 401:
        return CertificatesResult(
            outcome=Outcome.TRANSIENT,
            code=f"HTTP_{sent.status}",
            message="error answer without a signature",
            **result,
        )
    if not isinstance(data, dict):
        return CertificatesResult(
            outcome=Outcome.TRANSIENT, code=f"HTTP_{sent.status}", message="error answer is not JSON", **result
        )
    code = str(data.get("code") or f"HTTP_{sent.status}")
    return CertificatesResult(
        outcome=_status_outcome(sent.status, code, False) if verified else Outcome.TRANSIENT,
        code=code[:64],
        message=str(data.get("message", ""))[:255],
        response_fields=redact(data),
        **result,
    )
