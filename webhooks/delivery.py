"""Sending webhook deliveries: claim what is due, POST it signed, record each answer (docs/webhooks.md).

One `drain` runs in a worker process at a time (the task `webhooks.tasks.deliver`) and keeps up to
WEBHOOK_SEND_THREADS POSTs in flight, at most WEBHOOK_ENDPOINT_CONCURRENCY of them to one endpoint, so a slow or dead
receiver holds a few threads, never the others' deliveries (and never a payment: events are only read here).

- Claim: due PENDING deliveries of active endpoints, `FOR UPDATE SKIP LOCKED` (several workers share the work),
  skipping any whose endpoint has an earlier delivery with the same order key still pending — a refund's event waits
  for its payment's. The claim numbers the attempt and leases the row (`next_attempt_at` = now + timeout + margin)
  before anything is sent: a worker killed mid-send leaves a lease that runs out, and the event is sent again
  (at-least-once; the event id is the receiver's dedupe key).
- Record: 2xx → DELIVERED; anything else → the next wait of WEBHOOK_RETRY_SCHEDULE, FAILED after the last. The row
  is written only if it still carries this attempt's number (a lease taken over by another worker is theirs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict, deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import urllib3
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from webhooks import signing
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.services import signing_secrets

logger = logging.getLogger(__name__)

Status = WebhookDelivery.Status
EXCERPT_BYTES = 500
USER_AGENT = "facepay-webhooks/1"
_PREFETCH = 8  # a healthy endpoint may have this many times its concurrency claimed ahead; a struggling one, none
_SLOW_MS = 1000  # an answer slower than this makes its endpoint "struggling"
_LEASE_MARGIN = 30.0
_CLAIM_BATCH = 200
_MAX_DRAINED = 64 * 1024  # bytes of an answer read past the excerpt to keep its connection
_FLUSH_EVERY = 0.1  # seconds: answers are written in bulk at least this often
_IDLE_LINGER = 1.0  # seconds a drain waits for new work before it ends (a kick within this is served at once)
_POLL_FIRST, _POLL_MAX = 0.05, 0.4  # seconds between claims that find nothing: doubling from the first to the most
_running = threading.Lock()  # one drain per process; another task arriving meanwhile returns at once


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    endpoint_id: int
    number: int
    retry_step: int
    url: str
    event_id: str
    event_type: str
    body: bytes
    secrets: tuple[str, ...]


@dataclass
class Sent:
    claim: Claimed
    started_at: datetime
    headers: dict
    status_code: int | None = None
    excerpt: str = ""
    error: str = ""
    latency_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class DrainResult:
    sent: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    seconds: float = 0.0
    by_status: Counter = field(default_factory=Counter)


def _now() -> datetime:
    return timezone.now()


def _due(now: datetime, busy: set[int]):
    earlier = WebhookDelivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"),
        order_key=OuterRef("order_key"),
        status=Status.PENDING,
        pk__lt=OuterRef("pk"),
    )
    rows = WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
    if busy:
        rows = rows.exclude(endpoint_id__in=busy)
    # Ordered like the partial index webhook_delivery_due, so PostgreSQL walks it and stops at the limit instead of
    # sorting every due row.
    return rows.filter(Q(order_key="") | ~Exists(earlier)).order_by("next_attempt_at", "pk")


@dataclass(frozen=True)
class _Target:
    url: str
    secrets: tuple[str, ...]


def _targets(endpoint_ids: set[int], now: datetime, opened: dict[str, str] | None = None) -> dict[int, _Target]:
    """URL and signing secrets of the active ones among `endpoint_ids` (read fresh on every claim, so an edit, a
    rotation or a switch-off applies to the next attempt). `opened`: secrets already decrypted in this drain, by
    their stored (encrypted) form, so each is decrypted once per drain rather than once per claim."""
    opened = {} if opened is None else opened

    def reveal(secret) -> str:
        token = secret._token
        if token is None:
            return secret.reveal()
        if token not in opened:
            opened[token] = secret.reveal()
        return opened[token]

    return {
        endpoint.pk: _Target(endpoint.url, tuple(signing_secrets(endpoint, now, reveal=reveal)))
        for endpoint in WebhookEndpoint.objects.filter(pk__in=endpoint_ids, is_active=True)
    }


def lease_seconds() -> float:
    """How long a claimed delivery is left alone: long enough for every row an endpoint has claimed to be sent even
    if it turns slow just after the claim. A worker killed mid-send delays its deliveries by this much."""
    return settings.WEBHOOK_TIMEOUT * (_PREFETCH + 1) + _LEASE_MARGIN


_CLAIM_COLUMNS = ("pk", "endpoint_id", "attempts", "retry_step", "event__event_id", "event__type", "event__body")


def claim(
    *,
    limit: int,
    room: dict[int, int] | None = None,
    busy: set[int] = frozenset(),
    opened: dict[str, str] | None = None,
) -> list[Claimed]:
    """Lease up to `limit` due deliveries of active endpoints; `room`: how many more each endpoint may take now
    (default: its concurrency times the prefetch), `busy`: endpoints that may take none; `opened`: see `_targets`."""
    now = _now()
    lease = now + timedelta(seconds=lease_seconds())
    room = dict(room or {})
    with transaction.atomic():
        # Plain tuples, not model instances: a claim reads a few hundred rows many times a second.
        rows = list(
            _due(now, set(busy)).select_for_update(skip_locked=True, of=("self",)).values_list(*_CLAIM_COLUMNS)[:limit]
        )
        targets = _targets({row[1] for row in rows}, now, opened)
        taken, parked = [], []
        for row in rows:
            pk, endpoint_id = row[0], row[1]
            if endpoint_id not in targets:
                parked.append(pk)  # switched off while it was in flight
                continue
            left = room.get(endpoint_id, settings.WEBHOOK_ENDPOINT_CONCURRENCY * _PREFETCH)
            if left <= 0:
                continue  # the endpoint has enough claimed: the row stays due, untouched
            room[endpoint_id] = left - 1
            taken.append(row)
        if parked:
            WebhookDelivery.objects.filter(pk__in=parked).update(next_attempt_at=None)
        if taken:
            WebhookDelivery.objects.filter(pk__in=[row[0] for row in taken]).update(
                attempts=F("attempts") + 1, next_attempt_at=lease, last_attempt_at=now
            )
    return [
        Claimed(
            delivery_id=pk,
            endpoint_id=endpoint_id,
            number=attempts + 1,  # the row was locked: the UPDATE above made it exactly this
            retry_step=retry_step,  # a PENDING row's step changes only through its attempts' answers
            url=targets[endpoint_id].url,
            event_id=event_id,
            event_type=event_type,
            body=body.encode("utf-8"),
            secrets=targets[endpoint_id].secrets,
        )
        for pk, endpoint_id, attempts, retry_step, event_id, event_type, body in taken
    ]


def headers_for(claim: Claimed, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        signing.EVENT_ID_HEADER: claim.event_id,
        signing.EVENT_TYPE_HEADER: claim.event_type,
        signing.TIMESTAMP_HEADER: str(timestamp),
        signing.ATTEMPT_HEADER: str(claim.number),
        signing.SIGNATURE_HEADER: signing.signature_header(claim.secrets, timestamp, claim.body),
    }


def post(pool: urllib3.PoolManager, claim: Claimed) -> Sent:
    """One POST. Never raises: a network failure is recorded as the attempt's error."""
    started = _now()
    headers = headers_for(claim, int(time.time()))
    sent = Sent(claim=claim, started_at=started, headers=headers)
    clock = time.perf_counter()
    try:
        response = pool.request("POST", claim.url, body=claim.body, headers=headers, preload_content=False)
        try:
            sent.status_code = response.status
            sent.excerpt = response.read(EXCERPT_BYTES).decode("utf-8", "replace")
            # Keep the connection for the next POST when the rest of the answer is short; otherwise drop it.
            rest = response.read(_MAX_DRAINED + 1)
            if len(rest) > _MAX_DRAINED:
                response.close()
        finally:
            response.release_conn()
    except urllib3.exceptions.NewConnectionError as exc:  # refused or unreachable (a ConnectTimeoutError subclass)
        sent.error = f"{type(exc).__name__}: {exc}"[:200]
    except urllib3.exceptions.TimeoutError:
        sent.error = "timeout"
    except urllib3.exceptions.HTTPError as exc:
        sent.error = f"{type(exc).__name__}: {exc}"[:200]
    except Exception as exc:  # noqa: BLE001 - whatever happens to one POST is that attempt's failure
        logger.exception("webhook POST to endpoint %s raised", claim.endpoint_id)
        sent.error = f"{type(exc).__name__}"[:200]
    sent.latency_ms = int((time.perf_counter() - clock) * 1000)
    return sent


