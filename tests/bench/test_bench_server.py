"""The benchmark's own server pieces: the baseline endpoint (bench/urls.py only), the added upstream latency, and
the helpers the load generators rely on."""

import httpx
import pytest
from django.db import connection

from bench import badinput
from bench.faults import pick_amount, server_errors_in_access_log, table
from bench.views import TABLE, UpstreamLatencyMiddleware, set_upstream
from portal.terminal_auth import canonical_message, compute_signature, parse_authorization

pytestmark = pytest.mark.django_db


@pytest.fixture
def bench_urls(settings):
    settings.ROOT_URLCONF = "bench.urls"


def test_baseline_authenticates_and_inserts_one_row(bench_urls, device_and_secret, wsgi_transport):
    device, secret = device_and_secret
    with httpx.Client(transport=wsgi_transport, base_url="http://testserver") as client:
        request = badinput.signed_request(
            client, device_id=device.device_id, secret=secret, method="POST", path="/api/terminal/v1/bench/baseline",
            query=None, body=b"{}",
        )  # fmt: skip
        response = client.send(request)

    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "device_id": device.device_id}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT device_id FROM {TABLE}")
        assert cursor.fetchall() == [(device.pk,)]


def test_baseline_refuses_unsigned_requests(bench_urls, db, wsgi_transport):
    with httpx.Client(transport=wsgi_transport, base_url="http://testserver") as client:
        response = client.post("/api/terminal/v1/bench/baseline", json={})

    assert response.status_code == 401
    assert badinput.has_error_shape(response)


def test_baseline_is_not_in_the_product_urls(db, wsgi_transport):
    with httpx.Client(transport=wsgi_transport, base_url="http://testserver") as client:
        assert client.post("/api/terminal/v1/bench/baseline", json={}).status_code == 404


class _Request:
    def __init__(self, path):
        self.path = path


def test_latency_middleware_only_delays_upstream_calls(settings, monkeypatch):
    settings.BENCH_SANDBOX_LATENCY_MS = 25
    slept = []
    monkeypatch.setattr("bench.views.time.sleep", slept.append)
    middleware = UpstreamLatencyMiddleware(lambda request: "answer")

    assert middleware(_Request("/sandbox/umpay/pay/micropay")) == "answer"
    assert middleware(_Request("/sandbox/terminal/rawdata")) == "answer"
    assert middleware(_Request("/api/terminal/v1/payments")) == "answer"
    assert slept == [0.025]


def test_upstream_behaviour_is_switched_at_run_time(settings, monkeypatch):
    """The benchmark switches latency and timeouts between scenarios through the shared cache: a timed-out call is
    served first (the upstream acted on it) and answered only after the product's longest timeout."""
    settings.BENCH_SANDBOX_LATENCY_MS = 0
    settings.UPSTREAM_READ_TIMEOUT, settings.PAYMENT_CALL_TIMEOUT = 10.0, 8.0
    events = []
    monkeypatch.setattr("bench.views.time.sleep", lambda seconds: events.append(("sleep", seconds)))
    monkeypatch.setattr("bench.views.connections.close_all", lambda: events.append(("connections closed",)))
    monkeypatch.setattr("bench.views.random.random", lambda: 0.04)
    middleware = UpstreamLatencyMiddleware(lambda request: events.append(("served",)) or "answer")

    middleware(_Request("/sandbox/wechatpay/pay/micropay"))
    assert events == [("served",)]  # no control value yet: the process's own latency, 0

    events.clear()
    set_upstream(latency_ms=100, timeout_share=0.05)
    assert middleware(_Request("/sandbox/wechatpay/pay/orderquery")) == "answer"
    assert events == [("sleep", 0.1), ("served",), ("connections closed",), ("sleep", 11.0)]

    events.clear()
    set_upstream(latency_ms=100, timeout_share=0.03)  # 0.04 is past the share: answered in time
    middleware(_Request("/sandbox/wechatpay/pay/orderquery"))
    assert events == [("sleep", 0.1), ("served",)]


def test_fuzzer_signature_is_what_the_server_checks(db):
    client = httpx.Client(base_url="http://testserver")
    request = badinput.signed_request(
        client,
        device_id="DEV-1",
        secret="s3cr3t",
        method="POST",
        path="/api/terminal/v1/payments",
        query={"wait": "5", "x": "a b"},
        body=b'{"a":1}',
    )
    params = parse_authorization(request.headers["Authorization"])
    message = canonical_message(
        "POST", "/api/terminal/v1/payments?wait=5&x=a+b", params["timestamp"], params["nonce"], b'{"a":1}'
    )

    assert params["signature"] == compute_signature("s3cr3t", message)
    assert request.url.raw_path == b"/api/terminal/v1/payments?wait=5&x=a+b"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"code": "X", "message": "m", "details": {}}, True),
        ({"code": "X", "message": "m"}, False),
        ({"detail": "Not found."}, False),
        (["code"], False),
    ],
)
def test_error_shape(body, expected):
    assert badinput.has_error_shape(httpx.Response(400, json=body)) is expected


