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
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from webhooks import signing
from webhooks.models import WebhookAttempt, WebhookDelivery
from webhooks.services import signing_secrets

logger = logging.getLogger(__name__)

Status = WebhookDelivery.Status
EXCERPT_BYTES = 500
USER_AGENT = "facepay-webhooks/1"
_LEASE_MARGIN = 30.0
_CLAIM_BATCH = 200
_FLUSH_EVERY = 0.1  # seconds: answers are written in bulk at least this often
_IDLE_LINGER = 1.0  # seconds a drain waits for new work before it ends (a kick within this is served at once)
_running = threading.Lock()  # one drain per process; another task arriving meanwhile returns at once


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    endpoint_id: int
    number: int
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
    rows = WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now, endpoint__is_active=True)
    if busy:
        rows = rows.exclude(endpoint_id__in=busy)
    return rows.filter(Q(order_key="") | ~Exists(earlier)).order_by("next_attempt_at", "pk")


def claim(*, limit: int, room: dict[int, int] | None = None, busy: set[int] = frozenset()) -> list[Claimed]:
    """Lease up to `limit` due deliveries; `room`: how many more each endpoint may take now (default: the per-
    endpoint bound), `busy`: endpoints that may take none."""
    now = _now()
    lease = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT + _LEASE_MARGIN)
    room = dict(room or {})
    claimed: list[Claimed] = []
    with transaction.atomic():
        rows = (
            _due(now, set(busy))
            .select_for_update(skip_locked=True, of=("self",))
            .select_related("event", "endpoint")[:limit]
        )
        taken = []
        for row in rows:
            left = room.get(row.endpoint_id, settings.WEBHOOK_ENDPOINT_CONCURRENCY)
            if left <= 0:
                continue
            room[row.endpoint_id] = left - 1
            taken.append(row)
        if not taken:
            return []
        secrets_of: dict[int, tuple[str, ...]] = {}
        params = []
        for row in taken:
            if row.endpoint_id not in secrets_of:
                secrets_of[row.endpoint_id] = tuple(signing_secrets(row.endpoint, now))
            number = row.attempts + 1
            params.append((number, lease, now, row.pk))
            claimed.append(
                Claimed(
                    delivery_id=row.pk,
                    endpoint_id=row.endpoint_id,
                    number=number,
                    url=row.endpoint.url,
                    event_id=row.event.event_id,
                    event_type=row.event.type,
                    body=row.event.body.encode("utf-8"),
                    secrets=secrets_of[row.endpoint_id],
                )
            )
        table = WebhookDelivery._meta.db_table
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET attempts = %s, next_attempt_at = %s, last_attempt_at = %s WHERE id = %s",
                params,
            )
    return claimed


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


def post(client: httpx.Client, claim: Claimed) -> Sent:
    """One POST. Never raises: a network failure is recorded as the attempt's error."""
    started = _now()
    headers = headers_for(claim, int(time.time()))
    sent = Sent(claim=claim, started_at=started, headers=headers)
    clock = time.perf_counter()
    try:
        with client.stream("POST", claim.url, content=claim.body, headers=headers) as response:
            sent.status_code = response.status_code
            head = b""
            for chunk in response.iter_bytes():
                head += chunk
                if len(head) >= EXCERPT_BYTES:
                    break
            sent.excerpt = head[:EXCERPT_BYTES].decode("utf-8", "replace")
    except httpx.TimeoutException:
        sent.error = "timeout"
    except httpx.HTTPError as exc:
        sent.error = f"{type(exc).__name__}: {exc}"[:200]
    except Exception as exc:  # noqa: BLE001 - whatever happens to one POST is that attempt's failure
        logger.exception("webhook POST to endpoint %s raised", claim.endpoint_id)
        sent.error = f"{type(exc).__name__}"[:200]
    sent.latency_ms = int((time.perf_counter() - clock) * 1000)
    return sent


