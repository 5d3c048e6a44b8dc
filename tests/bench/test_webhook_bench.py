"""The webhook parts of the benchmark and the fault run: the counting receiver, the chaotic receiver, the black hole,
and the report, each without a cluster."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from bench import chaos_receiver, webhooks
from webhooks import signing


def call(app, method: str, path: str, body: bytes = b"", headers=()) -> tuple[int, bytes]:
    sent = []
    chunks = [
        {"type": "http.request", "body": body[:10], "more_body": True},  # the body in two parts
        {"type": "http.request", "body": body[10:]},
    ]

    async def receive():
        return chunks.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": list(headers)}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], sent[1]["body"]


def test_the_counting_receiver_reads_every_body_and_counts_repeats(monkeypatch):
    monkeypatch.setattr(webhooks, "_received", webhooks.Counter())
    monkeypatch.setattr(webhooks, "_body_bytes", 0)
    for event_id in ("evt_1", "evt_2", "evt_1"):
        body = json.dumps({"id": event_id, "type": "payment.succeeded", "data": {"x": "y" * 50}}).encode()
        assert call(webhooks.receiver, "POST", "/hook/0", body) == (200, b'{"ok":true}')
    assert call(webhooks.receiver, "POST", "/hook/0", b"not json")[0] == 400

    status, answer = call(webhooks.receiver, "GET", "/count")

    counts = json.loads(answer)
    assert status == 200
    assert (counts["requests"], counts["events"], counts["duplicates"]) == (3, 2, 1)
    assert counts["body_bytes"] > 3 * 50


def test_attempt_outcomes_in_one_word():
    assert webhooks.attempt_outcome(204, "") == "2xx"
    assert webhooks.attempt_outcome(503, "HTTP 503") == "HTTP 503"
    assert webhooks.attempt_outcome(None, "timeout") == "timeout"
    assert webhooks.attempt_outcome(None, "NewConnectionError: … [Errno 111] Connection refused") == "refused"
    assert webhooks.attempt_outcome(None, "ProtocolError: ('Connection aborted.', …)") == "other"


def test_the_black_hole_accepts_and_never_answers():
    hole = webhooks.BlackHole()
    try:
        with socket.create_connection(("127.0.0.1", hole.port), timeout=2) as connection:
            connection.sendall(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            connection.settimeout(0.5)
            with pytest.raises(TimeoutError):
                connection.recv(1)
        assert hole.accepted == 1
    finally:
        hole.close()


def test_chaos_shares_are_normalised_and_checked():
    shares = chaos_receiver.parse_shares("2xx=2,5xx=1,reset=1")
    assert shares == {"2xx": 0.5, "5xx": 0.25, "timeout": 0.0, "reset": 0.25}
    with pytest.raises(ValueError):
        chaos_receiver.parse_shares("2xx=1,teapot=1")


def test_the_chaotic_receiver_verifies_logs_and_recovers(tmp_path):
    log = tmp_path / "requests.jsonl"

    async def scenario() -> list[int | str]:
        chaos = chaos_receiver.ChaosReceiver({"/hook/1": "whsec_a"}, {"2xx": 0, "5xx": 1, "timeout": 0, "reset": 0},
                                             0.1, str(log), seed=1)  # fmt: skip
        server = await asyncio.start_server(chaos.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def post(path: str, secret: str, attempt: int) -> int | str:
            body = b'{"id":"evt_1","type":"payment.succeeded","data":{}}'
            stamp = int(time.time())
            headers = {
                signing.EVENT_ID_HEADER: "evt_1",
                signing.TIMESTAMP_HEADER: str(stamp),
                signing.ATTEMPT_HEADER: str(attempt),
                signing.SIGNATURE_HEADER: signing.signature_header([secret], stamp, body),
                "Content-Length": str(len(body)),
            }
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            writer.write(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body)
            line = await reader.readline()
            writer.close()
            return int(line.split()[1]) if line else "closed"

        answers = [await post("/hook/1", "whsec_a", 1), await post("/hook/1", "wrong", 2)]
        chaos.recovered = True
        answers.append(await post("/hook/1", "whsec_a", 3))
        server.close()
        return answers

    answers = asyncio.run(scenario())

    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert answers[0] in (500, 502, 503) and answers[1:] == [400, 200]
    assert [(e["attempt"], e["signature"], e["recovered"]) for e in entries] == [
        (1, True, False), (2, False, False), (3, True, True)
    ]  # fmt: skip
    assert entries[0]["event"] == "evt_1" and entries[0]["answered"] >= entries[0]["received"]


def test_the_report_names_both_parts():
    one = {
        "deliveries_per_second": 1050.0, "backlog_seconds": 19.0, "cpu_seconds": 17.0, "receiver_cpu_seconds": 2.5,
        "postgresql_cpu_seconds": 2.3, "delivered": 20000, "received": {"events": 20000, "duplicates": 0},
        "sent_more_than_once": 0, "not_delivered": 0,
    }  # fmt: skip
    mode = {
        "payments": 1100, "not_final": 0, "p50_ms": 170.0, "p99_ms": 300.0, "rounds_p99_ms": [290.0, 310.0],
        "server_cpu_ms_per_payment": 29.0, "cpu_ms_per_payment": {"app": 12.0, "postgresql": 8.0, "celery": 7.0},
        "deliveries": [{"events": 375, "delivered": 375, "attempts": {"2xx": 375}}], "set_aside": 0,
    }  # fmt: skip
    results = {
        "throughput": {
            "events": 20000, "merchants": 10, "rounds": [one], "deliveries_per_second": 1050.0, "send_threads": 32,
            "endpoint_concurrency": 4, "body_bytes_mean": 540,
        },
        "outage": {
            "rounds": 2, "rate": 25, "seconds": 15, "latency_ms": 100, "merchants": 20, "devices": 100,
            "down": {"refused": 1, "black_hole": 1}, "webhook_timeout": 5.0, "black_hole_connections": 40,
            "A": mode, "B": {**mode, "p99_ms": 315.0, "down_merchants_p50_ms": 175.0, "down_merchants_p99_ms": 320.0,
                             "down_merchants_payments": 110},
            "off": mode, "p99_ratio": 1.05, "p50_ratio": 1.0, "rounds_p99_ratio": [1.02, 1.08],
        },
    }  # fmt: skip

    text = "\n".join(webhooks.markdown(results) + webhooks.headline(results))

    assert "| **median** | **1,050** |" in text
    assert "**B / A: p99 1.05 ×, p50 1.00 ×**" in text and "1.02 / 1.08" in text
    assert "off: no webhooks (reference)" in text
    assert "one delivery process 1,050 deliveries/s" in text
    assert "= 1.05 × (target ≤ 1.1; round by round, same arrivals: 1.02 / 1.08)" in text
