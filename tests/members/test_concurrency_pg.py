"""Concurrent first identifications of one openid create exactly one member and lose no visit (PostgreSQL)."""

import json
import threading

import pytest
from django.db import connection

from members.models import Member, MemberEvent
from payments.terminal_client import authorization_header
from tests.factories import make_device

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


def test_concurrent_identify_of_a_new_openid_creates_one_member(requires_postgres):
    from django.test import Client

    device, secret = make_device()
    path = "/api/terminal/v1/members/identify"
    body = json.dumps({"openid": "oConcurrent_0001"}).encode()
    barrier = threading.Barrier(THREADS)
    answers: list[tuple[int, bool, int]] = []
    lock = threading.Lock()

    def send():
        try:
            header = authorization_header(
                device_id=device.device_id, secret=secret, method="POST", path_with_query=path, body=body
            )
            barrier.wait()
            response = Client().post(path, data=body, content_type="application/json", HTTP_AUTHORIZATION=header)
            data = response.json()
            with lock:
                answers.append((response.status_code, data.get("is_member"), data.get("visits")))
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=send) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # exactly one member; every request answered 200; exactly one saw the member as new; counts 1..8 each once
    assert [status for status, _, _ in answers] == [200] * THREADS
    assert sorted(is_member for _, is_member, _ in answers) == [False] + [True] * (THREADS - 1)
    assert sorted(visits for _, _, visits in answers) == list(range(1, THREADS + 1))
    member = Member.objects.get()
    assert member.visit_count == THREADS
    assert MemberEvent.objects.filter(member=member, kind="IDENTIFIED").count() == THREADS
