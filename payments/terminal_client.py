"""Reference implementation of a face-pay terminal's side of the terminal API (docs/protocols.md, "Terminal API").

Integrators port this to their terminal app; tests and the terminal simulator use it as is. No Django here.

    client = TerminalClient("http://127.0.0.1:8000", device_id="DEMO-DEVICE-01", secret="…")
    response = client.post("heartbeat", {"sdk_version": "2.10", "app_version": "1.0.0"})
    response.raise_for_status()

Signing: the string to sign is five lines, each ending in "\\n":

    METHOD \\n PATH_WITH_QUERY \\n TIMESTAMP \\n NONCE \\n RAW_BODY \\n

signed with HMAC-SHA256 under the device secret, base64-encoded, and sent as
`Authorization: TERMINAL-HMAC-SHA256 device="…",timestamp="…",nonce="…",signature="…"`. The body that is signed
must be byte-for-byte the body that is sent, so serialise JSON once and send those bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx

SCHEME = "TERMINAL-HMAC-SHA256"
API_PREFIX = "/api/terminal/v1/"


def sign(*, secret: str, method: str, path_with_query: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = f"{method.upper()}\n{path_with_query}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
    return base64.b64encode(hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()).decode("ascii")


def authorization_header(
    *,
    device_id: str,
    secret: str,
    method: str,
    path_with_query: str,
    body: bytes,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> str:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)  # 32 hex chars, fresh per request
    signature = sign(
        secret=secret, method=method, path_with_query=path_with_query, timestamp=ts, nonce=nonce, body=body
    )
    return f'{SCHEME} device="{device_id}",timestamp="{ts}",nonce="{nonce}",signature="{signature}"'


class TerminalClient:
    """A device-signed client for `/api/terminal/v1/`. Thread-safe: share one per device."""

    def __init__(
        self,
        base_url: str,
        *,
        device_id: str,
        secret: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.device_id = device_id
        self._secret = secret
        self._clock = clock
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    def __repr__(self) -> str:
        return f"TerminalClient(device_id={self.device_id!r})"  # never the secret

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        endpoint: str,
        payload: Any | None = None,
        *,
        params: dict | None = None,
        nonce: str | None = None,
    ) -> httpx.Response:
        """Send a signed request. `endpoint` is relative to the API prefix, e.g. "payments"."""
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        url = self._http.build_request(method, API_PREFIX + endpoint.lstrip("/"), params=params).url
        headers = {
            "Content-Type": "application/json",
            "Authorization": authorization_header(
                device_id=self.device_id,
                secret=self._secret,
                method=method,
                path_with_query=url.raw_path.decode("ascii"),  # path + "?" + query, exactly as sent
                body=body,
                timestamp=int(self._clock()),
                nonce=nonce,
            ),
        }
        return self._http.request(method, url, content=body, headers=headers)

    def get(self, endpoint: str, **params: Any) -> httpx.Response:
        return self.request("GET", endpoint, params=params or None)

    def post(self, endpoint: str, payload: Any | None = None) -> httpx.Response:
        return self.request("POST", endpoint, payload if payload is not None else {})
