"""Which API brings the bill: a merchant whose credentials have APIv3 configured (the APIv3 key, the merchant key and
serial, a platform certificate or public key) downloads it over v3 (`GET /v3/bill/tradebill`, then its
download_url), the others over v2 (`downloadbill`) — and the day reconciles the same either way."""

from __future__ import annotations

import gzip

import httpx
import pytest

from payments import channels
from payments.gateways import wechatpay_v3
from portal.models import Merchant
from portal.selectors import signing_credentials_for
from reconciliation import services
from reconciliation.models import Bill, DayResult
from tests.reconciliation.test_reconcile import DAY, NOON, a_day_of_trade, pay, reconcile


@pytest.fixture
def day_shop(shop):
    shop.clock.current = NOON
    return shop


V3_CALLS = ["v3/bill/tradebill", "v3/billdownload/file"]


def bill_calls(shop) -> list[str]:
    return [path for path in shop.upstream_calls() if "bill" in path]


def without_apiv3(shop) -> None:
    credentials = signing_credentials_for(shop.merchant)
    credentials.wechat_api_v3_key = ""
    credentials.save(update_fields=["wechat_api_v3_key"])


def test_a_merchant_with_apiv3_reconciles_its_day_from_the_v3_trade_bill(day_shop):
    a_day_of_trade(day_shop)

    report = reconcile(day_shop)

    assert bill_calls(day_shop) == V3_CALLS
    assert report.differences == []
    assert (report.status, report.rows, report.matched, report.carried) == ("IMPORTED", 4, 4, 0)
    result = DayResult.objects.get(merchant=day_shop.merchant, bill_date=DAY)
    assert (result.payment_count, result.refund_count, result.payment_total, result.refund_total) == (3, 1, 5000, 1000)
    assert result.net_settlement == 5000 - 1000 - 19
    assert Bill.objects.get().source == "DOWNLOAD"
    tradebill = next(r for r in day_shop.transport.requests if r.url.path.endswith("/v3/bill/tradebill"))
    assert tradebill.url.params["bill_date"] == "2026-03-10" and tradebill.url.params["tar_type"] == "GZIP"
    assert tradebill.headers["Authorization"].startswith("WECHATPAY2-SHA256-RSA2048 ")


def test_a_service_provider_merchant_asks_for_its_sub_mchid_over_v3(make_shop):
    shop = make_shop(Merchant.Channel.WECHAT_PROVIDER)
    shop.clock.current = NOON
    pay(shop, 1500)

    report = reconcile(shop)

    assert bill_calls(shop) == V3_CALLS
    assert (report.rows, report.matched, report.differences) == (1, 1, [])
    tradebill = next(r for r in shop.transport.requests if r.url.path.endswith("/v3/bill/tradebill"))
    assert tradebill.url.params["sub_mchid"] == "1900000201"


def test_v3_no_statement_and_statement_creating(day_shop):
    with pytest.raises(services.BillNotReady, match="STATEMENT_CREATING"):
        services.reconcile_day(merchant=day_shop.merchant, bill_date=DAY)  # still the 10th: not published

    report = reconcile(day_shop)  # the next morning, nothing was traded

    assert (report.status, report.rows) == ("NO_BILL", 0)
    assert bill_calls(day_shop) == ["v3/bill/tradebill", "v3/bill/tradebill"]


def test_without_the_apiv3_key_the_bill_comes_over_v2_as_before(day_shop):
    without_apiv3(day_shop)
    a_day_of_trade(day_shop)
    with pytest.raises(services.BillNotReady, match="Bill Creating"):
        services.reconcile_day(merchant=day_shop.merchant, bill_date=DAY)

    report = reconcile(day_shop)

    assert bill_calls(day_shop) == ["pay/downloadbill", "pay/downloadbill"]
    assert (report.status, report.rows, report.matched, report.differences) == ("IMPORTED", 4, 4, [])


def _signed_get(shop, url: str, merchant) -> httpx.Response:
    config = channels.wechat_v3_config(merchant)
    authorization = wechatpay_v3.build_authorization(
        mchid=config.mchid,
        serial_no=config.merchant_serial_no,
        private_key=config.merchant_private_key_pem,
        method="GET",
        path_with_query=httpx.URL(url).raw_path.decode("ascii"),
        timestamp=int(shop.clock.timestamp()),
    )
    return channels.upstream_client.get(url, headers={"Authorization": authorization})


def test_the_sandbox_download_url_is_the_merchants_only_and_expires(day_shop, make_shop):
    pay(day_shop, 1200)
    reconcile(day_shop)
    url = str(next(r.url for r in day_shop.transport.requests if r.url.path.endswith("/v3/billdownload/file")))
    other = make_shop(Merchant.Channel.WECHAT_PROVIDER)

    again = _signed_get(day_shop, url, day_shop.merchant)
    foreign = _signed_get(day_shop, url, other.merchant)
    tampered = _signed_get(day_shop, url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB"), day_shop.merchant)
    day_shop.clock.advance(31)
    late = _signed_get(day_shop, url, day_shop.merchant)

    assert again.status_code == 200 and gzip.decompress(again.content).count(b"\r\n`") == 2  # the row, the summary
    assert "Wechatpay-Signature" not in again.headers  # the file is not signed: its hash is
    assert (foreign.status_code, foreign.json()["code"]) == (403, "NO_AUTH")
    assert (tampered.status_code, tampered.json()["code"]) == (400, "INVALID_REQUEST")
    assert (late.status_code, late.json()["code"]) == (400, "INVALID_REQUEST")
