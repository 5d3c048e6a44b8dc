"""/metrics: this node's metrics (portal/metrics.py) in Prometheus's text format, for the operators' scraper only.

Who may read it (settings, docs/metrics.md): with METRICS_TOKEN set, a request that sends it as `Authorization:
Bearer <token>` (compared in constant time; a missing or wrong one gets 401); with METRICS_ALLOWED_NETWORKS set, a
client inside one of them (its address behind the proxies, portal.client_address; else 403); with both, a request
that passes both. With neither, the endpoint is open in development (the embedded default) and answers 404 in
production. The token is never logged nor echoed. With METRICS_ENABLED false it answers 404 to everyone.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from portal import metrics
from portal.client_address import address_in, client_address


def _token_sent(request: HttpRequest, token: str) -> bool:
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode(), token.encode())


def _refusal(request: HttpRequest) -> HttpResponse | None:
    if not settings.METRICS_ENABLED:
        raise Http404  # nothing is recorded: there is nothing to show
    token, networks = settings.METRICS_TOKEN, settings.METRICS_ALLOWED_NETWORKS
    if not token and not networks:
        if settings.IS_PRODUCTION:
            raise Http404  # not configured: production does not show it at all
        return None
    if networks and not address_in(client_address(request), networks):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    if token and not _token_sent(request, token):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return None


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    body, content_type = metrics.exposition(request.headers.get("Accept", ""))
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
