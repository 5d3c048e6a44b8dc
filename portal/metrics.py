"""The operators' metrics (docs/metrics.md): every metric's definition, the hooks the money path calls, and the
gauges read from the database when `/metrics` is scraped (portal/metrics_endpoint.py).

prometheus-client runs in its multiprocess mode: the settings point PROMETHEUS_MULTIPROC_DIR at METRICS_DIR before
anything imports the client (portal/metrics_dir.py), each process writes its counters and histograms into files of
its own there, and a scrape adds up every process's files. So the web workers, the Celery worker and beat of a node
are scraped as one, through any of its web workers.

The hooks sit on the payment path, so each costs a dictionary lookup and a write into a memory-mapped file: the
label children are bound once per label combination and kept (`labels()` checks and locks on every call), and no
hook reads the database. Labels stay few-valued: a channel, a merchant class (the merchant's `channel` field), a
status, an API, an endpoint's URL name, a task name — never a merchant, an order or a device.

With METRICS_ENABLED false (an operator without Prometheus) nothing is recorded: the settings do not join
METRICS_DIR, the hooks return at once, the middleware leaves the chain, the Celery signal handlers are not connected
and /metrics answers 404.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import NamedTuple

import redis
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from celery import signals
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from portal.models import Merchant

if settings.METRICS_ENABLED and values.ValueClass is values.MutexValue:
    raise ImproperlyConfigured(
        "prometheus_client was imported before the settings set PROMETHEUS_MULTIPROC_DIR: this process's metrics "
        "would not reach /metrics. Load the Django settings first."
    )

logger = logging.getLogger(__name__)

# --- written by the processes (multiprocess files) -----------------------------------------------------------------
# Not registered anywhere: a scrape reads them from the files (MultiProcessCollector), whichever process wrote them.

PAYMENT_OUTCOMES = Counter(
    "facepay_payment_outcomes",
    "Payments leaving PAYING or REVERSING for a settled status, counted when the change commits.",
    ["channel", "merchant_class", "status"],
    registry=None,
)
PAYMENT_TIME_TO_OUTCOME = Histogram(
    "facepay_payment_time_to_outcome_seconds",
    "Seconds from a payment's creation to the settled status counted in facepay_payment_outcomes_total.",
    ["channel"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 45, 60, 120, 300, 900, 3600),
    registry=None,
)
REFUND_OUTCOMES = Counter(
    "facepay_refund_outcomes",
    "Refunds the workers drive to SUCCESS, FAILED or ATTENTION, counted when the change commits.",
    ["channel", "status"],
    registry=None,
)
UPSTREAM_CALLS = Counter(
    "facepay_upstream_calls",
    "Calls to WeChat Pay and UMF by API and outcome (SUCCESS, REJECTED, TRANSIENT, UNKNOWN; error: raised locally).",
    ["channel", "api", "outcome"],
    registry=None,
)
UPSTREAM_SECONDS = Histogram(
    "facepay_upstream_call_seconds",
    "Seconds a call to WeChat Pay or UMF took, building the request included.",
    ["channel", "api"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20),
    registry=None,
)
TERMINAL_REQUESTS = Counter(
    "facepay_terminal_requests",
    "Terminal API requests by endpoint (the URL's name; unmatched: no such endpoint) and HTTP status code.",
    ["endpoint", "status"],
    registry=None,
)
CELERY_TASKS = Counter(
    "facepay_celery_tasks",
    "Celery tasks run by the workers, by task name and outcome (succeeded, failed, retried).",
    ["task", "outcome"],
    registry=None,
)

# --- read when scraped ---------------------------------------------------------------------------------------------
# Gauge name → (help, label names). The apps register what they read (`read_at_scrape`, from their AppConfig.ready):
# portal imports none of them.
SCRAPE_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "facepay_payments_attention": ("Payments in ATTENTION: a person must settle them.", ()),
    "facepay_refunds_attention": ("Refunds in ATTENTION: a person must settle them.", ()),
    "facepay_payments_overdue": (
        "Payments PAYING or REVERSING whose next check is more than a minute overdue (workers or beat behind).",
        (),
    ),
    "facepay_refunds_overdue": ("Refunds PENDING or PROCESSING whose next check is more than a minute overdue.", ()),
    "facepay_webhook_deliveries": (
        "Webhook deliveries not delivered: PENDING (due or waiting for a retry), FAILED (retries used up).",
        ("status",),
    ),
    "facepay_reconciliation_differences_open": ("Reconciliation differences still OPEN.", ()),
    "facepay_celery_queue_length": ("Tasks waiting in the broker's queue (Redis broker only).", ("queue",)),
}
SOURCE_UP = "facepay_scrape_source_up"
OVERDUE_AFTER_SECONDS = 60  # how late a next check must be before it counts as overdue


class Reading(NamedTuple):
    gauge: str  # a name of SCRAPE_GAUGES
    value: float
    labels: tuple[str, ...] = ()


_sources: dict[str, Callable[[], Iterable[Reading]]] = {}


def read_at_scrape(source: str, read: Callable[[], Iterable[Reading]]) -> None:
    """Have every scrape call `read` (cheap: indexed counts). If it raises, the scrape goes on without its readings
    and reports facepay_scrape_source_up{source=...} 0."""
    _sources[source] = read


class _ScrapeTimeGauges:
    """The registered sources' readings, as gauges."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        families = {
            name: GaugeMetricFamily(name, documentation, labels=labels)
            for name, (documentation, labels) in SCRAPE_GAUGES.items()
        }
        up = GaugeMetricFamily(SOURCE_UP, "1: this scrape read the source; 0: reading it failed.", labels=["source"])
        for source, read in _sources.items():
            try:
                readings = list(read())
            except Exception as exc:  # noqa: BLE001 - any failure: the rest of the scrape still answers
                logger.warning("metrics: reading %s failed (%s: %s)", source, type(exc).__name__, str(exc)[:200])
                up.add_metric([source], 0)
                continue
            for reading in readings:
                families[reading.gauge].add_metric(list(reading.labels), reading.value)
            up.add_metric([source], 1)
        yield from (family for family in families.values() if family.samples)
        yield up


