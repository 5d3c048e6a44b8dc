"""Stand-ins for the two chat robots the alerts are sent to, checked like the real services check them, and a JSON
list of what they received (for tests and the demo):

- POST /sandbox/wecom-robot/<key> — a WeCom group robot (企业微信群机器人; the real address is
  https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<key>). Unknown key: errcode 93000.
- POST /sandbox/dingtalk-robot?access_token=…&timestamp=…&sign=… — a DingTalk custom robot with the 加签 security
  setting: unknown token 300001; a timestamp more than an hour from the sandbox's clock, or a sign that is not
  Base64(HMAC-SHA256(key=secret, f"{timestamp}\\n{secret}")), 310000.
- Both: a body that is not a text or markdown message, 40035; more than ROBOT_MESSAGES_PER_MINUTE accepted in the
  last minute, WeCom 45009 / DingTalk 130101; otherwise {"errcode": 0, "errmsg": "ok"}.
- GET /sandbox/robots/messages[?token=…] — the messages received, newest first.

The signature is verified here independently of the product's signing code (alerts.robots), on purpose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import timedelta

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import clock
from .models import SandboxRobot, SandboxRobotMessage

ROBOT_MESSAGES_PER_MINUTE = 20  # both services' limit per robot
SANDBOX_ROBOT_MESSAGES_KEPT = 100
DINGTALK_TIMESTAMP_WINDOW_MS = 3600 * 1000
TOO_FAST = {
    SandboxRobot.Kind.WECOM: (45009, "api freq out of limit"),
    SandboxRobot.Kind.DINGTALK: (130101, "send too fast"),
}


def robot_create(kind: str, *, token: str = "") -> SandboxRobot:
    """A new robot, as adding one to a group makes it: a key (WeCom) or an access token and a secret (DingTalk)."""
    if kind == SandboxRobot.Kind.WECOM:
        return SandboxRobot.objects.create(kind=kind, token=token or _uuid_like())
    return SandboxRobot.objects.create(
        kind=kind, token=token or secrets.token_hex(32), secret="SEC" + secrets.token_hex(32)
    )


def _uuid_like() -> str:
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def _answer(errcode: int, errmsg: str) -> JsonResponse:
    return JsonResponse({"errcode": errcode, "errmsg": errmsg}, json_dumps_params={"ensure_ascii": False})


def _valid_message(raw: bytes, kind: str) -> bool:
    try:
        message = json.loads(raw)
    except ValueError:
        return False
    if not isinstance(message, dict):
        return False
    if message.get("msgtype") == "text":
        return isinstance(message.get("text"), dict) and bool(message["text"].get("content"))
    if message.get("msgtype") != "markdown" or not isinstance(message.get("markdown"), dict):
        return False
    markdown = message["markdown"]
    if kind == SandboxRobot.Kind.DINGTALK:
        return bool(markdown.get("title")) and bool(markdown.get("text"))
    content = markdown.get("content") or ""
    return bool(content) and len(content.encode("utf-8")) <= 4096


def _receive(robot: SandboxRobot, raw: bytes) -> JsonResponse:
    """Check the message and the robot's minute, record it with its answer, and answer."""
    now = clock.now()
    if not _valid_message(raw, robot.kind):
        errcode, errmsg = 40035, "invalid parameter"
    elif robot.messages.filter(errcode=0, received_at__gt=now - timedelta(minutes=1)).count() >= (
        ROBOT_MESSAGES_PER_MINUTE
    ):
        errcode, errmsg = TOO_FAST[robot.kind]
    else:
        errcode, errmsg = 0, "ok"
    SandboxRobotMessage.objects.create(
        robot=robot, received_at=now, body=raw.decode("utf-8", "replace"), errcode=errcode
    )
    stale = robot.messages.order_by("-received_at", "-id").values_list("pk", flat=True)[SANDBOX_ROBOT_MESSAGES_KEPT:]
    SandboxRobotMessage.objects.filter(pk__in=list(stale)).delete()
    return _answer(errcode, errmsg)


@csrf_exempt
@require_POST
def wecom_robot(request: HttpRequest, key: str) -> HttpResponse:
    robot = SandboxRobot.objects.filter(kind=SandboxRobot.Kind.WECOM, token=key).first()
    if robot is None:
        return _answer(93000, "invalid webhook url")
    return _receive(robot, request.body)


def _dingtalk_sign(secret: str, timestamp: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


@csrf_exempt
@require_POST
def dingtalk_robot(request: HttpRequest) -> HttpResponse:
    token = request.GET.get("access_token", "")
    robot = SandboxRobot.objects.filter(kind=SandboxRobot.Kind.DINGTALK, token=token).first() if token else None
    if robot is None:
        return _answer(300001, "token is not exist")
    timestamp, sign = request.GET.get("timestamp", ""), request.GET.get("sign", "")
    now_ms = int(clock.timestamp() * 1000)
    if not timestamp.isdigit() or abs(now_ms - int(timestamp)) > DINGTALK_TIMESTAMP_WINDOW_MS:
        return _answer(310000, "invalid timestamp")
    if not hmac.compare_digest(sign.encode(), _dingtalk_sign(robot.secret.reveal(), timestamp).encode()):
        return _answer(310000, "sign not match")
    return _receive(robot, request.body)


@require_GET
def robot_messages(request: HttpRequest) -> HttpResponse:
    messages = SandboxRobotMessage.objects.select_related("robot").order_by("-received_at", "-id")
    if token := request.GET.get("token", ""):
        messages = messages.filter(robot__token=token)
    return JsonResponse(
        {
            "messages": [
                {
                    "robot": message.robot.kind,
                    "token": message.robot.token,
                    "received_at": message.received_at.isoformat(),
                    "errcode": message.errcode,
                    "body": _json_or_text(message.body),
                }
                for message in messages[:SANDBOX_ROBOT_MESSAGES_KEPT]
            ]
        },
        json_dumps_params={"ensure_ascii": False, "indent": 2},
    )


def _json_or_text(body: str):
    try:
        return json.loads(body)
    except ValueError:
        return body
