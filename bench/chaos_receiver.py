"""The fault run's webhook receiver: a merchant's system at its worst, until it recovers.

    python -m bench.chaos_receiver --port 8123 --log requests.jsonl [--shares 2xx=0.55,5xx=0.2,timeout=0.1,reset=0.15]

Every POST is read whole and its signature checked (webhooks.signing, with the endpoint's secret: the environment
variable CHAOS_RECEIVER_SECRETS holds {"/path": "secret", …}, one endpoint per path); then, while chaotic, it is
answered at random with one of:

- 2xx     200 (or 202, 204 now and then)
- 5xx     500, 502 or 503
- timeout nothing: the connection is held past the sender's timeout (--hold seconds), then closed without an answer
- reset   the connection is reset at once (RST)

A request whose signature does not verify is answered 400 (and logged so). `POST /_control/recover` ends the chaos:
from then on every signed request is answered 200. Each request is logged as one JSON line: the endpoint's path, the
event id (from the verified body), its type, the Facepay-Attempt number, whether the signature verified, the answer
(the status sent, "timeout" or "reset"), when it was received and when it was answered or closed (Unix seconds), and
whether the receiver had recovered. Standard library and `webhooks.signing` only: no Django.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import struct
import time

from webhooks import signing

ANSWERS = ("2xx", "5xx", "timeout", "reset")


def parse_shares(text: str) -> dict[str, float]:
    """ "2xx=0.55,5xx=0.2,…" → the share of each answer, normalised to 1."""
    shares = {kind: 0.0 for kind in ANSWERS}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, value = part.partition("=")
        if kind not in shares:
            raise ValueError(f"unknown answer {kind!r}: one of {', '.join(ANSWERS)}")
        shares[kind] = float(value)
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("the shares add up to nothing")
    return {kind: value / total for kind, value in shares.items()}


class ChaosReceiver:
    def __init__(self, secrets: dict[str, str], shares: dict[str, float], hold: float, log_path: str, seed: int):
        self.secrets = secrets
        self.shares = shares
        self.hold = hold
        self.rng = random.Random(seed)
        self.recovered = False
        self.counts: dict[str, int] = {}
        self.log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the server's life

    def choose(self) -> str:
        if self.recovered:
            return "2xx"
        return self.rng.choices(list(self.shares), weights=list(self.shares.values()))[0]

    def record(self, entry: dict) -> None:
        self.counts[entry["answer"]] = self.counts.get(entry["answer"], 0) + 1
        self.log.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self.log.flush()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One request on a connection; whether the connection goes on."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the sender closed its (idle) connection
        received = time.time()
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        body = await reader.readexactly(length) if length else b""
        if target.startswith("/_control/"):
            if method == "POST" and target == "/_control/recover":
                self.recovered = True
            await self._send(writer, 200, json.dumps({"recovered": self.recovered, **self.counts}).encode())
            return True
        secret = self.secrets.get(target)
        verified = bool(secret) and signing.verify(secret, headers, body)
        event_id, event_type = headers.get(signing.EVENT_ID_HEADER.lower(), ""), ""
        if verified:
            event = json.loads(body)
            event_id, event_type = event["id"], event["type"]
        entry = {
            "path": target,
            "event": event_id,
            "type": event_type,
            "attempt": int(headers.get(signing.ATTEMPT_HEADER.lower(), "0") or 0),
            "signature": verified,
            "recovered": self.recovered,
            "received": received,
        }
        kind = self.choose() if verified else "400"
        if kind == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:  # SO_LINGER 0: close() sends a reset, not a FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.record({**entry, "answer": "reset", "answered": time.time()})
            writer.transport.abort()
            return False
        if kind == "timeout":
            await asyncio.sleep(self.hold)
            self.record({**entry, "answer": "timeout", "answered": time.time()})
            return False
        if kind == "400":
            status = 400
        elif kind == "5xx":
            status = self.rng.choice((500, 502, 503))
        elif self.recovered:
            status = 200
        else:
            status = self.rng.choices((200, 202, 204), weights=(8, 1, 1))[0]
        self.record({**entry, "answer": str(status), "answered": time.time()})
        await self._send(writer, status, b"" if status == 204 else b'{"ok":true}')
        return True

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
        reason = {200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request", 500: "Internal Server Error",
                  502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "")  # fmt: skip
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        head += "" if status == 204 else f"Content-Length: {len(body)}\r\n"
        writer.write(head.encode("latin-1") + b"\r\n" + body)
        await writer.drain()


async def run(args: argparse.Namespace) -> None:
    secrets = json.loads(os.environ.get("CHAOS_RECEIVER_SECRETS", "{}"))
    chaos = ChaosReceiver(secrets, parse_shares(args.shares), args.hold, args.log, args.seed)
    server = await asyncio.start_server(chaos.serve, "127.0.0.1", args.port, backlog=1024)
    print(f"chaos receiver on 127.0.0.1:{args.port}, {len(secrets)} endpoints, shares {args.shares}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True, help="one JSON line per request")
    parser.add_argument("--shares", default="2xx=0.55,5xx=0.2,timeout=0.1,reset=0.15")
    parser.add_argument("--hold", type=float, default=6.0, help="seconds a timeout holds the connection")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        uvloop = None
    (uvloop.run if uvloop else asyncio.run)(run(args))


if __name__ == "__main__":
    main()
