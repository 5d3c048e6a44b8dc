"""The v3 trade bill (申请交易账单 + 下载账单): both requests signed (the download over the download_url's own
path+query), the tradebill answer verified like every v3 answer, the file checked against its SHA1 (of the bytes
received, or of the decompressed bill), NO_STATEMENT_EXIST an answer, STATEMENT_CREATING and server trouble to be
asked again."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import date
from pathlib import Path

import httpx
import pytest

from payments.gateways import wechatpay_v2 as v2
from payments.gateways import wechatpay_v3 as v3
from payments.gateways.base import Outcome
from tests.payments.gateways.gateway_fakes import KeyPair, mock_client, raising

NOW = 1_700_000_000
MCHID = "1230000109"
SAMPLE = (Path(__file__).parents[2] / "reconciliation" / "bills" / "wechat_all_direct.csv").read_bytes()
DOWNLOAD_URL = "https://api.test/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNpDKY%3Ax"


def clock() -> float:
    return float(NOW)


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@pytest.fixture(scope="module")
def config(merchant_keys: KeyPair, platform_keys: KeyPair) -> v3.WechatPayV3Config:
    return v3.WechatPayV3Config(
        mchid=MCHID,
        appid="wxd678efh567hg6787",
        merchant_private_key_pem=merchant_keys.private_pem,
        merchant_serial_no=merchant_keys.serial,
        api_v3_key="0123456789abcdefghijklmnopqrstuv",
        platform_keys={platform_keys.serial: platform_keys.cert_pem},
        base_url="https://api.test",
    )


class FakeBillPlatform:
    """WeChat's side: checks every request's Authorization over the path+query it received, answers the tradebill
    call with signed JSON (or a signed error) and the download with the file's bytes, unsigned."""

    def __init__(
        self,
        merchant: KeyPair,
        platform: KeyPair,
        *,
        file: bytes = b"",
        hash_value: str | None = None,
        status: int = 200,
        error: dict | None = None,
        sign: bool = True,
        sign_with: KeyPair | None = None,
        download_status: int = 200,
    ) -> None:
        self.merchant, self.platform = merchant, platform
        self.file = file
        self.hash_value = sha1(file) if hash_value is None else hash_value
        self.status, self.error, self.sign = status, error, sign
        self.sign_with = sign_with or platform
        self.download_status = download_status
        self.paths: list[str] = []
        self.accepts: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()
        verified = v3.verify_request_authorization(
            request.headers["Authorization"],
            method=request.method,
            path_with_query=path,
            body=request.content,
            merchant_keys={self.merchant.serial: self.merchant.cert_pem},
            clock=clock,
        )
        assert verified.mchid == MCHID and request.method == "GET" and request.content == b""
        self.paths.append(path)
        self.accepts.append(request.headers.get("Accept", ""))
        if request.url.path == "/v3/billdownload/file":
            return httpx.Response(self.download_status, content=self.file if self.download_status == 200 else b"")
        assert request.url.path == "/v3/bill/tradebill"
        if self.error is not None:
            data = self.error
        else:
            data = {"hash_type": "SHA1", "hash_value": self.hash_value, "download_url": DOWNLOAD_URL}
        content = json.dumps(data).encode()
        headers = {}
        if self.sign:
            headers = v3.sign_response(
                content, serial=self.platform.serial, private_key=self.sign_with.private_pem, timestamp=NOW
            )
        return httpx.Response(self.status, content=content, headers=headers)


def call(config, platform, **request) -> v2.DownloadBillResult:
    request.setdefault("bill_date", date(2026, 3, 10))
    return v3.tradebill(config, v3.TradeBillRequest(**request), client=mock_client(platform), clock=clock)


def test_the_tradebill_request_is_signed_and_the_download_is_signed_over_its_own_path(
    config, merchant_keys, platform_keys
):
    compressed = gzip.compress(SAMPLE)
    platform = FakeBillPlatform(merchant_keys, platform_keys, file=compressed)

    result = call(config, platform)

    assert (result.outcome, result.code, result.no_bill, result.content) == (Outcome.SUCCESS, "", False, SAMPLE)
    assert isinstance(result, v2.DownloadBillResult)
    assert platform.paths == [
        "/v3/bill/tradebill?bill_date=2026-03-10&bill_type=ALL&tar_type=GZIP",
        "/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNpDKY%3Ax",
    ]
    assert platform.accepts[0] == "application/json"
    # The download token is a credential for the file: not kept in what is stored.
    assert "6XIv5" not in json.dumps(result.request_fields) + json.dumps(result.response_fields)
    assert result.response_fields["download_url"] == "https://api.test/v3/billdownload/file?token=***"


