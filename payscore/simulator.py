"""A face-pay terminal running a PayScore (支付分) service order, played in software (WeChat's face PayScore sequence):

    getWxpayfaceRawdata → face/authinfo → getUserPayScoreStatus(out_trade_no, service_id) (the sandbox's face
    helper stands in: openid + face_sid) → POST payscore/orders → [user confirms] → poll → POST …/complete →
    [WeChat collects] → poll until DONE / USER_PAID

Runs over HTTP against a server with the sandbox mounted. The user's part (confirming, paying) has no HTTP helper in
the sandbox: by default the order is made without confirmation (免确认, the usual face flow: the face gave the
openid), and the server should run with SANDBOX_PAYSCORE_DEFAULT_SCENARIO=PAYSCORE_AUTO so the sandbox user confirms
and pays by themselves; the sandbox's beat task delivers the notifications. Without it, call
`sandbox_payscore_user_confirm/user_pay(out_order_no)` from a Django shell while the simulator polls.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from payments.terminal_client import TerminalClient


@dataclass
class SimulatedServiceOrder:
    out_order_no: str = ""
    state: str = ""
    state_description: str = ""
    collection_state: str = ""
    total_amount: int = 0
    steps: list[tuple[str, float, str]] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.state == "DONE" and self.collection_state == "USER_PAID"


def new_out_order_no() -> str:
    """What the terminal passes to getUserPayScoreStatus as out_trade_no and then to create as out_order_no."""
    return "PS" + datetime.now().strftime("%Y%m%d%H%M%S") + secrets.token_hex(4).upper()


def run_payscore(
    terminal: TerminalClient,
    *,
    sandbox: httpx.Client,
    amount: int,
    say: Callable[[str], None] = lambda line: None,
    need_user_confirm: bool = False,
    risk_fund: int | None = None,
    poll_seconds: float = 60.0,
    poll_interval: float = 2.0,
) -> SimulatedServiceOrder:
    """One service order, the whole sequence. `sandbox` is an httpx client with the server's /sandbox/ as base."""
    result = SimulatedServiceOrder(out_order_no=new_out_order_no(), total_amount=amount)

    def step(name: str, started: float, detail: str) -> None:
        elapsed = time.monotonic() - started
        result.steps.append((name, elapsed, detail))
        say(f"  {name:<30} {elapsed * 1000:7.0f} ms  {detail}")

    def fail(what: str, response: httpx.Response) -> SimulatedServiceOrder:
        result.error = f"{what}: {response.status_code} {response.text[:300]}"
        say("  " + result.error)
        return result

    def track(body: dict) -> str:
        result.state = body["state"]
        result.state_description = body["state_description"]
        result.collection_state = body["collection_state"]
        label = body["state"] + (f"/{body['state_description']}" if body["state_description"] else "")
        label += f" {body['collection_state']}" if body["collection_state"] else ""
        return label + (" (confirming)" if body.get("confirming") else "")

    def poll(until: Callable[[dict], bool], what: str) -> bool:
        deadline = time.monotonic() + poll_seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = terminal.get(f"payscore/orders/{result.out_order_no}")
            if response.status_code not in (200, 202):
                fail("GET payscore/orders/…", response)
                return False
            body = response.json()
            step("GET payscore/orders/…", started, track(body))
            if until(body):
                return True
            if body["is_final"]:
                break
            time.sleep(poll_interval)
        result.error = f"{what} did not happen (order {result.state} {result.state_description})"
        say("  " + result.error)
        return False

    started = time.monotonic()
    rawdata = sandbox.post("terminal/rawdata", json={"device_id": terminal.device_id}).json()["rawdata"]
    step("getWxpayfaceRawdata", started, f"rawdata {rawdata[:12]}…")

    started = time.monotonic()
    response = terminal.post("face/authinfo", {"rawdata": rawdata})
    if response.status_code != 200:
        return fail("authinfo", response)
    info = response.json()
    step("face/authinfo", started, f"expires_in {info['expires_in']} s")

    started = time.monotonic()
    face = sandbox.post("terminal/face_code", json={"authinfo": info["authinfo"]})
    if face.status_code != 200:
        return fail("getUserPayScoreStatus (sandbox face)", face)
    face_data = face.json()
    step("getUserPayScoreStatus", started, f"SUCCESS, openid {face_data['openid'][:8]}…, {result.out_order_no}")

    started = time.monotonic()
    body = {
        "out_order_no": result.out_order_no,
        "service_introduction": "刷脸支付分演示",
        "risk_fund": {"name": "ESTIMATE_ORDER_COST", "amount": risk_fund or max(amount, 1), "description": "预估费用"},
        "time_range": {"start_time": "OnAccept"},
        "post_payments": [{"name": "服务费", "amount": amount, "count": 1}],
        "need_user_confirm": need_user_confirm,
        "face_sid": face_data.get("face_sid", ""),
        "ask_unionid": bool(face_data.get("face_sid")),
    }
    if not need_user_confirm:
        body["openid"] = face_data["openid"]
    response = terminal.post("payscore/orders", body)
    if response.status_code not in (200, 201, 202):
        return fail("POST payscore/orders", response)
    step("POST payscore/orders", started, f"{track(response.json())}, unionid {response.json()['unionid_lookup']}")

    if not poll(lambda b: b["state"] == "DOING" and b["state_description"] == "USER_CONFIRM", "user confirmation"):
        return result

    started = time.monotonic()
    response = terminal.post(
        f"payscore/orders/{result.out_order_no}/complete",
        {"post_payments": [{"name": "服务费", "amount": amount, "count": 1}], "total_amount": amount},
    )
    if response.status_code not in (200, 202):
        return fail("POST …/complete", response)
    step("POST …/complete", started, track(response.json()))

    poll(lambda b: b["state"] == "DONE" and b["collection_state"] == "USER_PAID", "collection")
    return result