def record(results: list[Sent]) -> None:
    """Write the answers of finished attempts: the deliveries' new state and the attempt log, in one transaction."""
    if not results:
        return
    now = _now()
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    delivered, retried = [], []
    for sent in results:
        code = sent.status_code
        error = sent.error or ("" if sent.ok else f"HTTP {code}")
        if sent.ok:
            delivered.append((code, now, sent.claim.delivery_id, sent.claim.number))
        else:
            retried.append((code, error[:200], sent.claim.delivery_id, sent.claim.number))
    table = WebhookDelivery._meta.db_table
    with transaction.atomic():
        with connection.cursor() as cursor:
            if delivered:
                cursor.executemany(
                    f"UPDATE {table} SET status = 'DELIVERED', next_attempt_at = NULL, last_status_code = %s, "
                    f"last_error = '', delivered_at = %s WHERE id = %s AND attempts = %s AND status = 'PENDING'",
                    delivered,
                )
            if retried:
                # The next wait depends on the row's retry_step: read it under the lock, then write each.
                ids = [row[2] for row in retried]
                steps = dict(
                    WebhookDelivery.objects.select_for_update().filter(pk__in=ids).values_list("pk", "retry_step")
                )
                params = []
                for code, error, pk, number in retried:
                    step = steps.get(pk, 0)
                    if step >= len(schedule):
                        params.append(("FAILED", None, step, code, error, pk, number))
                    else:
                        params.append(("PENDING", now + timedelta(seconds=schedule[step]), step + 1, code, error, pk,
                                       number))  # fmt: skip
                cursor.executemany(
                    f"UPDATE {table} SET status = %s, next_attempt_at = %s, retry_step = %s, last_status_code = %s, "
                    f"last_error = %s WHERE id = %s AND attempts = %s AND status = 'PENDING'",
                    params,
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


def new_client() -> httpx.Client:
    threads = settings.WEBHOOK_SEND_THREADS
    return httpx.Client(
        timeout=httpx.Timeout(settings.WEBHOOK_TIMEOUT),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=threads, max_keepalive_connections=threads),
        trust_env=False,
    )


def drain(*, budget: float | None = None, client: httpx.Client | None = None) -> DrainResult | None:
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
                client.close()
    finally:
        _running.release()


def _drain(client: httpx.Client, budget: float) -> DrainResult:
    threads = settings.WEBHOOK_SEND_THREADS
    per_endpoint = settings.WEBHOOK_ENDPOINT_CONCURRENCY
    result = DrainResult()
    started = time.monotonic()
    deadline = started + budget
    inflight: dict[Future, Claimed] = {}
    load: Counter = Counter()
    finished: list[Sent] = []
    flushed_at = last_work = time.monotonic()
    claim_next = 0.0
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook") as pool:
        while True:
            moment = time.monotonic()
            room = threads - len(inflight)
            if moment < deadline and room > threads // 4 and moment >= claim_next:
                busy = {pk for pk, n in load.items() if n >= per_endpoint}
                fresh = claim(limit=min(_CLAIM_BATCH, room), room={pk: per_endpoint - n for pk, n in load.items()},
                              busy=busy)  # fmt: skip
                for item in fresh:
                    inflight[pool.submit(post, client, item)] = item
                    load[item.endpoint_id] += 1
                if fresh:
                    last_work = moment
                # Nothing claimable: look again shortly, not on every loop.
                claim_next = moment if len(fresh) >= min(_CLAIM_BATCH, room) else moment + 0.05
            if inflight:
                done, _ = wait(list(inflight), timeout=0.05, return_when=FIRST_COMPLETED)
                for future in done:
                    item = inflight.pop(future)
                    load[item.endpoint_id] -= 1
                    if not load[item.endpoint_id]:
                        del load[item.endpoint_id]
                    finished.append(future.result())
                last_work = time.monotonic()
            elif moment >= deadline or moment - last_work >= _IDLE_LINGER:
                break
            else:
                time.sleep(max(0.0, min(0.05, claim_next - moment)))
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