def record(results: list[Sent]) -> None:
    """Write the answers of finished attempts: the deliveries' new state and the attempt log, in one transaction.
    Each delivery row is written only if it still carries this attempt's number."""
    if not results:
        return
    now = _now()
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    delivered, retried = [], []
    for sent in results:
        claimed, code = sent.claim, sent.status_code
        if sent.ok:
            delivered.append((code, now, claimed.delivery_id, claimed.number))
        else:
            error = (sent.error or f"HTTP {code}")[:200]
            step = claimed.retry_step
            if step >= len(schedule):
                retried.append(("FAILED", None, step, code, error, claimed.delivery_id, claimed.number))
            else:
                wait_until = now + timedelta(seconds=schedule[step])
                retried.append(("PENDING", wait_until, step + 1, code, error, claimed.delivery_id, claimed.number))
    table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    only_this_attempt = "WHERE id = %s AND attempts = %s AND status = 'PENDING'"
    with transaction.atomic(), connection.cursor() as cursor:
        # Raw statements, many rows each: the ORM's per-row cost was most of a delivery's CPU.
        if delivered:
            cursor.executemany(
                f"UPDATE {table} SET status = 'DELIVERED', next_attempt_at = NULL, last_status_code = %s, "
                f"last_error = '', delivered_at = %s {only_this_attempt}",
                delivered,
            )
        if retried:
            cursor.executemany(
                f"UPDATE {table} SET status = %s, next_attempt_at = %s, retry_step = %s, last_status_code = %s, "
                f"last_error = %s {only_this_attempt}",
                retried,
            )
        WebhookAttempt.objects.bulk_create(
            WebhookAttempt(
                delivery_id=sent.claim.delivery_id,
                number=sent.claim.number,
                started_at=sent.started_at,
                request_headers={k: v for k, v in sent.headers.items() if k != "User-Agent"},
                status_code=sent.status_code,
                response_excerpt=sent.excerpt,
                error=sent.error[:200],
                latency_ms=sent.latency_ms,
            )
            for sent in results
        )