def test_access_log_5xx_count(tmp_path):
    log = tmp_path / "app-access.log"
    log.write_text(
        # gunicorn's own format (status, then size)
        '127.0.0.1 - - [x] "POST /api/terminal/v1/payments HTTP/1.1" 201 500 "-" "python-httpx"\n'
        '127.0.0.1 - - [x] "GET /api/terminal/v1/payments/X HTTP/1.1" 502 12 "-" "python-httpx"\n'
        # uvicorn's, as its gunicorn worker writes it (the line ends with the status)
        '127.0.0.1:41234 - "GET /api/terminal/v1/payments/Y HTTP/1.1" 500\n'
        '127.0.0.1:41236 - "GET /api/terminal/v1/payments/Z HTTP/1.1" 200\n'
        '127.0.0.1:41238 - "GET /api/terminal/v1/payments/5000 HTTP/1.1" 404\n'
    )

    assert server_errors_in_access_log(log) == 2
    assert server_errors_in_access_log(tmp_path / "missing.log") == 0


def test_amounts_pick_scenarios_of_the_merchants_channel():
    import random

    rng = random.Random(1)
    wechat = [pick_amount("WECHAT_DIRECT", rng, 1.0) % 1000 for _ in range(200)]
    umf = [pick_amount("UMPAY", rng, 1.0) % 1000 for _ in range(200)]
    plain = [pick_amount("UMPAY", rng, 0.0) % 1000 for _ in range(200)]

    assert set(wechat) <= set(range(101, 112)) and set(umf) <= set(range(201, 206))
    assert set(plain) <= {0, 1, 88, 500, 999}


def test_table():
    assert table([("a", 0), ("longer", 12)]) == (
        "| check  | count |\n|--------|------:|\n| a      |     0 |\n| longer |    12 |"
    )


def test_rounds_are_combined_against_the_baseline_of_the_same_round():
    from bench.bench import SERVER_CPU, combine_rounds

    def round_(rps, app_ms, server_ms, requests):
        return {
            "rps": rps, "requests": requests, "requests_total": requests + 15, "answered_total": requests + 10,
            "errors": 0, "error_statuses": [], "commits": 4 * requests,
            "cpu_ms_per_request": {"app": app_ms, SERVER_CPU: server_ms},
        }  # fmt: skip

    rounds = [round_(40.0, 20.0, 40.0, 600), round_(30.0, 30.0, 30.0, 450), round_(45.0, 10.0, 33.0, 700)]
    combined = combine_rounds(rounds, latencies=[float(ms) for ms in range(1, 101)], baseline_server_cpu=[10, 12, 11])

    assert combined["rps"] == 40.0  # the median round
    # The server CPU of a request of this scenario / of a baseline request, each round against its own baseline:
    # above 1 costs more than the baseline.
    assert combined["rounds_server_cpu_ratio_to_baseline"] == [4.0, 2.5, 3.0]
    assert combined["server_cpu_ratio_to_baseline"] == 3.0  # the median of the rounds' ratios
    assert combined["p50_ms"] == 50.0 and combined["p99_ms"] == 99.0
    assert combined["requests_total"] == 1795 and combined["answered_total"] == 1780
    expected_app = (20.0 * 610 + 30.0 * 460 + 10.0 * 710) / 1780  # weighted by the requests answered
    assert abs(combined["cpu_ms_per_request"]["app"] - expected_app) < 1e-9


def test_load_generator_builds_one_tls_context_per_process(monkeypatch):
    """httpx builds a TLS context (loading the CA bundle, ~50 ms of CPU) per client unless given one: 100 terminals'
    clients did that at every scenario's start, on the cores being measured. The worker shares one."""
    import ssl

    from bench import bench

    built = []
    real = ssl.create_default_context

    def counting(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    terminals = [{"device_id": f"T{i}", "secret": "s", "rawdata": "", "out_trade_no": "X"} for i in range(5)]
    # stop_at in the past: every terminal builds its client and stops at once, sending nothing.
    assert bench._worker(("a_baseline", "http://127.0.0.1:9", terminals, 0.0, 0.0)) == []
    assert len(built) == 1


def test_paced_scenarios_are_named_by_their_interval():
    from bench import bench

    assert [bench.paced_interval(bench.paced_scenario(value)) for value in (20.0, 5.0, 2.5)] == [20.0, 5.0, 2.5]
    assert bench.paced_interval("b_payment_success") == 0.0  # closed loop
    assert bench.label(bench.paced_scenario(20.0)) == "(b′) POST payments, one every 20 s per terminal"


def test_payment_segments_come_from_the_orders_events(shop):
    import time

    from bench import bench

    started = time.time()
    order = shop.pay(1000)
    seconds = time.time() - started
    parts = bench.payment_segments([(order["out_trade_no"], started, seconds), ("NO-SUCH-ORDER", started, 1.0)])

    assert {name: len(values) for name, values in parts.items()} == dict.fromkeys(parts, 1)  # unknown one skipped
    ms = {name: values[0] for name, values in parts.items()}
    upstream = shop.payment(order["out_trade_no"]).events.get(action="micropay").latency_ms
    assert ms["upstream call"] == upstream
    assert all(ms[name] >= 0 for name in bench.SEGMENTS)  # the events fall inside the request, in order
    assert sum(ms[name] for name in bench.SEGMENTS) == pytest.approx(seconds * 1000)
    assert ms["added by our code"] == pytest.approx(seconds * 1000 - upstream)
