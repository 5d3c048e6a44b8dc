"""The request id, and what is known about the request, on every log line (docs/operations.md, "Logs").

A request gets an id when it enters (the client's `X-Request-ID` when well formed, else a new one), answers with it in
`X-Request-ID`, and keeps it in a context variable for as long as it runs: in its async parts and in the threads its
synchronous parts run in (asgiref copies the context there and back). Authentication and the payment services add
the device, the merchant and the order once they know them (`bind`). A task queued while a request id is set carries
it in its message headers, and the worker runs the task under it, so one id follows a payment from the terminal's
request through every task it causes and every upstream call they make; a task queued by beat (or anything else
without an id) runs under one of its own, `task-<task id>`.

`RequestContextFilter` copies the context onto each log record. The middleware writes one access line per request
(`portal.access`) and the Celery signals one line per task run (`portal.task`). Nothing here logs a body, a header
other than the id, a query string, or a URL segment that is a one-time token or a user's face id.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from types import MappingProxyType

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from celery import signals
from django.urls import Resolver404, resolve

from portal.client_address import client_address

HEADER = "X-Request-ID"
TASK_HEADER = "x_request_id"  # the task message header that carries it
_WELL_FORMED = re.compile(r"[A-Za-z0-9._-]{1,64}")
# URL segments shown as "<hidden>" in the access line: one-time links to a secret's page, and a user's face id.
_HIDDEN_URL_KWARGS = ("token", "face_sid")

_EMPTY = MappingProxyType({})
# Replaced, never changed in place: a copy of the context taken by a thread or a task keeps what it saw.
_context: ContextVar[MappingProxyType] = ContextVar("log_context", default=_EMPTY)

access_logger = logging.getLogger("portal.access")
task_logger = logging.getLogger("portal.task")


def current() -> str | None:
    """The request id this code runs under, None outside a request or task."""
    return _context.get().get("request_id")


def well_formed(value: object) -> bool:
    """1-64 letters, digits, '.', '_' or '-': safe on a log line and in a header."""
    return isinstance(value, str) and _WELL_FORMED.fullmatch(value) is not None


def bind(**fields: str | int) -> None:
    """Add what is now known about the request or task (device_id, merchant_id, out_trade_no) to its log lines.
    Outside a request or task it does nothing: there is no scope to end it, and later lines would inherit it."""
    context = _context.get()
    if "request_id" in context:
        _context.set(MappingProxyType({**context, **fields}))


def _start(request_id: str):
    return _context.set(MappingProxyType({"request_id": request_id}))


class RequestContextFilter(logging.Filter):
    """Adds the request id and what is known about the request to every record (the handlers' filter in LOGGING)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name, value in context.items():
            setattr(record, name, value)
        if "request_id" not in context:
            # Django writes its line for a 4xx or 5xx answer ("Not Found: …") once the middleware has returned; the
            # line carries the request, which kept its id.
            request_id = getattr(getattr(record, "request", None), "request_id", None)
            if request_id is not None:
                record.request_id = request_id
        return True


# --- requests ------------------------------------------------------------------------------------------------------


def _logged_path(request) -> str:
    """The path without its query string, and with the segments of _HIDDEN_URL_KWARGS replaced."""
    path = request.path
    match = request.resolver_match
    if match is None:  # answered before the URL was resolved (a redirect to the sign-in page, a 404)
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return path
    for name in _HIDDEN_URL_KWARGS:
        if value := match.kwargs.get(name):
            path = path.replace(str(value), "<hidden>")
    return path


class RequestIdMiddleware:
    """Gives each request its id (kept from a well-formed `X-Request-ID`, else generated), answers with it and writes
    the request's access line. Synchronous and asynchronous, so under ASGI it adds no thread hop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        token, started = self._begin(request)
        try:
            return self._end(request, self.get_response(request), started)
        finally:
            _context.reset(token)

    async def _acall(self, request):
        token, started = self._begin(request)
        try:
            return self._end(request, await self.get_response(request), started)
        finally:
            _context.reset(token)

    @staticmethod
    def _begin(request):
        incoming = request.META.get("HTTP_X_REQUEST_ID")
        request.request_id = incoming if well_formed(incoming) else uuid.uuid4().hex
        return _start(request.request_id), time.perf_counter()

    @staticmethod
    def _end(request, response, started: float):
        response[HEADER] = current()
        milliseconds = round((time.perf_counter() - started) * 1000)
        path = _logged_path(request)
        access_logger.info(
            "%s %s %s %d ms",
            request.method,
            path,
            response.status_code,
            milliseconds,
            extra={
                "method": request.method,
                "path": path,
                "status": response.status_code,
                "duration_ms": milliseconds,
                "client": client_address(request),
            },
        )
        return response


# --- Celery tasks --------------------------------------------------------------------------------------------------


def _add_header(headers=None, **kwargs) -> None:
    """before_task_publish: a task queued under a request id carries it."""
    request_id = current()
    if request_id is not None and headers is not None:
        headers[TASK_HEADER] = request_id


def _task_started(task_id=None, task=None, **kwargs) -> None:
    """task_prerun: run the task under the id it was queued with, or one of its own."""
    request = task.request
    # A worker puts a message's own headers among the request's attributes; apply(headers=...) under `headers`.
    request_id = getattr(request, TASK_HEADER, None) or (request.headers or {}).get(TASK_HEADER)
    if not well_formed(request_id):
        request_id = f"task-{task_id}"
    request.log_context = (_start(request_id), time.perf_counter())


def _task_finished(task_id=None, task=None, retval=None, state=None, **kwargs) -> None:
    """task_postrun: one line for the run (name, outcome, duration, the result when it succeeded), then the worker
    thread's context is what it was before."""
    token, started = task.request.log_context
    milliseconds = round((time.perf_counter() - started) * 1000)
    fields = {"task": task.name, "task_id": task_id, "outcome": state, "duration_ms": milliseconds}
    if state == "SUCCESS":
        # The tasks return statuses and counts (never a secret); Celery's own line, turned off in LOGGING, showed it.
        fields["result"] = repr(retval)[:200]
    level = logging.INFO if state in ("SUCCESS", "RETRY") else logging.WARNING
    task_logger.log(level, "task %s %s %d ms", task.name, state, milliseconds, extra=fields)
    _context.reset(token)


def connect_task_signals() -> None:
    """Carry request ids in task messages and run tasks under them (called where the Celery app is made)."""
    signals.before_task_publish.connect(_add_header, weak=False, dispatch_uid="facepay-request-id-publish")
    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid="facepay-request-id-prerun")
    signals.task_postrun.connect(_task_finished, weak=False, dispatch_uid="facepay-request-id-postrun")
