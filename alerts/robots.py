"""The two chat robots' protocols: one markdown message as one JSON POST, the answer {"errcode": 0, "errmsg": "ok"}.

- WeCom group robot (企业微信群机器人): POST to the robot's address (https://qyapi.weixin.qq.com/cgi-bin/webhook/
  send?key=…) the body {"msgtype": "markdown", "markdown": {"content": …}}; the content at most 4096 bytes.
- DingTalk custom robot (钉钉自定义机器人), signed: POST to https://oapi.dingtalk.com/robot/send?access_token=… with
  `timestamp` (Unix milliseconds, within an hour of DingTalk's clock) and `sign` added to the query, the body
  {"msgtype": "markdown", "markdown": {"title": …, "text": …}}. sign = Base64(HMAC-SHA256(key=secret,
  message=f"{timestamp}\\n{secret}")), URL-encoded.

Both take at most 20 messages a minute per robot (`alerts.delivery` keeps to ALERT_ROBOT_MESSAGES_PER_MINUTE). An
answer with errcode ≠ 0 is a refusal (a wrong key or signature, a malformed message, too many messages); 5xx, a
timeout or a lost connection is worth trying again. The address and the secret are secrets: they never reach a log
line or a recorded error (`scrub`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.utils.functional import SimpleLazyObject

from portal.fields import MASK

from .models import RobotKind

USER_AGENT = "facepay-alerts/1"


def new_client() -> httpx.Client:
    """No redirects followed (an answer that is not the robot's is a failure), nothing read from the environment."""
    return httpx.Client(
        timeout=httpx.Timeout(settings.ALERT_ROBOT_TIMEOUT),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


# One client per process, its connections kept between messages; tests replace it (e.g. with the WSGI transport).
robot_client: httpx.Client = SimpleLazyObject(new_client)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature of `timestamp_ms` (Base64, before URL-encoding)."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    """The robot's address with `timestamp` and `sign` added to its query (its own parameters kept)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("timestamp", "sign")]
    query += [("timestamp", str(timestamp_ms)), ("sign", dingtalk_sign(secret, timestamp_ms))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def payload(kind: str, title: str, text: str) -> dict:
    if kind == RobotKind.DINGTALK:
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    return {"msgtype": "markdown", "markdown": {"content": text}}


@dataclass(frozen=True)
class Answer:
    ok: bool
    retry: bool = False  # not delivered, and worth trying again (5xx, timeout, no connection)
    error: str = ""  # short, secrets removed


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret (and its URL-encoded form) masked."""
    for secret in secrets:
        if secret:
            for form in {secret, urlencode({"": secret})[1:]}:
                text = text.replace(form, MASK)
    return text


def _secrets_of(url: str, secret: str) -> tuple[str, ...]:
    """What must never be recorded: the address, the secret, and the key or token inside the address (a query value
    or a long path segment; "webhook", "send" and the like are not secrets)."""
    parts = urlsplit(url)
    inside = [value for _name, value in parse_qsl(parts.query)] + parts.path.split("/")
    return (url, secret, *(value for value in inside if len(value) >= 16))


def send(client: httpx.Client, *, kind: str, url: str, secret: str, title: str, text: str) -> Answer:
    """POST one message. Never raises: what went wrong is the answer's error."""
    target = dingtalk_signed_url(url, secret, int(time.time() * 1000)) if kind == RobotKind.DINGTALK else url
    secrets = _secrets_of(url, secret)
    body = json.dumps(payload(kind, title, text), ensure_ascii=False).encode("utf-8")
    try:
        response = client.post(target, content=body, headers={"Content-Type": "application/json; charset=utf-8"})
    except httpx.TimeoutException:
        return Answer(ok=False, retry=True, error="timeout")
    except httpx.HTTPError as exc:
        return Answer(ok=False, retry=True, error=scrub(f"{type(exc).__name__}: {exc}", secrets)[:200])
    if response.status_code >= 500 or response.status_code == 429:
        return Answer(ok=False, retry=True, error=f"HTTP {response.status_code}")
    if response.status_code != 200:
        return Answer(ok=False, error=f"HTTP {response.status_code}")
    try:
        answer = response.json()
        code = int(answer.get("errcode", -1))
    except (ValueError, TypeError, AttributeError):
        return Answer(ok=False, error=f"HTTP 200, not the robot's answer: {scrub(response.text, secrets)[:120]}")
    if code != 0:
        return Answer(ok=False, error=scrub(f"errcode {code}: {answer.get('errmsg', '')}", secrets)[:200])
    return Answer(ok=True)
