"""Shared pieces: redaction, the per-process clients, client-certificate handling, and module purity."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from payments.gateways import http
from payments.gateways.base import Outcome, mask, redact
from tests.payments.gateways.gateway_fakes import KeyPair, mock_client, raising

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_redact_masks_credentials_and_keeps_business_fields() -> None:
    fields = {
        "out_trade_no": "1415757673",
        "total_fee": 1,
        "auth_code": "134567890123456789",
        "authCode": "134567890123456789",
        "face_code": "FACE-CODE-SECRET",
        "sign": "C380BEC2BFD727A4B6845133519F3AD6",
        "signature": "BdA3TpMiw1Jxec0W",
        "api_key": "k" * 32,
        "nested": {"Authorization": "WECHATPAY2-SHA256-RSA2048 mchid=...", "amount": 5},
        "items": [{"token": "abcdefgh"}],
        "empty_sign": None,
    }
    redacted = redact({**fields, "empty_sign": None})
    assert redacted == {
        "out_trade_no": "1415757673",
        "total_fee": 1,
        "auth_code": "1345***",
        "authCode": "1345***",
        "face_code": "FACE***",
        "sign": "C380***",
        "signature": "BdA3***",
        "api_key": "kkkk***",
        "nested": {"Authorization": "WECH***", "amount": 5},
        "items": [{"token": "abcd***"}],
        "empty_sign": None,
    }
    assert fields["auth_code"] == "134567890123456789"  # the input is not modified
    assert mask("") == "" and mask(None) == "" and redact(None) == {}


def test_shared_client_is_one_per_process() -> None:
    assert http.shared_client() is http.shared_client()


def test_client_certificate_is_loaded_from_a_private_file_that_is_removed(
    merchant_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[str] = []
    modes: list[int] = []
    real_mkstemp = tempfile.mkstemp

    def recording_mkstemp(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        created.append(path)
        modes.append(stat.S_IMODE(os.stat(path).st_mode))
        return fd, path

    monkeypatch.setattr(http.tempfile, "mkstemp", recording_mkstemp)
    try:
        client = http.client_for_certificate(merchant_keys.cert_pem, merchant_keys.private_pem)
        assert http.client_for_certificate(merchant_keys.cert_pem, merchant_keys.private_pem) is client
    finally:
        http.close_all()
    assert len(created) == 1 and modes == [0o600]
    assert not os.path.exists(created[0])


def test_unusable_client_certificate_is_a_clean_value_error(merchant_keys: KeyPair) -> None:
    with pytest.raises(ValueError) as error:
        bad_key = "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"
        http.client_for_certificate(merchant_keys.cert_pem, bad_key)
    assert "nope" not in str(error.value)


@pytest.mark.parametrize(
    ("exc", "changes_state", "outcome"),
    [
        (httpx.ConnectError, True, Outcome.TRANSIENT),  # DNS failure / refused: nothing was sent
        (httpx.ConnectTimeout, True, Outcome.TRANSIENT),
        (httpx.PoolTimeout, True, Outcome.TRANSIENT),
        (httpx.ReadTimeout, True, Outcome.UNKNOWN),
        (httpx.ReadTimeout, False, Outcome.TRANSIENT),
        (httpx.RemoteProtocolError, True, Outcome.UNKNOWN),  # connection reset after sending
        (httpx.ReadError, False, Outcome.TRANSIENT),
    ],
)
def test_send_maps_transport_errors(exc: type[Exception], changes_state: bool, outcome: Outcome) -> None:
    client = mock_client(raising(exc))
    result = http.send(client, client.build_request("POST", "https://x.test/"), changes_state=changes_state)
    assert isinstance(result, http.TransportFailure)
    assert result.outcome is outcome and result.message == exc.__name__


def test_timeouts_are_passed_per_call() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200)

    client = mock_client(handler)
    request = client.build_request("GET", "https://x.test/", timeout=http.Timeouts(connect=1.5, read=4.0).as_httpx())
    http.send(client, request, changes_state=False)
    assert seen == [{"connect": 1.5, "read": 4.0, "write": 4.0, "pool": 1.5}]


def test_gateway_modules_import_without_django() -> None:
    code = (
        "import sys\n"
        "import payments.gateways.base, payments.gateways.http, payments.gateways.keys\n"
        "import payments.gateways.wechatpay_v2, payments.gateways.wechatpay_v3, payments.gateways.umpay\n"
        "assert not any(name == 'django' or name.startswith('django.') for name in sys.modules), 'django imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
    sources = "".join(p.read_text() for p in (REPO_ROOT / "payments" / "gateways").glob("*.py"))
    assert not re.search(r"^\s*(from|import)\s+django", sources, re.MULTILINE)
