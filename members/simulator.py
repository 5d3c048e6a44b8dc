"""A face-pay terminal recognising a member and activating the member card (刷脸会员), played in software:

getWxpayfaceRawdata → face/authinfo → getWxpayfaceUserInfo (the sandbox's face helper: openid, face_sid)
→ POST members/identify → activateWxpayfaceMember (simulated: the user accepts) → POST members/activations
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from payments.terminal_client import TerminalClient


@dataclass
class SimulatedMemberVisit:
    openid: str = ""
    summary: str = ""
    error: str = ""


def run_member(
    terminal: TerminalClient,
    *,
    sandbox: httpx.Client,
    user: str = "",
    activation_result: str = "SUCCESS",
    say: Callable[[str], None] = lambda line: None,
) -> SimulatedMemberVisit:
    result = SimulatedMemberVisit()
    started = time.monotonic()

    def step(name: str, detail: str) -> None:
        nonlocal started
        say(f"  {name:<26} {(time.monotonic() - started) * 1000:7.0f} ms  {detail}")
        started = time.monotonic()

    rawdata = sandbox.post("terminal/rawdata", json={"device_id": terminal.device_id}).json()["rawdata"]
    step("getWxpayfaceRawdata", f"rawdata {rawdata[:12]}…")
    response = terminal.post("face/authinfo", {"rawdata": rawdata})
    if response.status_code != 200:
        result.error = f"authinfo: {response.status_code} {response.text}"
        return result
    authinfo = response.json()["authinfo"]
    step("face/authinfo", "ok")
    face = sandbox.post("terminal/face_code", json={"authinfo": authinfo, **({"user": user} if user else {})}).json()
    result.openid = face["openid"]
    step("getWxpayfaceUserInfo", f"openid {result.openid[:8]}…, face_sid {face['face_sid'][:8]}…")

    response = terminal.post(
        "members/identify",
        {"openid": result.openid, "nickname": "模拟顾客", "face_sid": face["face_sid"], "ask_unionid": True},
    )
    if response.status_code != 200:
        result.error = f"identify: {response.status_code} {response.text}"
        return result
    member = response.json()
    step(
        "POST members/identify",
        f"member={member['is_member']} visits={member['visits']} "
        f"activated={member['activated']} unionid={member['unionid_lookup']}",
    )
    if not member["offer_activation"]:
        result.summary = f"{result.openid} visit {member['visits']}, card already activated"
        return result

    step("activateWxpayfaceMember", f"user answered {activation_result}")
    response = terminal.post("members/activations", {"openid": result.openid, "return_code": activation_result})
    if response.status_code != 200:
        result.error = f"activations: {response.status_code} {response.text}"
        return result
    outcome = response.json()
    step("POST members/activations", f"activated={outcome['activated']} next_action={outcome['next_action']}")
    result.summary = f"{result.openid} visit {member['visits']}, activated={outcome['activated']}"
    return result