_scrape_time_gauges = _ScrapeTimeGauges()


def exposition(accept: str) -> tuple[bytes, str]:
    """The scrape's body and content type (Prometheus text or OpenMetrics, as `accept` asks): every process's
    counters and histograms from the files, then the gauges read now."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(_scrape_time_gauges)
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


# --- hooks ---------------------------------------------------------------------------------------------------------


def _channel(merchant_class: str) -> str:
    """The upstream a merchant class is charged through."""
    return "UMPAY" if merchant_class == Merchant.Channel.UMPAY else "WECHAT"


@functools.cache
def _child(metric, *labels: str):
    """The metric's child for these label values, made once per process: a hook is then a dict lookup and a write."""
    return metric.labels(*labels)


def payment_outcome(merchant_class: str, status: str, seconds: float) -> None:
    """A payment reached `status` from PAYING or REVERSING, `seconds` after it was created (call once committed)."""
    if not settings.METRICS_ENABLED:
        return
    channel = _channel(merchant_class)
    _child(PAYMENT_OUTCOMES, channel, merchant_class, status).inc()
    _child(PAYMENT_TIME_TO_OUTCOME, channel).observe(max(0.0, seconds))


def refund_outcome(merchant_class: str, status: str) -> None:
    """A refund reached `status` (call once committed)."""
    if not settings.METRICS_ENABLED:
        return
    _child(REFUND_OUTCOMES, _channel(merchant_class), status).inc()


def upstream_call(merchant_class: str, api: str, outcome: str, seconds: float) -> None:
    """A call to the merchant's channel answered with `outcome` (or raised: "error") after `seconds`."""
    if not settings.METRICS_ENABLED:
        return
    channel = _channel(merchant_class)
    _child(UPSTREAM_CALLS, channel, api, outcome).inc()
    _child(UPSTREAM_SECONDS, channel, api).observe(seconds)


def _terminal_request(request, response) -> None:
    match = request.resolver_match
    if match is not None:
        if "terminal" not in match.namespaces:
            return
        endpoint = match.url_name
    elif request.path_info.startswith("/api/terminal/"):
        endpoint = "unmatched"
    else:
        return
    _child(TERMINAL_REQUESTS, endpoint, str(response.status_code)).inc()


class TerminalApiMetricsMiddleware:
    """Counts terminal API requests (facepay_terminal_requests_total) by endpoint and status code. First in
    TERMINAL_API_MIDDLEWARE and in MIDDLEWARE (which serves a terminal path under a script prefix, and every request
    in tests), so it counts the answer the other middleware made; synchronous and asynchronous, so under ASGI it
    adds no thread hop. Requests outside the terminal API pass through uncounted. With METRICS_ENABLED false it is
    left out of the chain."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        if not settings.METRICS_ENABLED:
            raise MiddlewareNotUsed
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        response = self.get_response(request)
        _terminal_request(request, response)
        return response

    async def _acall(self, request):
        response = await self.get_response(request)
        _terminal_request(request, response)
        return response


def _task_outcome(sender, outcome: str) -> None:
    task = getattr(sender, "name", None) or "unknown"
    _child(CELERY_TASKS, task, outcome).inc()


def _task_succeeded(sender=None, **kwargs) -> None:
    _task_outcome(sender, "succeeded")


def _task_failed(sender=None, **kwargs) -> None:
    _task_outcome(sender, "failed")


def _task_retried(sender=None, **kwargs) -> None:
    _task_outcome(sender, "retried")


# --- the broker's queues -------------------------------------------------------------------------------------------


@functools.cache
def _broker_client(url: str) -> redis.Redis:
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    return redis.Redis.from_url(
        url, socket_timeout=options.get("socket_timeout"), socket_connect_timeout=options.get("socket_connect_timeout")
    )


def _queue_lengths() -> list[Reading]:
    from portal.celery import app

    client = _broker_client(settings.CELERY_BROKER_URL)
    return [Reading("facepay_celery_queue_length", client.llen(queue), (queue,)) for queue in sorted(app.amqp.queues)]


def setup() -> None:
    """This process's part (PortalConfig.ready): count the outcome of every Celery task it runs, and — with a Redis
    broker — read the queues' lengths when scraped (LLEN; other brokers are not read). Nothing with METRICS_ENABLED
    false."""
    if not settings.METRICS_ENABLED:
        return
    signals.task_success.connect(_task_succeeded, weak=False, dispatch_uid="facepay-metrics-task-success")
    signals.task_failure.connect(_task_failed, weak=False, dispatch_uid="facepay-metrics-task-failure")
    signals.task_retry.connect(_task_retried, weak=False, dispatch_uid="facepay-metrics-task-retry")
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        read_at_scrape("broker", _queue_lengths)
