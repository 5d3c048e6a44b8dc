"""The capacity scenarios' pure parts: arrivals, amounts, and how payments and long-polls are summarised."""

import asyncio
import json
import math
import random
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import pytest

from bench import capacity
from bench.capacity import Scenario
from bench.measure import percentile


def test_percentile_is_the_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]  # order does not matter

    assert percentile(values, 50) == 50.0 and percentile(values, 99) == 99.0 and percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_poisson_arrivals_have_the_offered_rate_within_the_window():
    times = capacity.arrivals(25, 400, random.Random(3), poisson=True)

    assert times == sorted(times) and 0 <= times[0] and times[-1] < 400
    assert len(times) == pytest.approx(25 * 400, rel=0.05)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert sum(gaps) / len(gaps) == pytest.approx(1 / 25, rel=0.05)
    assert capacity.arrivals(25, 400, random.Random(4), poisson=True) != times  # seeded, not fixed


def test_fixed_arrivals_are_evenly_spaced_from_a_random_phase():
    first = capacity.arrivals(10, 3, random.Random(1), poisson=False)
    second = capacity.arrivals(10, 3, random.Random(2), poisson=False)

    for times in (first, second):
        assert len(times) == 30 and 0 <= times[0] < 0.1 and times[-1] < 3
        assert all(b - a == pytest.approx(0.1) for a, b in zip(times, times[1:], strict=False))
    assert first[0] != second[0]
    assert capacity.arrivals(0, 10, random.Random(1), poisson=True) == []


def test_password_users_pay_amounts_with_the_sandbox_password_code():
    rng = random.Random(5)

    assert {capacity.payment_amount(rng, password=True) % 1000 for _ in range(50)} == {101}
    assert {capacity.payment_amount(rng, password=False) % 1000 for _ in range(50)} == {0}  # SUCCESS at once


def test_rounds_interleave_healthy_password_and_degraded_scenarios():
    plan = capacity.plan([10, 25], password_share=0.15, timeout_share=0.05)

    assert plan == [
        Scenario(10), Scenario(10, password_share=0.15), Scenario(10, timeout_share=0.05),
        Scenario(25), Scenario(25, password_share=0.15), Scenario(25, timeout_share=0.05),
    ]  # fmt: skip
    assert len({scenario.key for scenario in plan}) == 6
    assert plan[5].label == "25/s, 0 % password, degraded: 5 % of upstream calls time out"


def _payment(seconds, *, password=False, errors=(), status="SUCCESS", requests=1, shared=False):
    return {
        "seconds": seconds, "password": password, "errors": list(errors), "status": status, "requests": requests,
        "shared_terminal": shared,
    }  # fmt: skip


def test_time_to_final_is_summarised_per_kind_of_user_in_milliseconds():
    records = [_payment(s / 1000) for s in range(1, 101)]  # 1 … 100 ms
    records += [_payment(s, password=True, requests=2) for s in (10.5, 11.0, 14.0)]
    records += [
        _payment(None, errors=["timeout", "timeout"], status="NO_FINAL_ANSWER", requests=9),
        _payment(None, password=True, errors=["HTTP 503", "HTTP 404"], status="NOT_CREATED", requests=2),
        _payment(15.2, errors=["connection: ReadError"], status="REVERSED", requests=3, shared=True),
    ]

    summary = capacity.summarize(records)

    ordinary, password = summary["ordinary"], summary["password"]
    assert (ordinary["payments"], ordinary["final"]) == (102, 101)  # the one without a final answer is left out
    assert ordinary["p50_ms"] == pytest.approx(51.0) and ordinary["p99_ms"] == pytest.approx(100.0)
    assert ordinary["max_ms"] == pytest.approx(15200.0)
    assert (password["payments"], password["final"]) == (4, 3)
    assert password["p50_ms"] == pytest.approx(11000.0)
    assert summary["payments"] == 106 and summary["not_final"] == 2
    assert summary["errors"] == {"timeout": 2, "HTTP 503": 1, "HTTP 404": 1, "connection: ReadError": 1}
    assert summary["outcomes"] == {"SUCCESS": 103, "NO_FINAL_ANSWER": 1, "NOT_CREATED": 1, "REVERSED": 1}
    assert summary["requests"] == 100 + 6 + 9 + 2 + 3 and summary["shared_terminal"] == 1


def test_no_password_users_means_no_password_figures():
    summary = capacity.summarize([_payment(0.2), _payment(0.3)])

    assert summary["password"]["payments"] == 0 and math.isnan(summary["password"]["p50_ms"])
    assert summary["errors"] == {} and summary["not_final"] == 0


