"""One fake clock for the sandbox and the product, and a transport that times out like a socket.

`FakeClock.sleep` advances time instead of waiting. `SandboxTransport` wraps the in-process WSGI transport and
raises httpx.ReadTimeout when the sandbox "slept" at least as long as the request's read timeout: what a client
sees from a live server that answers too late, while the sandbox has already committed the charge.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
from django.utils import timezone


class FakeClock:
    def __init__(self) -> None:
        self.current: datetime = timezone.now().replace(microsecond=0)
        self.slept: list[float] = []
        self.slept_in_request: float = 0.0

    def now(self) -> datetime:
        return self.current

    def timestamp(self) -> float:
        return self.current.timestamp()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.slept_in_request += seconds
        self.current += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class SandboxTransport(httpx.BaseTransport):
    """WSGI transport into the app that times out like a socket when the sandbox held the answer too long."""

    def __init__(self, inner: httpx.BaseTransport, fake_clock: FakeClock) -> None:
        self.inner, self.clock = inner, fake_clock
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.clock.slept_in_request = 0.0
        response = self.inner.handle_request(request)
        read_timeout = (request.extensions.get("timeout") or {}).get("read")
        if read_timeout is not None and self.clock.slept_in_request >= read_timeout:
            raise httpx.ReadTimeout("sandbox held the answer past the read timeout", request=request)
        return response
