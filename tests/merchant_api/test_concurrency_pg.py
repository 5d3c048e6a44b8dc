"""Concurrent refund requests with one request key, on PostgreSQL with real threads (skipped elsewhere): exactly one
refund, one 201, the others 200 with the same refund."""

from __future__ import annotations

import httpx
import pytest

from payments.models import Refund
from tests.payments.test_concurrency_pg import run_together

from .conftest import BASE, make_api, make_payment

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


def test_concurrent_requests_with_one_key_make_one_refund(requires_postgres, world, wsgi_transport):
    payment = make_payment(world.store_a, "RACE-1", total_fee=1000)
    api = make_api(world.a, name="ERP")

    def ask(index: int) -> httpx.Response:
        with httpx.Client(transport=wsgi_transport, base_url="http://testserver") as http:
            return http.post(
                BASE + "payments/RACE-1/refunds",
                json={"refund_fee": 300, "request_key": "race-key-0001"},
                headers={"Authorization": f"Bearer {api.token}"},
            )

    results, errors = run_together(6, ask)

    assert errors == []
    assert sorted(r.status_code for r in results) == [200] * 5 + [201]
    assert {r.json()["out_refund_no"] for r in results} == {"RACE-1R01"}
    assert Refund.objects.filter(payment=payment).count() == 1
    payment.refresh_from_db()
    assert payment.reserved_refund_fee == 300


def test_concurrent_requests_with_one_key_and_two_amounts_make_one_refund(requires_postgres, world, wsgi_transport):
    payment = make_payment(world.store_a, "RACE-2", total_fee=1000)
    api = make_api(world.a, name="ERP")

    def ask(index: int) -> httpx.Response:
        with httpx.Client(transport=wsgi_transport, base_url="http://testserver") as http:
            return http.post(
                BASE + "payments/RACE-2/refunds",
                json={"refund_fee": 300 + index % 2, "request_key": "race-key-0002"},
                headers={"Authorization": f"Bearer {api.token}"},
            )

    results, errors = run_together(6, ask)

    assert errors == []
    codes = sorted(r.status_code for r in results)
    assert codes.count(201) == 1 and codes.count(200) == 2 and codes.count(409) == 3, codes
    assert Refund.objects.filter(payment=payment).count() == 1
