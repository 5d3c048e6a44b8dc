"""Bad input: schemathesis against the terminal API (every request validly device-signed), and garbled or unsigned
notifications. Counts, never exceptions: the caller prints them and decides."""

from __future__ import annotations

import base64
import json
import random
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from payments.terminal_client import authorization_header

ERROR_KEYS = {"code", "message", "details"}


@dataclass
class FuzzReport:
    requests: int = 0
    by_status: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    bad_error_shape: list[str] = field(default_factory=list)
    transport_errors: int = 0
    operations: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "operations": self.operations,
            "requests": self.requests,
            "by_status": dict(sorted(self.by_status.items())),
            "server_errors": len(self.server_errors),
            "bad_error_shape": len(self.bad_error_shape),
            "transport_errors": self.transport_errors,
            "examples": (self.server_errors + self.bad_error_shape)[:5],
        }


def has_error_shape(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        isinstance(body, dict)
        and set(body) == ERROR_KEYS
        and isinstance(body["code"], str)
        and isinstance(body["message"], str)
        and isinstance(body["details"], dict)
    )


def signed_request(
    client: httpx.Client | httpx.AsyncClient,
    *,
    device_id: str,
    secret: str,
    method: str,
    path: str,
    query: dict | None,
    body: bytes,
) -> httpx.Request:
    url = path + ("?" + urlencode(query, doseq=True) if query else "")
    request = client.build_request(method, url, content=body or None, headers={"Content-Type": "application/json"})
    request.headers["Authorization"] = authorization_header(
        device_id=device_id,
        secret=secret,
        method=method,
        path_with_query=request.url.raw_path.decode("ascii"),
        body=body,
    )
    return request


def fuzz_terminal_api(base_url: str, *, device_id: str, secret: str, max_examples: int, seed: int = 0) -> FuzzReport:
    """Every operation under /api/terminal/v1/, positive and negative generation, each request signed."""
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck, given
    from schemathesis import GenerationMode

    report = FuzzReport()
    schema = schemathesis.openapi.from_url(base_url.rstrip("/") + "/api/schema/")
    client = httpx.Client(base_url=base_url, timeout=30)
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation is not None and operation.path.startswith("/api/terminal/v1/"):
            operations.append(operation)
    report.operations = len(operations)

    def exercise(case) -> None:
        kwargs = case.as_transport_kwargs(base_url=base_url)
        if "json" in kwargs:
            body = json.dumps(kwargs["json"], ensure_ascii=False).encode()
        elif kwargs.get("data") is not None:
            data = kwargs["data"]
            body = data if isinstance(data, bytes) else str(data).encode()
        else:
            body = b""
        path = httpx.URL(kwargs["url"]).raw_path.decode("ascii").split("?")[0]
        request = signed_request(
            client,
            device_id=device_id,
            secret=secret,
            method=case.method.upper(),
            path=path,
            query=kwargs.get("params"),
            body=body,
        )
        label = f"{case.method.upper()} {path}"
        report.requests += 1
        try:
            response = client.send(request)
        except httpx.HTTPError:
            report.transport_errors += 1
            return
        report.by_status[response.status_code] += 1
        if response.status_code >= 500:
            report.server_errors.append(f"{label} → {response.status_code}")
        elif response.status_code >= 400 and not has_error_shape(response):
            report.bad_error_shape.append(f"{label} → {response.status_code} {response.text[:120]}")

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @hypothesis.settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                phases=[hypothesis.Phase.generate],
            )
            @given(case=strategy)
            def run(case) -> None:
                exercise(case)

            try:
                run()
            except Exception as exc:  # generation trouble in one operation must not hide the others' results
                report.server_errors.append(f"{operation.method.upper()} {operation.path}: fuzzer error {exc!r}"[:200])
    client.close()
    return report


@dataclass
class NotificationReport:
    sent: int = 0
    accepted: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    by_status: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "accepted": len(self.accepted),
            "server_errors": len(self.server_errors),
            "by_status": dict(sorted(self.by_status.items())),
            "examples": (self.accepted + self.server_errors)[:5],
        }


