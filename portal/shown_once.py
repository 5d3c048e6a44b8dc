"""A value shown on exactly one page (a new device or API-client secret, a one-time password, recovery codes).

The POST that makes it redirects to a GET page carrying a random token; until then the value waits in the session,
encrypted under FIELD_ENCRYPTION_KEY, for at most five minutes. Taking it removes it: reloading the page neither
shows it again nor repeats the POST. The page that shows it is never cached."""

from __future__ import annotations

import json
import secrets
import time

from django.http import HttpRequest, HttpResponse

from portal.fields import decrypt, encrypt

SESSION_KEY = "shown_once"
SECONDS = 300


def hold(request: HttpRequest, kind: str, value: dict) -> str:
    """Keep `value` for the one page that shows it; returns the token that page is reached with."""
    token = secrets.token_urlsafe(16)
    request.session[SESSION_KEY] = {
        "token": token,
        "kind": kind,
        "value": encrypt(json.dumps(value)),
        "until": time.time() + SECONDS,
    }
    return token


def take(request: HttpRequest, kind: str, token: str) -> dict | None:
    """The value held under `token` for `kind`, once; None when it is another, already shown or too old."""
    held = request.session.get(SESSION_KEY) or {}
    if held.get("token") != token or held.get("kind") != kind:
        return None
    del request.session[SESSION_KEY]
    return json.loads(decrypt(held["value"])) if held["until"] >= time.time() else None


def no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response