def test_scenario_rounds_pool_payments_and_keep_the_samples_maxima():
    def round_(records, dashboard, connections, rss, app_cpu):
        return {
            "records": records, "seconds": 10.0, "wall_seconds": 12.0, "dashboard_ms": dashboard,
            "dashboard_errors": {"502": 1} if not dashboard else {}, "pg_connections_max": connections,
            "pg_web_connections_max": connections - 4, "pg_web_busy_max": 2, "web_rss_max_mib": rss,
            "cpu_seconds": {"app": app_cpu, "sandbox": 1.0, "postgresql": 0.5, "redis": 0.1, "celery": 0.4},
            "load_generator_cpu_seconds": 0.5,
        }  # fmt: skip

    rounds = [
        round_([_payment(0.1)] * 60, [float(ms) for ms in range(1, 11)], 20, 250.0, 2.0),
        round_([_payment(0.3)] * 40, [], 24, 240.0, 1.0),
    ]
    combined = capacity.combine(rounds)

    assert combined["payments"] == 100 and combined["offered_per_second"] == 5.0
    assert combined["ordinary"]["p50_ms"] == pytest.approx(100.0) and combined["ordinary"]["p99_ms"] == 300.0
    assert combined["dashboard"] == {"fetches": 10, "p50_ms": 5.0, "p99_ms": 10.0, "errors": {"502": 1}}
    assert (combined["pg_connections_max"], combined["pg_web_connections_max"], combined["web_rss_max_mib"]) == (
        24, 20, 250.0
    )  # fmt: skip
    # Per payment over both rounds; the server is app + PostgreSQL + Redis + Celery, not the sandbox.
    assert combined["cpu_ms_per_payment"]["app"] == pytest.approx(30.0)
    assert combined["server_cpu_ms_per_payment"] == pytest.approx((3.0 + 1.0 + 0.2 + 0.8) * 1000 / 100)
    assert combined["cpu_ms_per_payment"]["load generator"] == pytest.approx(10.0)
    assert [r["payments"] for r in combined["rounds"]] == [60, 40]


def test_peak_concurrency_counts_intervals_open_at_one_instant():
    assert capacity.peak_concurrency([]) == 0
    assert capacity.peak_concurrency([(0, 10), (1, 2), (1.5, 3), (2.5, 4)]) == 3
    assert capacity.peak_concurrency([(0, 1), (1, 2), (2, 3)]) == 1  # one ends as the next starts


def test_long_polls_answered_late_count_as_timeouts():
    wait = 20.0

    def poll(sent, answered, errors=(), final=False):
        return {"sent": sent, "answered": answered, "errors": list(errors), "final": final}

    records = [
        poll(0.0, 20.4),
        poll(0.1, 20.6),
        poll(0.2, 29.0),  # held the wait after queueing ~9 s: still within wait + 10 s
        poll(0.3, 31.5),  # answered, but after the limit
        poll(0.4, None, ["timeout"]),
        poll(0.5, None, ["HTTP 503"]),
        poll(1.0, 3.0, final=True),  # the order settled meanwhile
    ]

    summary = capacity.summarize_long_polls(records, wait)

    assert summary["requests"] == 7
    assert summary["answered"] == 4 and summary["answered_final"] == 1
    assert summary["timeouts"] == 2 and summary["answered_late"] == 1
    assert summary["errors"] == {"HTTP 503": 1}
    assert summary["held_full_wait"] == 4  # the late one too; the settled one was answered early
    assert summary["last_sent_s"] == 1.0
    assert summary["answer_max_s"] == pytest.approx(31.2)
    assert summary["peak_open_client"] == 7  # from 1.0 to 3.0 s; the unanswered stay open until the client gives up
    assert capacity.summarize_long_polls(records[:6], wait)["peak_open_client"] == 6
    assert summary["peak_held_server"] == 4  # waits [0.4, 20.4], [0.6, 20.6], [9.0, 29.0], [11.5, 31.5]


def test_the_open_files_limit_is_raised_only_when_too_low(monkeypatch):
    set_to = []
    monkeypatch.setattr(capacity.resource, "getrlimit", lambda kind: (1024, 4096))
    monkeypatch.setattr(capacity.resource, "setrlimit", lambda kind, limits: set_to.append(limits))

    capacity.raise_open_files(512)
    capacity.raise_open_files(3000)
    capacity.raise_open_files(10000)  # at most the hard limit

    assert set_to == [(3000, 4096), (4096, 4096)]


