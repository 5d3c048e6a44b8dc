"""OpenAPI description of the terminal authentication scheme (DESIGN §7)."""

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