def new_client() -> urllib3.PoolManager:
    """Connections kept open per host (as many as POSTs may be in flight), no retries and no redirects: a 3xx is an
    answer that is not 2xx, and every retry is the schedule's."""
    return urllib3.PoolManager(
        num_pools=256,
        maxsize=settings.WEBHOOK_SEND_THREADS,
        timeout=urllib3.Timeout(connect=settings.WEBHOOK_TIMEOUT, read=settings.WEBHOOK_TIMEOUT),
        retries=False,  # also: a redirect is returned as the answer, not followed
    )


def drain(*, budget: float | None = None, client: urllib3.PoolManager | None = None) -> DrainResult | None:
    """Send what is due, and what becomes due, for up to `budget` seconds (WEBHOOK_DRAIN_SECONDS); then finish the
    POSTs in flight and return. None when another drain already runs in this process."""
    if not _running.acquire(blocking=False):
        return None
    try:
        own_client = client is None
        client = client or new_client()
        try:
            return _drain(client, settings.WEBHOOK_DRAIN_SECONDS if budget is None else budget)
        finally:
            if own_client:
                client.clear()
    finally:
        _running.release()


def _drain(client: urllib3.PoolManager, budget: float) -> DrainResult:
    threads = settings.WEBHOOK_SEND_THREADS
    per_endpoint = settings.WEBHOOK_ENDPOINT_CONCURRENCY
    result = DrainResult()
    started = time.monotonic()
    deadline = started + budget
    queued: dict[int, deque[Claimed]] = defaultdict(deque)  # claimed, waiting for one of the endpoint's slots
    held: Counter = Counter()  # claimed and not yet answered, per endpoint
    running: Counter = Counter()  # POSTs in flight, per endpoint
    struggling: set[int] = set()  # endpoints whose last answer failed or was slow: claimed one slot-load at a time
    inflight: dict[Future, Claimed] = {}
    finished: list[Sent] = []
    flushed_at = last_work = time.monotonic()
    claim_next, poll = 0.0, _POLL_FIRST
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook") as pool:
        while True:
            moment = time.monotonic()
            room = threads * _PREFETCH - sum(held.values())
            if moment < deadline and room >= threads * _PREFETCH // 2 and moment >= claim_next:
                depth = {
                    pk: (per_endpoint if pk in struggling else per_endpoint * _PREFETCH) - n for pk, n in held.items()
                }
                limit = min(_CLAIM_BATCH, room)
                fresh = claim(limit=limit, room=depth, busy={pk for pk, n in depth.items() if n <= 0})
                for item in fresh:
                    queued[item.endpoint_id].append(item)
                    held[item.endpoint_id] += 1
                if fresh:
                    last_work = moment
                # All there was: look again shortly, not on every loop; less and less often while there is nothing.
                poll = _POLL_FIRST if fresh or inflight else min(poll * 2, _POLL_MAX)
                claim_next = moment if len(fresh) >= limit else moment + poll
            for pk in [pk for pk, waiting in queued.items() if waiting]:
                while queued[pk] and running[pk] < per_endpoint and len(inflight) < threads:
                    item = queued[pk].popleft()
                    inflight[pool.submit(post, client, item)] = item
                    running[pk] += 1
            if inflight:
                done, _ = wait(list(inflight), timeout=0.05, return_when=FIRST_COMPLETED)
                for future in done:
                    item = inflight.pop(future)
                    sent = future.result()
                    running[item.endpoint_id] -= 1
                    held[item.endpoint_id] -= 1
                    if not held[item.endpoint_id]:
                        del held[item.endpoint_id], running[item.endpoint_id], queued[item.endpoint_id]
                    if sent.ok and sent.latency_ms < _SLOW_MS:
                        struggling.discard(item.endpoint_id)
                    else:
                        struggling.add(item.endpoint_id)
                    finished.append(sent)
                last_work = time.monotonic()
            elif moment >= deadline or moment - last_work >= _IDLE_LINGER:
                break
            else:
                time.sleep(max(0.0, min(_POLL_MAX, claim_next - moment, last_work + _IDLE_LINGER - moment)))
            moment = time.monotonic()
            if finished and (moment - flushed_at >= _FLUSH_EVERY or len(finished) >= _CLAIM_BATCH or not inflight):
                _flush(finished, result)
                finished = []
                flushed_at = moment
    _flush(finished, result)
    result.seconds = time.monotonic() - started
    return result


def _flush(finished: list[Sent], result: DrainResult) -> None:
    if not finished:
        return
    record(finished)
    for sent in finished:
        result.sent += 1
        result.by_status[sent.status_code or sent.error.split(":")[0]] += 1
        if sent.ok:
            result.delivered += 1
        else:
            result.failed_attempts += 1
