"""A face-pay terminal, played in software: the reference of WeChat's face-pay sequence and the load driver.

    init → getWxpayfaceRawdata (the sandbox makes one) → face/authinfo → getWxpayfaceCode (face_code from the
    sandbox, or an 18-digit payment code) → POST payments → poll until final → updateWxpayfacePayResult

Runs over HTTP against a server with the sandbox mounted. Usable as a library: `run_payment(...)` is thread-safe
with one `TerminalClient` per terminal, so many terminals can run concurrently.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from payments.terminal_client import TerminalClient

FINAL = {"SUCCESS", "FAILED", "REVERSED", "REFUNDED", "PARTIALLY_REFUNDED", "ATTENTION"}


@dataclass
class SimulatedPayment:
    out_trade_no: str = ""
    status: str = ""
    total_fee: int = 0
    steps: list[tuple[str, float, str]] = field(default_factory=list)  # (step, seconds, detail)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error and self.status in FINAL


def random_payment_code() -> str:
    """An 18-digit WeChat payment code (prefix 13), as the scanner or face_code_type "1" would give."""
    return "13" + "".join(secrets.choice("0123456789") for _ in range(16))


def run_payment(
    terminal: TerminalClient,
    *,
    sandbox: httpx.Client,
    amount: int,
    method: str = "FACE",
    body: str = "刷脸支付测试",
    poll_seconds: float = 60.0,
    say: Callable[[str], None] = lambda line: None,
) -> SimulatedPayment:
    """One payment, the whole sequence. `sandbox` is an httpx client with the server's /sandbox/ as base URL."""
    result = SimulatedPayment(total_fee=amount)

    def step(name: str, started: float, detail: str) -> None:
        elapsed = time.monotonic() - started
        result.steps.append((name, elapsed, detail))
        say(f"  {name:<26} {elapsed * 1000:7.0f} ms  {detail}")

    started = time.monotonic()
    say(f"  {'initWxpayface':<26} {'':>10}  SDK ready (simulated)")
    rawdata = sandbox.post("terminal/rawdata", json={"device_id": terminal.device_id}).json()["rawdata"]
    step("getWxpayfaceRawdata", started, f"rawdata {rawdata[:12]}…")

    started = time.monotonic()
    response = terminal.post("face/authinfo", {"rawdata": rawdata})
    if response.status_code != 200:
        result.error = f"authinfo: {response.status_code} {response.text}"
        say("  " + result.error)
        return result
    info = response.json()
    step("face/authinfo", started, f"expires_in {info['expires_in']} s, store {info['store_id']}")

    started = time.monotonic()
    if method == "FACE":
        face = sandbox.post(
            "terminal/face_code",
            json={
                "authinfo": info["authinfo"],
                "total_fee": amount,
                "appid": info.get("appid", ""),
                "mch_id": info.get("mch_id", ""),
            },
        ).json()
        auth_code, openid = face["face_code"], face.get("openid", "")
        step("getWxpayfaceCode", started, f"face recognised, openid {openid[:8]}…")
    else:
        auth_code, openid = random_payment_code(), ""
        step("scan payment code", started, f"code {auth_code[:4]}…")

    started = time.monotonic()
    response = terminal.post(
        "payments", {"total_fee": amount, "body": body, "auth_code": auth_code, "method": method, "openid": openid}
    )
    if response.status_code not in (200, 201):
        result.error = f"payments: {response.status_code} {response.text}"
        say("  " + result.error)
        return result
    order = response.json()
    result.out_trade_no, result.status = order["out_trade_no"], order["status"]
    step("POST payments", started, f"{order['out_trade_no']} → {order['status']} {order['err_code']}".rstrip())

    deadline = time.monotonic() + poll_seconds
    while result.status not in FINAL and time.monotonic() < deadline:
        started = time.monotonic()
        order = terminal.get(f"payments/{result.out_trade_no}", wait=10).json()
        result.status = order["status"]
        step("GET payments/… ?wait=10", started, order["status"])
    if result.status not in FINAL:
        result.error = f"still {result.status} after {poll_seconds:.0f} s"
    say(
        f"  {'updateWxpayfacePayResult':<26} {'':>10}  "
        f"{'SUCCESS: 支付成功' if result.status == 'SUCCESS' else 'FAIL: ' + result.status}"
    )
    return result
