"""A reference webhook receiver: verifies each delivery's signature and prints the event (docs/webhooks.md).

Standard library only (with `webhooks.signing`), so a merchant's developer can read it as the recipe for their own
receiver: check the timestamp and the signature over the raw body before parsing anything, answer 2xx quickly, and
use the event id to ignore an event already handled (deliveries are at-least-once).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from webhooks import signing

MAX_BODY = 1024 * 1024
_REMEMBERED = 10_000  # event ids kept to recognise a repeat


def make_server(
    host: str,
    port: int,
    secrets: list[str],
    write: Callable[[str], None],
    tolerance: int = signing.DEFAULT_TOLERANCE_SECONDS,
) -> ThreadingHTTPServer:
    seen: OrderedDict[str, None] = OrderedDict()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # the events are printed instead
            pass

        def _answer(self, status: int, text: str) -> None:
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, "too large")
                return
            body = self.rfile.read(length)
            headers = dict(self.headers.items())
            if not any(signing.verify(secret, headers, body, tolerance=tolerance) for secret in secrets):
                write(f"REFUSED  signature or timestamp not valid ({self.headers.get(signing.EVENT_ID_HEADER, '?')})")
                self._answer(400, "signature not valid")
                return
            event = json.loads(body)
            with lock:
                repeat = event["id"] in seen
                seen[event["id"]] = None
                while len(seen) > _REMEMBERED:
                    seen.popitem(last=False)
            attempt = self.headers.get(signing.ATTEMPT_HEADER, "?")
            note = "  (repeat: already handled, ignored)" if repeat else ""
            write(f"VERIFIED {event['type']} {event['id']} attempt {attempt}{note}")
            write(json.dumps(event["data"], ensure_ascii=False, indent=2))
            self._answer(200, "ok")

    return ThreadingHTTPServer((host, port), Handler)
