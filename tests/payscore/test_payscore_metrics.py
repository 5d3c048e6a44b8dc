"""PayScore's upstream calls are counted, timed and logged like the payment calls (payments.channels.observed)."""

import pytest

from sandbox import services as sandbox
from tests.portal.test_metrics import scrape, value


@pytest.mark.django_db(transaction=True)
def test_payscore_calls_are_counted_like_the_payment_calls(metrics_dir, ps, client):
    assert ps.create("PS0001").status_code == 201
    sandbox.sandbox_payscore_user_confirm("PS0001")
    ps.deliver()
    assert ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(300)).status_code == 200

    samples = scrape(client)
    wechat = {"channel": "WECHAT"}
    assert value(samples, "facepay_upstream_calls_total", **wechat, api="payscore_create", outcome="SUCCESS") == 1
    assert value(samples, "facepay_upstream_calls_total", **wechat, api="payscore_complete", outcome="SUCCESS") == 1
    assert value(samples, "facepay_upstream_call_seconds_count", **wechat, api="payscore_create") == 1
