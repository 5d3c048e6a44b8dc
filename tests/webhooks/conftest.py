"""A real HTTP receiver on a local port for the webhook tests: it records every request as received (raw headers and
body) and answers as the test programs it (status, delay, dropped connection)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    # (request) -> status code; or "drop" to close the connection without an answer. Sleeps happen inside.
    answer: Callable[[Received], int | str] = lambda request: 200
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event_ids(self) -> list[str]:
        return [r.headers.get("Facepay-Event-Id", "") for r in self.received]


@pytest.fixture
def receiver():
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            request = Received(path=self.path, headers=dict(self.headers.items()), body=body)
            with state.lock:
                state.received.append(request)
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                outcome = state.answer(request)
            finally:
                with state.lock:
                    state.in_flight -= 1
            if outcome == "drop":
                self.close_connection = True
                self.connection.close()
                return
            payload = b'{"ok":true}' if 200 <= int(outcome) < 300 else b"receiver error " + b"x" * 2000
            self.send_response(int(outcome))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    yield state
    server.shutdown()
    server.server_close()


def slow(seconds: float, status: int = 200) -> Callable[[Received], int]:
    def answer(request: Received) -> int:
        time.sleep(seconds)
        return status

    return answer
