"""How a request reaches the merchant API: a bearer access token in the Authorization header (OAuth2 client
credentials, django-oauth-toolkit), the token's application resolved to an active API client of an active merchant,
and a request rate per client. The token endpoint is bounded per client address instead.

401 answers say the token is missing, malformed, unknown, expired or revoked (get a new one); 403 answers say the
client is genuine but its merchant or service provider is suspended. Both come in the API's error body."""

from __future__ import annotations

from django.conf import settings
from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from rest_framework import exceptions, permissions, throttling

from portal.client_address import client_address

from . import selectors


class ApiAuthFailed(exceptions.AuthenticationFailed):
    """401 with a stable code."""

    def __init__(self, code: str, message: str):
        super().__init__(detail=message, code=code)
        self.error_code = code


class ApiForbidden(exceptions.PermissionDenied):
    """403 with a stable code."""

    def __init__(self, code: str, message: str):
        super().__init__(detail=message, code=code)
        self.error_code = code


TOKEN_INVALID = ("TOKEN_INVALID", "The access token is unknown, expired or revoked; get a new one from oauth/token.")


class MerchantTokenAuthentication(OAuth2Authentication):
    """`Authorization: Bearer <access token>`, checked by django-oauth-toolkit (known, unexpired). Returns
    (None, AccessToken): an API client is no console user."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            raise ApiAuthFailed(
                "AUTH_HEADER_MISSING", "This API needs `Authorization: Bearer <access token>` (from oauth/token)."
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiAuthFailed("AUTH_HEADER_INVALID", "Authorization must be `Bearer <access token>`.")
        authenticated = super().authenticate(request)
        if authenticated is None:
            raise ApiAuthFailed(*TOKEN_INVALID)
        return authenticated


class IsActiveMerchantClient(permissions.BasePermission):
    """The token's application must belong to an active API client whose merchant and service provider are active.
    The client is handed to the view as `view.client`; every query of the view is filtered by its merchant."""

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if token is None:
            return False
        client = selectors.active_client(application_id=token.application_id)
        if client is None:  # revoked while this token was being issued: its tokens are deleted on revocation
            raise ApiAuthFailed(*TOKEN_INVALID)
        merchant = client.merchant
        if not merchant.is_active:
            raise ApiForbidden("MERCHANT_SUSPENDED", "This client's merchant is suspended.")
        if merchant.provider is not None and not merchant.provider.is_active:
            raise ApiForbidden("PROVIDER_SUSPENDED", "This client's service provider is deactivated.")
        view.client = client
        return True


class ClientRateThrottle(throttling.SimpleRateThrottle):
    """Requests per API client, all its tokens together (MERCHANT_API_THROTTLE_RATE)."""

    scope = "merchant_api"

    def get_rate(self) -> str:
        return settings.MERCHANT_API_THROTTLE_RATE

    def get_cache_key(self, request, view) -> str | None:
        if request.auth is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.auth.application_id}


class TokenAddressThrottle(throttling.SimpleRateThrottle):
    """Token requests per client address, behind the trusted proxies (MERCHANT_API_TOKEN_THROTTLE_RATE): every one
    checks a secret against its slow hash, right or wrong, so guessing and load are bounded alike."""

    scope = "merchant_api_token"

    def get_rate(self) -> str:
        return settings.MERCHANT_API_TOKEN_THROTTLE_RATE

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}
