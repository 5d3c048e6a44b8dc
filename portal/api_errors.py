"""One place that turns errors into the terminal API's body: {"code", "message", "details"}, with a fitting status."""

from __future__ import annotations

import logging
import time

import kombu.exceptions
import redis.exceptions
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.template.loader import render_to_string
from django.utils.deprecation import MiddlewareMixin
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from portal.errors import DomainError


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"code": code, "message": message, "details": details or {}}


def flatten_detail(detail) -> dict:
    """DRF validation detail → {"field": "message", "nested.field": "message"}."""
    out: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, list):
            if value and all(isinstance(v, str) for v in value):
                out[prefix or "non_field_errors"] = " ".join(str(v) for v in value)
            else:
                for index, item in enumerate(value):
                    walk(f"{prefix}[{index}]", item)
        else:
            out[prefix or "non_field_errors"] = str(value)

    walk("", detail)
    return out


# A dependency that is down, failing over or hanging: PostgreSQL (Django's wrappers of psycopg's errors, including
# the pool's timeout while it has no connection to give), Redis as the cache, Redis as the broker (kombu). Not a bug:
# the terminal is told to come back (503 SERVICE_UNAVAILABLE, Retry-After) instead of getting a 500. What was
# committed before the failure stays committed, and an order's lease (next_check_at) lets the sweeper finish it.
DEPENDENCY_ERRORS = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)
RETRY_AFTER_SECONDS = 2
logger = logging.getLogger("portal.outage")
_last_logged: dict[tuple[str, str], list] = {}  # (where, error type) → [monotonic time, lines suppressed since]


def log_dependency_error(exc: BaseException, where: str, detail: str = "") -> None:
    """A warning with the error's type and text, at most once a second per place and error type: an outage fails
    every request, and one line a second says as much as a thousand."""
    now, key = time.monotonic(), (where, type(exc).__name__)
    last = _last_logged.setdefault(key, [float("-inf"), 0])
    if now - last[0] < 1.0:
        last[1] += 1
        return
    more = f" (+{last[1]} more since the last line)" if last[1] else ""
    last[0], last[1] = now, 0
    logger.warning(
        "dependency unavailable in %s%s: %s: %s%s", where, f" ({detail})" if detail else "", type(exc).__name__,
        str(exc)[:200], more,
    )  # fmt: skip


def service_unavailable_body() -> dict:
    return error_body(
        "SERVICE_UNAVAILABLE",
        "The service is briefly unavailable; try again shortly. Repeat a payment only with the same out_trade_no.",
    )


def service_unavailable_json() -> JsonResponse:
    response = JsonResponse(service_unavailable_body(), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def service_unavailable_page() -> HttpResponse:
    # No request context: the context processors would read the session and the user, i.e. the database.
    response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DependencyOutageMiddleware(MiddlewareMixin):
    """DEPENDENCY_ERRORS raised by any view → 503 with Retry-After: JSON in the API's shape under /api/ and
    /notify/ (the terminal API's DRF views leave these errors to it, and so do its waits after the DRF view has
    answered), the styled page elsewhere (console, admin). In MIDDLEWARE and TERMINAL_API_MIDDLEWARE. Synchronous
    and asynchronous (MiddlewareMixin): under ASGI it adds no thread hop; its hook runs only when a view raises."""

    def process_exception(self, request, exception):
        if not isinstance(exception, DEPENDENCY_ERRORS):
            return None
        machine = request.path.startswith(_MACHINE_PREFIXES)
        log_dependency_error(exception, "the API" if machine else "the console", request.path)
        if machine:
            return service_unavailable_json()
        return service_unavailable_page()


def exception_handler(exc, context):
    headers = {}
    if isinstance(exc, DomainError):
        set_rollback()
        retry_after = getattr(exc, "retry_after", None)
        return Response(
            error_body(exc.code, exc.message, exc.details),
            status=exc.status,
            headers={"Retry-After": str(retry_after)} if retry_after else None,
        )
    if isinstance(exc, RequestDataTooBig):
        set_rollback()
        return Response(
            error_body("BODY_TOO_LARGE", "The request body is larger than this API accepts."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: let Django answer 500 and log it (an outage: DependencyOutageMiddleware answers 503)

    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    set_rollback()

    if isinstance(exc, exceptions.ValidationError):
        body = error_body("INVALID_INPUT", "Some fields are invalid.", flatten_detail(exc.detail))
    elif hasattr(exc, "error_code"):
        body = error_body(exc.error_code, str(exc.detail))
    else:
        code = {
            exceptions.NotAuthenticated: "AUTH_HEADER_MISSING",
            exceptions.AuthenticationFailed: "AUTHENTICATION_FAILED",
            exceptions.PermissionDenied: "FORBIDDEN",
            exceptions.NotFound: "NOT_FOUND",
            exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
            exceptions.ParseError: "MALFORMED_BODY",
            exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
            exceptions.Throttled: "THROTTLED",
            exceptions.NotAcceptable: "NOT_ACCEPTABLE",
        }.get(type(exc), "ERROR")
        body = error_body(code, str(exc.detail))
    response = Response(body, status=exc.status_code or status.HTTP_400_BAD_REQUEST, headers=headers)
    return response


# Django's own error pages, for what never reaches a DRF view (an unknown path, a crash): JSON in the API's shape
# under /api/ and /notify/ (machines read those), the console's pages elsewhere (templates/400.html, 404.html,
# 500.html; 403.html comes from Django's default handler).
_MACHINE_PREFIXES = ("/api/", "/notify/")


def bad_request(request, exception):
    """Django's 400 (handler400): a request refused before any view, above all a Host header not in ALLOWED_HOSTS
    (DisallowedHost, raised by the first `request.get_host()`). The answer never repeats the refused host."""
    if request.path.startswith(_MACHINE_PREFIXES):
        if isinstance(exception, DisallowedHost):
            body = error_body("HOST_NOT_ALLOWED", "This host name is not served here.")
        else:
            body = error_body("BAD_REQUEST", "The request could not be understood.")
        return JsonResponse(body, status=400)
    # Without a request context, like the 500 page: a refused request may not even have a usable session.
    return HttpResponseBadRequest(render_to_string("400.html"))


def page_not_found(request, exception):
    if request.path.startswith(_MACHINE_PREFIXES):
        return JsonResponse(error_body("NOT_FOUND", "No such endpoint."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith(_MACHINE_PREFIXES):
        return JsonResponse(
            error_body("SERVER_ERROR", "The server failed. Repeat a payment only with the same out_trade_no."),
            status=500,
        )
    return defaults.server_error(request)