class _Answer:
    """What the stand-in server answers: an HTTP status, a JSON body, headers."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        self.status, self.body, self.headers = status, body, headers or {}

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info):
        return False

    async def read(self) -> bytes:
        return json.dumps(self.body).encode()


class _Session:
    """The part of aiohttp.ClientSession the load generator uses, answering `answers` in turn (an exception is
    raised as the client would raise it)."""

    def __init__(self, answers, seen):
        self.answers, self.seen = answers, seen

    def request(self, method, url, data=None, headers=None):
        parts = urlsplit(url)
        self.seen.append((method, parts.path, dict(parse_qsl(parts.query)), data or b""))
        assert headers["Authorization"].startswith("TERMINAL-HMAC-SHA256 ")  # every request is device-signed
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _sequence(monkeypatch, answers):
    """payment_sequence against a stand-in server answering `answers` in turn: (its record, what the server saw and
    the terminal slept, the bodies it posted)."""
    seen = []

    async def no_wait(seconds):
        seen.append(("slept", seconds))

    monkeypatch.setattr(capacity.asyncio, "sleep", no_wait)
    record = asyncio.run(capacity.payment_sequence(_Session(answers, seen), {"device_id": "D1", "secret": "s"}, 1101))
    posted = [json.loads(step[3]) for step in seen if step[0] == "POST"]
    return record, seen, posted


def _order(status, final):
    return _Answer(200, {"status": status, "is_final": final})


def test_a_payment_long_polls_until_its_answer_is_final(monkeypatch):
    record, seen, posted = _sequence(
        monkeypatch, [_order("PAYING", False), _order("PAYING", False), _order("SUCCESS", True)]
    )

    number = posted[0]["out_trade_no"]
    assert posted[0]["total_fee"] == 1101 and number.startswith("CAP")  # the terminal numbers its order
    assert [s[:3] for s in seen] == [
        ("POST", "/api/terminal/v1/payments", {}),
        ("GET", f"/api/terminal/v1/payments/{number}", {"wait": "10"}),
        ("GET", f"/api/terminal/v1/payments/{number}", {"wait": "10"}),
    ]
    assert record["status"] == "SUCCESS" and record["seconds"] > 0
    assert record["requests"] == 3 and record["errors"] == []


def test_a_refused_payment_is_sent_again_after_retry_after(monkeypatch):
    busy = _Answer(503, {"code": "CHANNEL_BUSY", "message": "m", "details": {}}, {"Retry-After": "1"})
    record, seen, posted = _sequence(monkeypatch, [busy, _order("SUCCESS", True)])

    assert [s[0] for s in seen] == ["POST", "slept", "POST"] and seen[1] == ("slept", 1.0)
    assert posted[0] == posted[1]  # the same payment, same out_trade_no: created once
    assert record["status"] == "SUCCESS" and record["errors"] == ["HTTP 503 CHANNEL_BUSY"] and record["requests"] == 2


def test_a_payment_whose_post_was_lost_is_looked_up(monkeypatch):
    not_found = _Answer(404, {"code": "NOT_FOUND", "message": "m", "details": {}})
    record, seen, _ = _sequence(monkeypatch, [TimeoutError(), not_found])

    assert [s[0] for s in seen] == ["POST", "slept", "GET"]
    assert record.pop("number").startswith("CAP")
    assert record == {"seconds": None, "status": "NOT_CREATED", "errors": ["timeout", "HTTP 404 NOT_FOUND"],
                      "requests": 2}  # fmt: skip

    record, _, _ = _sequence(monkeypatch, [aiohttp.ClientConnectionError("refused"), _order("SUCCESS", True)])
    assert record["status"] == "SUCCESS" and record["errors"] == ["connection: ClientConnectionError"]


def test_healthy_payments_leave_out_those_whose_own_call_timed_out():
    def record(seconds, *, password=False, timed_out=False):
        return {
            "seconds": seconds, "status": "SUCCESS", "errors": [], "requests": 1, "password": password,
            "shared_terminal": False, "own_call_timed_out": timed_out, "number": "N",
        }  # fmt: skip

    records = [record(0.1 * n) for n in range(1, 11)] + [record(15.0, timed_out=True), record(10.0, password=True)]
    summary = capacity.summarize(records)

    assert summary["ordinary"]["payments"] == 11 and summary["ordinary"]["max_ms"] == 15000
    assert summary["healthy"]["payments"] == 10 and summary["healthy"]["p99_ms"] == 1000
    assert summary["own_call_timed_out"] == 1 and summary["password"]["payments"] == 1
