"""Replay protection holds across processes: the nonce store is the database, settled by a unique constraint."""

import threading

import pytest
from django.db import connection

from payments.terminal_client import authorization_header
from tests.factories import make_device

pytestmark = pytest.mark.django_db(transaction=True)


def test_same_nonce_sent_concurrently_is_accepted_once(requires_postgres):
    from django.test import Client

    device, secret = make_device()
    path = "/api/terminal/v1/heartbeat"
    header = authorization_header(
        device_id=device.device_id,
        secret=secret,
        method="POST",
        path_with_query=path,
        body=b"{}",
        nonce="concurrent-nonce-0001",
    )
    barrier = threading.Barrier(8)
    statuses: list[int] = []
    lock = threading.Lock()

    def send():
        try:
            barrier.wait()
            response = Client().post(path, data=b"{}", content_type="application/json", HTTP_AUTHORIZATION=header)
            with lock:
                statuses.append(response.status_code)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] + [401] * 7