def _garble(text: str, rng: random.Random) -> str:
    if not text:
        return "x"
    i = rng.randrange(len(text))
    return text[:i] + rng.choice("AZaz09+/") + text[i + 1 :]


def fuzz_notifications(
    base_url: str, *, umpay_samples: list[dict[str, str]], payscore_serial: str, count: int, seed: int = 0
) -> NotificationReport:
    """`umpay_samples`: real notification field sets (from orders of this run), so the requests reach the
    signature check with a known merchant and order; sent unsigned, with a garbled signature, or as junk.
    UMF accepted = HTTP 200 with respCode 00; PayScore accepted = 2xx."""
    rng = random.Random(seed)
    report = NotificationReport()
    client = httpx.Client(base_url=base_url, timeout=30)

    def send(label: str, path: str, content: bytes, headers: dict[str, str], accepted) -> None:
        report.sent += 1
        try:
            response = client.post(path, content=content, headers=headers)
        except httpx.HTTPError as exc:
            report.server_errors.append(f"{label}: {type(exc).__name__}")
            return
        report.by_status[response.status_code] += 1
        if response.status_code >= 500:
            report.server_errors.append(f"{label} → {response.status_code}")
        elif accepted(response):
            report.accepted.append(f"{label} → {response.status_code} {response.text[:80]}")

    def umpay_accepted(response: httpx.Response) -> bool:
        try:
            return response.status_code == 200 and response.json().get("respCode") == "00"
        except ValueError:
            return False

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for n in range(count):
        sample = dict(rng.choice(umpay_samples)) if umpay_samples else {"orderNo": "X", "acqMerId": "1"}
        variant = n % 6
        if variant == 0:  # unsigned
            sample.pop("sign", None)
            send("umpay unsigned", "/notify/umpay/", urlencode(sample).encode(), form, umpay_accepted)
        elif variant == 1:  # signature of other content
            sample["sign"] = base64.b64encode(secrets.token_bytes(256)).decode()
            send("umpay random sign", "/notify/umpay/", urlencode(sample).encode(), form, umpay_accepted)
        elif variant == 2:  # a real-looking signature, one character changed, or an amount changed
            sample["txnAmt"] = str(int(sample.get("txnAmt", "1") or 1) + 1)
            sample["sign"] = _garble(sample.get("sign", ""), rng)
            send("umpay garbled", "/notify/umpay/", urlencode(sample).encode(), form, umpay_accepted)
        elif variant == 3:  # junk bodies
            junk = rng.choice([b"", b"\x00\xff\xfe", b"<xml>", b"{}", b"a=b&&&==", secrets.token_bytes(64)])
            send("umpay junk", "/notify/umpay/", junk, form, umpay_accepted)
        elif variant == 4:  # PayScore: JSON without WeChat headers
            body = json.dumps({"id": secrets.token_hex(8), "event_type": "PAYSCORE.USER_PAID", "resource": {}})
            send(
                "payscore unsigned",
                "/notify/wechatpay/payscore/",
                body.encode(),
                {"Content-Type": "application/json"},
                lambda r: 200 <= r.status_code < 300,
            )
        else:  # PayScore: headers present, signature forged
            body = json.dumps(
                {
                    "id": secrets.token_hex(8),
                    "event_type": "PAYSCORE.USER_CONFIRM",
                    "resource_type": "encrypt-resource",
                    "resource": {
                        "algorithm": "AEAD_AES_256_GCM",
                        "ciphertext": base64.b64encode(secrets.token_bytes(48)).decode(),
                        "nonce": secrets.token_hex(6),
                        "associated_data": "payscore",
                    },
                }
            )
            import time

            headers = {
                "Content-Type": "application/json",
                "Wechatpay-Serial": payscore_serial or "PUB_KEY_ID_0000",
                "Wechatpay-Timestamp": str(int(time.time())),
                "Wechatpay-Nonce": secrets.token_hex(16),
                "Wechatpay-Signature": base64.b64encode(secrets.token_bytes(256)).decode(),
            }
            send(
                "payscore forged",
                "/notify/wechatpay/payscore/",
                body.encode(),
                headers,
                lambda r: 200 <= r.status_code < 300,
            )
    client.close()
    return report
