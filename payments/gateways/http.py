"""Shared HTTP plumbing: one pooled client per process, mutual-TLS clients per certificate, error mapping.

Celery prefork workers fork after import, and an httpx pool must not be shared across processes, so clients are
created lazily and re-created when the process id changes.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from .base import Outcome

USER_AGENT = "facepay-portal-gateways/1.0"


@dataclass(frozen=True)
class Timeouts:
    """Per-call limits. `read` bounds the wait for the answer; money-moving calls should keep it short enough for
    the query schedule (by default a query every 5 s for 30 s after the payment call) and long enough for
    upstream's own processing (~10 s)."""

    connect: float = 3.0
    read: float = 10.0

    def as_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.read, pool=self.connect)


DEFAULT_TIMEOUTS = Timeouts()

_lock = threading.Lock()
_shared: tuple[int, httpx.Client] | None = None
_MAX_CERT_CLIENTS = 32
_cert_clients: OrderedDict[str, tuple[int, httpx.Client]] = OrderedDict()


def _new_client(verify: ssl.SSLContext | bool = True) -> httpx.Client:
    return httpx.Client(
        verify=verify,
        timeout=DEFAULT_TIMEOUTS.as_httpx(),
        headers={"User-Agent": USER_AGENT},
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
        # Upstream endpoints never redirect; following one could leak a signed request elsewhere.
        follow_redirects=False,
    )


def shared_client() -> httpx.Client:
    """The process-wide client for calls without a client certificate."""
    global _shared
    pid = os.getpid()
    current = _shared
    if current is not None and current[0] == pid:
        return current[1]
    with _lock:
        if _shared is None or _shared[0] != pid:
            _shared = (pid, _new_client())
        return _shared[1]


def _ssl_context_with_client_cert(cert_pem: str, key_pem: str) -> ssl.SSLContext:
    context = ssl.create_default_context()
    # ssl can only load a certificate chain from a file: write it private (mkstemp creates it 0600) and remove it
    # as soon as it is loaded, so the private key never lingers on disk.
    fd, path = tempfile.mkstemp(prefix="wxcert-", suffix=".pem")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(cert_pem.strip() + "\n" + key_pem.strip() + "\n")
        context.load_cert_chain(path)
    except (ssl.SSLError, ValueError, OSError) as exc:
        # The ssl error text can name the file but never contains the key; still, keep the message generic.
        raise ValueError("client certificate or key could not be loaded") from exc
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return context


def client_for_certificate(cert_pem: str, key_pem: str) -> httpx.Client:
    """A pooled client presenting the merchant's API client certificate (WeChat `secapi/*` calls).

    Cached per certificate+key (by digest, so the cache holds no key text as a dict key), least recently used
    evicted. Raises ValueError for an unusable certificate: that is a configuration error, not an upstream one.
    """
    digest = hashlib.sha256((cert_pem + "\0" + key_pem).encode()).hexdigest()
    pid = os.getpid()
    with _lock:
        cached = _cert_clients.get(digest)
        if cached is not None and cached[0] == pid:
            _cert_clients.move_to_end(digest)
            return cached[1]
        client = _new_client(_ssl_context_with_client_cert(cert_pem, key_pem))
        _cert_clients[digest] = (pid, client)
        while len(_cert_clients) > _MAX_CERT_CLIENTS:
            _, (old_pid, old) = _cert_clients.popitem(last=False)
            if old_pid == pid:
                old.close()
        return client


def close_all() -> None:
    """Close every client this process created (tests, worker shutdown)."""
    global _shared
    pid = os.getpid()
    with _lock:
        if _shared is not None and _shared[0] == pid:
            _shared[1].close()
        _shared = None
        for owner, client in _cert_clients.values():
            if owner == pid:
                client.close()
        _cert_clients.clear()


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: httpx.Headers
    body: bytes
    latency_ms: int


@dataclass(frozen=True)
class TransportFailure:
    outcome: Outcome
    code: str
    message: str
    latency_ms: int


# Called with no arguments just before each request goes out. The Django side registers one that hands the calling
# thread's database connection back while the upstream answers (payments.channels): nothing here knows of Django.
before_send: list[Callable[[], None]] = []

# Raised before a single byte of the request left this process: the call certainly did not happen.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def send(client: httpx.Client, request: httpx.Request, *, changes_state: bool) -> RawResponse | TransportFailure:
    """Send and read the whole body; map every transport problem to an outcome instead of raising.

    `changes_state`: the call moves money or changes upstream state, so a lost answer leaves its effect unknown.
    Messages carry the exception class only: httpx texts may quote URLs or headers.
    """
    for hook in before_send:
        hook()
    started = time.monotonic()
    try:
        response = client.send(request)
        try:
            body = response.read()
        finally:
            response.close()
    except _NOT_SENT as exc:
        return TransportFailure(Outcome.TRANSIENT, "CONNECT_ERROR", type(exc).__name__, _elapsed(started))
    except httpx.TimeoutException as exc:
        outcome = Outcome.UNKNOWN if changes_state else Outcome.TRANSIENT
        return TransportFailure(outcome, "TIMEOUT", type(exc).__name__, _elapsed(started))
    except httpx.HTTPError as exc:
        # Reset/closed after sending, protocol errors, broken bodies: the request may have been processed.
        outcome = Outcome.UNKNOWN if changes_state else Outcome.TRANSIENT
        return TransportFailure(outcome, "NETWORK_ERROR", type(exc).__name__, _elapsed(started))
    return RawResponse(response.status_code, response.headers, body, _elapsed(started))


def failure_outcome(changes_state: bool) -> Outcome:
    """Outcome for an answer we cannot use (5xx, unparseable, unverifiable)."""
    return Outcome.UNKNOWN if changes_state else Outcome.TRANSIENT


def _elapsed(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