def test_a_service_provider_asks_for_its_sub_merchants_bill_uncompressed(config, merchant_keys, platform_keys):
    platform = FakeBillPlatform(merchant_keys, platform_keys, file=SAMPLE)

    result = call(config, platform, bill_date="2026-03-10", sub_mchid="1900000201", gzip=False)

    assert (result.outcome, result.content) == (Outcome.SUCCESS, SAMPLE)
    assert platform.paths[0] == "/v3/bill/tradebill?bill_date=2026-03-10&bill_type=ALL&sub_mchid=1900000201"


def test_a_gzip_file_may_carry_the_hash_of_the_decompressed_bill(config, merchant_keys, platform_keys):
    platform = FakeBillPlatform(merchant_keys, platform_keys, file=gzip.compress(SAMPLE), hash_value=sha1(SAMPLE))

    result = call(config, platform)

    assert (result.outcome, result.content) == (Outcome.SUCCESS, SAMPLE)


@pytest.mark.parametrize("file", [gzip.compress(SAMPLE), SAMPLE], ids=["gzip", "plain"])
def test_a_file_that_does_not_match_its_hash_is_not_taken(config, merchant_keys, platform_keys, file):
    platform = FakeBillPlatform(merchant_keys, platform_keys, file=file, hash_value=sha1(SAMPLE + b"x"))

    result = call(config, platform)

    assert (result.outcome, result.code, result.content, result.no_bill) == (
        Outcome.TRANSIENT,
        "HASH_MISMATCH",
        b"",
        False,
    )
    assert len(platform.paths) == 2


def test_an_answer_with_a_bad_signature_is_not_trusted(config, merchant_keys, platform_keys):
    impostor = FakeBillPlatform(
        merchant_keys, platform_keys, file=SAMPLE, sign_with=merchant_keys
    )  # right serial, wrong key

    result = call(config, impostor)

    assert (result.outcome, result.code, result.content) == (Outcome.TRANSIENT, "BAD_SIGNATURE", b"")
    assert len(impostor.paths) == 1  # its download_url is never fetched


def test_an_unsigned_no_statement_answer_decides_nothing(config, merchant_keys, platform_keys):
    platform = FakeBillPlatform(
        merchant_keys,
        platform_keys,
        status=400,
        error={"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"},
        sign=False,
    )

    result = call(config, platform)

    assert (result.outcome, result.no_bill) == (Outcome.TRANSIENT, False)


def test_no_statement_exist_is_an_answer_no_bill(config, merchant_keys, platform_keys):
    platform = FakeBillPlatform(
        merchant_keys, platform_keys, status=400, error={"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"}
    )

    result = call(config, platform)

    assert (result.outcome, result.code, result.no_bill, result.content) == (
        Outcome.REJECTED,
        "NO_STATEMENT_EXIST",
        True,
        b"",
    )
    assert result.message == "账单文件不存在"


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (400, "STATEMENT_CREATING", Outcome.TRANSIENT),
        (500, "SYSTEM_ERROR", Outcome.TRANSIENT),
        (502, "BAD_GATEWAY", Outcome.TRANSIENT),
        (429, "FREQUENCY_LIMITED", Outcome.TRANSIENT),
        (400, "INVALID_REQUEST", Outcome.REJECTED),
        (400, "PARAM_ERROR", Outcome.REJECTED),
        (403, "NO_AUTH", Outcome.REJECTED),
    ],
)
def test_refusals_and_server_errors(config, merchant_keys, platform_keys, status, code, outcome):
    platform = FakeBillPlatform(merchant_keys, platform_keys, status=status, error={"code": code, "message": "m"})

    result = call(config, platform)

    assert (result.outcome, result.code, result.no_bill, result.http_status) == (outcome, code, False, status)
    assert len(platform.paths) == 1


def test_a_failed_download_is_asked_again(config, merchant_keys, platform_keys):
    platform = FakeBillPlatform(merchant_keys, platform_keys, file=SAMPLE, download_status=503)

    result = call(config, platform)

    assert (result.outcome, result.code, result.content) == (Outcome.TRANSIENT, "HTTP_503", b"")


def test_transport_trouble_is_transient(config):
    result = v3.tradebill(
        config,
        v3.TradeBillRequest(bill_date="2026-03-10"),
        client=mock_client(raising(httpx.ReadTimeout)),
        clock=clock,
    )

    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "TIMEOUT")


def test_a_bill_date_that_is_not_a_day_is_a_programming_error(config):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        v3.tradebill(config, v3.TradeBillRequest(bill_date="20260310"), client=mock_client(lambda r: None))
