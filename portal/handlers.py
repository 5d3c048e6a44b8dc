"""The ASGI application the web tier serves: the terminal API on a middleware chain of its own, everything else on
Django's full chain.

Under ASGI every method of a synchronous middleware runs in the request's thread, reached by a hop from the event
loop and back; the full chain (sessions, CSRF, authentication, messages, clickjacking) costs a terminal request
about fifteen of them, for nothing a device-signed JSON request uses. `/api/terminal/` requests run
TERMINAL_API_MIDDLEWARE instead: security headers, the language of error messages, Content-Length. Any path outside
that prefix, and a terminal path under a script prefix, take the full chain, which serves them correctly too."""

from __future__ import annotations

import django
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

TERMINAL_API_PREFIX = "/api/terminal/"


class TerminalApiHandler(ASGIHandler):
    """Django's ASGI handler with settings.TERMINAL_API_MIDDLEWARE as its middleware."""

    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds a chain from settings.MIDDLEWARE only. This runs once, at start-up, before any request.
        full_chain = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.TERMINAL_API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full_chain


def application():
    """The ASGI callable: routes by path to the terminal API's handler or to the full one."""
    django.setup(set_prefix=False)
    full = ASGIHandler()
    terminal = TerminalApiHandler()

    async def route(scope, receive, send):
        handler = terminal if scope["type"] == "http" and scope["path"].startswith(TERMINAL_API_PREFIX) else full
        await handler(scope, receive, send)

    return route
