"""The downloadbill gateway call: signed like every v2 request; the bill itself comes back unsigned, as text or
GZIP; "No Bill Exist" is an answer, "Bill Creating" and server errors are to be asked again."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import pytest

from payments.gateways import wechatpay_v2 as v2
from payments.gateways.base import Outcome

CONFIG = v2.WechatPayV2Config(appid="wxd930ea5d5a258f4f", mch_id="10000100", api_key="k" * 32, base_url="http://wx")
SAMPLE = (Path(__file__).parents[2] / "reconciliation" / "bills" / "wechat_all_direct.csv").read_bytes()


def _client(body: bytes, status: int = 200, seen: list | None = None) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(v2.from_xml(request.content))
        return httpx.Response(status, content=body)

    return httpx.Client(transport=httpx.MockTransport(handle))


def test_the_request_is_signed_and_asks_for_the_all_bill_gzipped():
    seen: list[dict] = []
    result = v2.downloadbill(
        CONFIG, v2.DownloadBillRequest(bill_date="20260310"), client=_client(gzip.compress(SAMPLE), seen=seen)
    )

    assert (result.outcome, result.content, result.no_bill) == (Outcome.SUCCESS, SAMPLE, False)
    fields = seen[0]
    assert (fields["bill_date"], fields["bill_type"], fields["tar_type"]) == ("20260310", "ALL", "GZIP")
    assert v2.verify(fields, CONFIG.api_key)


def test_an_uncompressed_bill_is_taken_as_it_is():
    result = v2.downloadbill(CONFIG, v2.DownloadBillRequest(bill_date="20260310", gzip=False), client=_client(SAMPLE))
    assert (result.outcome, result.content) == (Outcome.SUCCESS, SAMPLE)


@pytest.mark.parametrize(
    ("message", "outcome", "no_bill"),
    [
        ("No Bill Exist", Outcome.REJECTED, True),
        ("Bill Creating", Outcome.TRANSIENT, False),
        ("当前商户号账单API权限已经关闭", Outcome.REJECTED, False),
    ],
)
def test_refusals(message, outcome, no_bill):
    body = v2.to_xml({"return_code": "FAIL", "return_msg": message, "error_code": "20002"}).encode()
    result = v2.downloadbill(CONFIG, v2.DownloadBillRequest(bill_date="20260310"), client=_client(body))
    assert (result.outcome, result.no_bill, result.content) == (outcome, no_bill, b"")


def test_a_server_error_is_transient():
    result = v2.downloadbill(CONFIG, v2.DownloadBillRequest(bill_date="20260310"), client=_client(b"", status=502))
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "HTTP_502")
