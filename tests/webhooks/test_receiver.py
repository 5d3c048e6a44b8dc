"""The reference receiver (`manage.py webhook_listen`) against real deliveries: it accepts what the product signs,
refuses what another secret signed, and recognises a repeat by the event id."""

from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command

from tests.webhooks.test_delivery import deliver, endpoint_for
from webhooks import delivery
from webhooks.models import WebhookDelivery
from webhooks.receiver import make_server


@pytest.fixture(autouse=True)
def _quick_drains(monkeypatch):
    monkeypatch.setattr(delivery, "_IDLE_LINGER", 0.1)


@pytest.fixture
def listen():
    servers = []

    def start(secrets: list[str]) -> tuple[str, list[str]]:
        lines: list[str] = []
        server = make_server("127.0.0.1", 0, secrets, lines.append)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/", lines

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_reference_receiver_verifies_prints_and_recognises_repeats(shop, listen):
    url, lines = listen(["placeholder"])
    endpoint, secret = endpoint_for(shop.merchant, url)
    url, lines = listen([secret])
    endpoint.url = url
    endpoint.save()
    order = shop.pay(1000)
    deliver()
    assert WebhookDelivery.objects.get().status == "DELIVERED"
    assert lines[0].startswith("VERIFIED payment.succeeded evt_") and "attempt 1" in lines[0]
    assert order["out_trade_no"] in lines[1]

    from webhooks import services

    services.delivery_resend(delivery=WebhookDelivery.objects.get(), user=None)
    deliver()
    assert "repeat: already handled" in lines[2]


def test_the_reference_receiver_refuses_another_secret_and_the_delivery_is_retried(shop, listen):
    url, lines = listen(["whsec_not_the_endpoints"])
    endpoint_for(shop.merchant, url)
    shop.pay(1000)
    deliver()
    row = WebhookDelivery.objects.get()
    assert row.status == "PENDING" and row.last_status_code == 400
    assert lines[0].startswith("REFUSED")


def test_the_command_needs_a_secret(monkeypatch):
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    with pytest.raises(CommandError):
        call_command("webhook_listen", "--port", "0")
