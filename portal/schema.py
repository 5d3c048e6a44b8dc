"""OpenAPI description of the terminal authentication scheme (docs/protocols.md, "Terminal API")."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
