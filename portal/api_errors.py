"""One place that turns errors into the terminal API's body: {"code", "message", "details"}, with a fitting status."""

from __future__ import annotations

from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
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
        return None  # a bug: let Django answer 500 and log it

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
# under /api/ and /notify/ (machines read those), the usual HTML pages elsewhere.
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
    return defaults.bad_request(request, exception)


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
