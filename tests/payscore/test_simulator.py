"""The PayScore terminal simulator plays WeChat's whole face PayScore sequence against the sandbox."""

import httpx
import pytest

from payscore.simulator import run_payscore

pytestmark = pytest.mark.django_db


def test_simulator_runs_to_done(ps, wsgi_transport, settings):
    settings.SANDBOX_PAYSCORE_DEFAULT_SCENARIO = "PAYSCORE_AUTO"
    settings.PAYSCORE_REFRESH_SECONDS = 0  # every poll asks WeChat (no beat delivers notifications here)
    lines = []
    with httpx.Client(base_url="http://testserver/sandbox/", transport=wsgi_transport) as sandbox:
        result = run_payscore(ps.terminal, sandbox=sandbox, amount=250, say=lines.append, poll_interval=0)
    assert result.ok, (result.error, lines)
    order = ps.order(result.out_order_no)
    assert (order.state, order.collection_state, order.paid_amount) == ("DONE", "USER_PAID", 250)
    assert order.union_id.startswith("oUbx")  # face_sid → facemch
    assert [name for name, _, _ in result.steps][:4] == [
        "getWxpayfaceRawdata",
        "face/authinfo",
        "getUserPayScoreStatus",
        "POST payscore/orders",
    ]
