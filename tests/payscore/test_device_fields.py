"""WeChat's `device` object (2025-03) on create and complete: the terminal that started the service
(start_device_id), the one that ended it (end_device_id, possibly at another store) and the store's materiel URL
(materiel_no) when it has one; the ends are recorded on the order."""

import json

import pytest

from payments.terminal_client import TerminalClient
from payscore import services
from sandbox import services as sandbox
from sandbox.models import SandboxPayscoreOrder
from tests.factories import StoreFactory, make_device

pytestmark = pytest.mark.django_db

MATERIEL_URL = "https://pay.weixin.qq.com/materiel/abc?policy=1"


def _sent(ps, suffix: str) -> dict:
    request = next(r for r in reversed(ps.shop.transport.requests) if r.url.path.endswith(suffix))
    return json.loads(request.content)


def _other_terminal(ps, transport, *, materiel_url: str = ""):
    """A terminal of the same merchant in another store (where, say, the power bank is returned)."""
    device, secret = make_device(StoreFactory(merchant=ps.merchant, payscore_materiel_url=materiel_url))
    client = TerminalClient(
        "http://testserver", device_id=device.device_id, secret=secret, transport=transport, clock=ps.clock.timestamp
    )
    return device, client


def _confirmed(ps, number: str = "PS0001") -> None:
    assert ps.create(number).status_code == 201
    sandbox.sandbox_payscore_user_confirm(number)
    ps.deliver()


def test_create_sends_the_starting_terminal_and_complete_the_ending_one(ps, wsgi_transport):
    _confirmed(ps)
    assert _sent(ps, "/serviceorder")["device"] == {"start_device_id": ps.shop.device.device_id}

    other, client = _other_terminal(ps, wsgi_transport, materiel_url=MATERIEL_URL)
    try:
        completed = client.post("payscore/orders/PS0001/complete", ps.complete_body(300))
    finally:
        client.close()
    assert completed.status_code == 200, completed.text
    # The completing terminal's store gives the materiel URL.
    assert _sent(ps, "/complete")["device"] == {"end_device_id": other.device_id, "materiel_no": MATERIEL_URL}

    order = ps.order()
    assert (order.device, order.end_device) == (ps.shop.device, other)
    sandbox_order = SandboxPayscoreOrder.objects.get(out_order_no="PS0001")
    assert sandbox_order.devices == {
        "create": {"start_device_id": ps.shop.device.device_id},
        "complete": {"end_device_id": other.device_id, "materiel_no": MATERIEL_URL},
    }


def test_materiel_url_is_sent_only_when_the_store_has_one(ps):
    store = ps.shop.device.store
    store.payscore_materiel_url = MATERIEL_URL
    store.save(update_fields=["payscore_materiel_url"])
    _confirmed(ps)
    assert _sent(ps, "/serviceorder")["device"] == {
        "start_device_id": ps.shop.device.device_id,
        "materiel_no": MATERIEL_URL,
    }
    assert ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(300)).status_code == 200
    assert _sent(ps, "/complete")["device"] == {"end_device_id": ps.shop.device.device_id, "materiel_no": MATERIEL_URL}
    assert ps.order().end_device == ps.shop.device


def test_staff_complete_sends_no_end_device_but_the_order_stores_materiel_url(ps):
    _confirmed(ps, "PS0001")
    _confirmed(ps, "PS0002")
    services.service_order_complete(order=ps.order("PS0001"), data=ps.complete_body(300), actor="STAFF")
    assert "device" not in _sent(ps, "/complete")
    store = ps.shop.device.store
    store.payscore_materiel_url = MATERIEL_URL
    store.save(update_fields=["payscore_materiel_url"])
    services.service_order_complete(order=ps.order("PS0002"), data=ps.complete_body(300), actor="STAFF")
    assert _sent(ps, "/complete")["device"] == {"materiel_no": MATERIEL_URL}
    for number in ("PS0001", "PS0002"):
        order = ps.order(number)
        assert (order.state_description, order.end_device) == ("MCH_COMPLETE", None)


def test_end_device_is_recorded_when_a_lost_complete_is_confirmed_by_query(ps):
    _confirmed(ps)
    ps.lossy.lose_answers = 1
    assert ps.terminal.post("payscore/orders/PS0001/complete", ps.complete_body(300)).status_code == 202
    assert ps.order().end_device is None
    ps.clock.advance(60)
    for order_id in services.service_orders_due(now=ps.clock.now()):
        services.service_order_refresh(order_id=order_id, now=ps.clock.now())
    order = ps.order()
    assert (order.pending_action, order.state_description, order.end_device) == (
        "",
        "MCH_COMPLETE",
        ps.shop.device,
    )
