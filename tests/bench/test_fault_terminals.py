"""The fault run's terminals under outages (bench/faults.py): a 503 is repeated with the same request, every answer
is checked for JSON and for 5xx other than 503."""

import json

import httpx

from bench.faults import OutageAwareTerminal, Stats, in_outage, server_errors_in_access_log, slowest_unavailable


def _terminal(answers, stats, sent):
    def handle(request):
        sent.append(json.loads(request.content) if request.content else None)
        status, body, content_type = answers.pop(0)
        headers = {"Content-Type": content_type, "Retry-After": "0"}
        return httpx.Response(status, content=body.encode(), headers=headers)

    return OutageAwareTerminal(
        "http://testserver", device_id="D1", secret="s" * 32, transport=httpx.MockTransport(handle), stats=stats
    )


def test_a_503_is_repeated_with_the_same_out_trade_no_until_answered():
    stats, sent = Stats(), []
    unavailable = json.dumps({"code": "SERVICE_UNAVAILABLE", "message": "m", "details": {}})
    answers = [(503, unavailable, "application/json")] * 2 + [(201, '{"status": "SUCCESS"}', "application/json")]
    terminal = _terminal(answers, stats, sent)

    response = terminal.post("payments", {"total_fee": 100})

    assert response.status_code == 201
    assert len(sent) == 3
    assert sent[0]["out_trade_no"] and all(body == sent[0] for body in sent)  # one order, asked for three times
    assert terminal.retried == 2
    assert stats.retries_503 == {"SERVICE_UNAVAILABLE": 2}
    assert stats.not_json == [] and stats.other_5xx == []


def test_answers_that_are_not_json_or_other_5xx_are_counted():
    stats, sent = Stats(), []
    answers = [(500, "<h1>Server Error (500)</h1>", "text/html"), (200, "{}", "application/json")]
    terminal = _terminal(answers, stats, sent)

    assert terminal.get("payments/X").status_code == 500
    assert terminal.get("payments/X").status_code == 200
    assert len(stats.not_json) == 1
    assert [what for _, what in stats.other_5xx] == ["500 GET payments"]
    assert in_outage(stats.other_5xx[0][0], [(0.0, float("inf"))])
    assert not in_outage(stats.other_5xx[0][0], [])


def test_the_access_log_count_can_leave_out_503(tmp_path):
    log = tmp_path / "access.log"
    log.write_text(
        '127.0.0.1:1 - "POST /api/terminal/v1/payments HTTP/1.1" 503\n'
        '127.0.0.1:1 - "POST /api/terminal/v1/payments HTTP/1.1" 500\n'
        '127.0.0.1:1 - "GET /api/terminal/v1/payments/X HTTP/1.1" 200\n'
    )
    assert server_errors_in_access_log(log) == 2
    assert server_errors_in_access_log(log, except_503=True) == 1


def test_the_slowest_503_counts_requests_sent_during_an_outage_apart():
    answers = [(10.5, 11.75), (4.0, 12.0), (30.0, 30.5)]  # sent in the outage; in flight before it; after it
    assert slowest_unavailable(answers, [(10.0, 13.0)]) == (1.25, 8.0)
