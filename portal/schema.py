"""OpenAPI description of the terminal authentication scheme (docs/protocols.md, "Terminal API"), and who may read
the schema and its viewers."""

from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from portal.api_errors import error_body
from portal.permissions import Action, can


class DeviceSignatureScheme(OpenApiAuthenticationExtension):
    target_class = "portal.terminal_auth.DeviceSignatureAuthentication"
    name = "TerminalHmac"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                'TERMINAL-HMAC-SHA256 device="<device_id>",timestamp="<unix s>",nonce="<16-32 chars>",'
                'signature="<base64 HMAC-SHA256(secret, METHOD\\nPATH_WITH_QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n)>"'
            ),
        }


# Answers any terminal call can get from the authentication, permission and throttle layers, and from an outage of
# the database or Redis (portal.api_errors.DependencyOutageMiddleware) (README "Terminal API").
_TERMINAL_ERRORS = {
    "401": "Not authenticated: header missing or invalid, unknown device, timestamp off, bad signature, nonce reused.",
    "403": "Authentic, but not allowed to transact: device, store, merchant or service provider disabled.",
    "429": "Over the per-device rate; see Retry-After.",
    "503": (
        "SERVICE_UNAVAILABLE: the database or Redis is briefly unreachable (or the operation's own 503, e.g. "
        "CHANNEL_BUSY). Repeat after Retry-After; a payment with the same out_trade_no."
    ),
}


def add_terminal_errors(result, generator, request, public):
    """drf-spectacular postprocessing hook: every terminal operation documents the 401/403/429/503 answers."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/terminal/"):
            continue
        for method, operation in operations.items():
            if method == "parameters":
                continue
            for status, description in _TERMINAL_ERRORS.items():
                operation["responses"].setdefault(status, {**error, "description": description})
    return result


def staff_only_unless_public(view, *, viewer: bool):
    """`/api/schema/` and its viewers: open to anyone while API_SCHEMA_PUBLIC (development), otherwise to signed-in
    console staff only. Without a sign-in a viewer redirects to the console's sign-in page and the schema answers a
    JSON 403 LOGIN_REQUIRED (a session is no HTTP authentication scheme a 401 could name); a signed-in user who is
    not console staff gets 403 FORBIDDEN."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        user = getattr(request, "user", None)
        if settings.API_SCHEMA_PUBLIC or can(user, Action.VIEW):
            return view(request, *args, **kwargs)
        signed_in = user is not None and user.is_authenticated
        if viewer:
            if signed_in:
                raise PermissionDenied(_("The API schema is for console staff."))
            return redirect_to_login(request.get_full_path())
        if signed_in:
            return JsonResponse(error_body("FORBIDDEN", "The API schema is for console staff."), status=403)
        return JsonResponse(error_body("LOGIN_REQUIRED", "Sign in to the console to read the API schema."), status=403)

    return wrapped
