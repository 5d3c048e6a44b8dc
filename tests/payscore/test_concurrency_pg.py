"""Concurrent duplicate deliveries of one notification, and concurrent identical creates, on PostgreSQL."""

import pytest

from payscore.models import PayscoreNotification, ServiceOrder
from sandbox import services as sandbox
from tests.payments.test_concurrency_pg import run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_duplicate_notifications_apply_once(requires_postgres, ps):
    ps.create()
    sandbox.sandbox_payscore_user_confirm("PS0001")
    ps.receiver.refuse = True
    ps.deliver()
    ps.receiver.refuse = False

    results, errors = run_together(4, lambda index: ps.replay(0).status_code)
    assert errors == []
    assert results == [204] * 4
    order = ps.order()
    assert (order.state, order.state_description) == ("DOING", "USER_CONFIRM")
    assert order.events.filter(action="notification").count() == 1
    assert order.events.filter(action="state", to_state="DOING/USER_CONFIRM").count() == 1
    applied = PayscoreNotification.objects.exclude(notification_id="")
    assert applied.count() == 1
    assert PayscoreNotification.objects.filter(result="duplicate").count() == 3


def test_concurrent_identical_creates_make_one_order(requires_postgres, ps):
    results, errors = run_together(4, lambda index: ps.create("RACE1").status_code)
    assert errors == []
    # One request creates; the others get the same order: 202 (confirming) while the create is in flight, else 200.
    assert results.count(201) == 1
    assert set(results) - {201} <= {200, 202}
    assert ServiceOrder.objects.filter(out_order_no="RACE1").count() == 1
    assert ps.upstream_calls().count("v3/payscore/serviceorder") == 1
