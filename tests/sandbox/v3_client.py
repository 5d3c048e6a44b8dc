"""A bare WeChat Pay API v3 client for the sandbox tests of endpoints the product's gateway does not call yet.

Requests are signed with the product's `build_authorization` over exactly what goes on the wire (the path+query as
httpx encoded it, and the body); answers are checked with its `verify_response` against the keys a test says the
client knows — as a merchant's system would.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from payments.gateways import wechatpay_v3 as v3
from sandbox.models import SandboxWechatMerchant
from tests.payments.gateways.gateway_fakes import KeyPair
from tests.sandbox_time import FakeClock

BASE = "http://testserver/sandbox/wechatpay"


def platform_keys_of(merchant: SandboxWechatMerchant) -> dict[str, str]:
    """Every platform key the sandbox holds for the merchant: its certificates by serial, its public key by id."""
    merchant.refresh_from_db()
    keys = {c.serial_no: c.certificate_pem for c in merchant.platform_certificates.all()}
    keys[merchant.platform_public_key_id] = merchant.platform_public_key_pem
    return keys


class V3Client:
    def __init__(
        self,
        http_client: httpx.Client,
        clock: FakeClock,
        *,
        mchid: str,
        keys: KeyPair,
        platform_keys: dict[str, str] | None = None,
    ) -> None:
        self.http, self.clock, self.mchid, self.keys = http_client, clock, mchid, keys
        self.platform_keys = platform_keys or {}

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | bytes | None = None,
        *,
        headers: dict[str, str] | None = None,
        signing_key: str | None = None,
        timeout: float = 10.0,
    ) -> httpx.Response:
        """`path` after the WeChat base, e.g. "/v3/pay/transactions/codepay". `signing_key`: sign with another private
        key (still naming the registered certificate's serial)."""
        content = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode("utf-8")
        request = self.http.build_request(
            method,
            BASE + path,
            content=content or None,
            headers={"Accept": "application/json", "Content-Type": "application/json", **(headers or {})},
            timeout=timeout,
        )
        request.headers["Authorization"] = v3.build_authorization(
            mchid=self.mchid,
            serial_no=self.keys.serial,
            private_key=signing_key or self.keys.private_pem,
            method=method,
            path_with_query=request.url.raw_path.decode("ascii"),
            body=content,
            timestamp=int(self.clock.timestamp()),
        )
        return self.http.send(request)

    def post(self, path: str, body: dict[str, Any] | bytes, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def verify(self, response: httpx.Response, platform_keys: dict[str, str] | None = None) -> str:
        """The serial / key id that signed the answer; raises VerificationError if it does not verify."""
        return v3.verify_response(
            response.headers,
            response.content,
            platform_keys=self.platform_keys if platform_keys is None else platform_keys,
            clock=self.clock.timestamp,
        )
