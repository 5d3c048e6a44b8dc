"""Terminal API base: the view class every device endpoint uses, the async adapter of the endpoints that wait,
and the heartbeat."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.exceptions
from asgiref.sync import sync_to_async
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import permissions, serializers, throttling
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import services, wakeup
from portal.api_errors import log_dependency_error
from portal.db import release_connections
from portal.terminal_auth import DeviceSignatureAuthentication, TerminalPrincipal

# What the Redis cache raises when it is down or hangs (its socket timeouts: CACHE_SOCKET_TIMEOUT).
CACHE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class IsDevice(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, TerminalPrincipal)


class DeviceRateThrottle(throttling.SimpleRateThrottle):
    """Per-device request rate (REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['device']).

    The counters live in the cache. While the cache is unreachable the throttle lets requests through (logged):
    it protects capacity, not money — every request is still device-signed and its nonce recorded in the database —
    and refusing payments because Redis is down would stop the shops for nothing (docs/operations.md, "Outages")."""

    scope = "device"

    def get_cache_key(self, request, view):
        if not isinstance(request.user, TerminalPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.device.pk}

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except CACHE_ERRORS as exc:
            log_dependency_error(exc, "the device throttle", "request let through")
            return True


class TerminalApiView(APIView):
    """Base for `/api/terminal/v1/` endpoints: device-signed, throttled per device, JSON only."""

    authentication_classes = [DeviceSignatureAuthentication]
    permission_classes = [IsDevice]
    throttle_classes = [DeviceRateThrottle]

    @property
    def device(self):
        return self.request.auth


@dataclass
class Wait:
    """Attached by a view to its Response as `response.wait`: keep the answer open up to `seconds` until `refresh`
    (run again after each wake-up of `topic`) reports the object settled; `refresh` returns (data, settled)."""

    topic: str
    seconds: float
    refresh: Callable[[], tuple[Any, bool]]


def waiting_view(view_class: type[APIView]):
    """The view of `view_class` served async: its synchronous work (authentication, the service call, the first
    read) runs in the request's thread as usual; if the Response it returns carries a `Wait`, the request then
    waits as a coroutine for a wake-up (portal.wakeup) holding no database connection, re-reads, and answers with
    the fresh data. Runs under WSGI too (Django adapts async views), where the wait holds the request's thread."""
    sync_view = view_class.as_view()

    def serve(request, *args, **kwargs):
        response = sync_view(request, *args, **kwargs)
        if getattr(response, "wait", None) is not None:
            release_connections()  # in the same hop: the connection is this thread's
        return response

    run = sync_to_async(serve)

    async def view(request, *args, **kwargs):
        since = wakeup.now()  # before the first read: a change committed after it wakes this request
        response = await run(request, *args, **kwargs)
        wait = getattr(response, "wait", None)
        if wait is not None:
            await _wait(response, wait, since)
        return response

    view.cls = sync_view.cls  # drf-spectacular documents the endpoint from the class
    view.initkwargs = sync_view.initkwargs
    return csrf_exempt(view)


def _refresh(wait: Wait) -> tuple[Any, bool]:
    try:
        return wait.refresh()
    finally:
        release_connections()


async def _wait(response: Response, wait: Wait, since: float) -> None:
    deadline = wakeup.now() + wait.seconds
    refresh = sync_to_async(_refresh)
    while (remaining := deadline - wakeup.now()) > 0:
        recheck = wakeup.hub.recheck_seconds()
        generation = wakeup.hub.generation
        woken = await wakeup.hub.wait(
            wait.topic, timeout=remaining if recheck is None else min(remaining, recheck), since=since
        )
        if not woken and recheck is None and wakeup.hub.listening and wakeup.hub.generation == generation:
            return  # the listener was up all along and heard no change: the answer in hand is the current state
        since = wakeup.now()
        response.data, settled = await refresh(wait)
        if settled:
            return


INT64_MAX = 2**63 - 1


class StrictIntegerField(serializers.IntegerField):
    """An integer in the JSON itself: refuses strings, floats and booleans instead of coercing them. Bounded by a
    64-bit column unless a field sets a lower `max_value`, so no number reaches the database it cannot store."""

    default_error_messages = {"invalid": "A whole number (JSON integer) is required; amounts are in fen."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_value", INT64_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class HeartbeatApi(TerminalApiView):
    @extend_schema_serializer(component_name="HeartbeatRequest")
    class InputSerializer(serializers.Serializer):
        sdk_version = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
        app_version = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")

    @extend_schema_serializer(component_name="Heartbeat")
    class OutputSerializer(serializers.Serializer):
        device_id = serializers.CharField()
        store_id = serializers.CharField(source="store.store_id")
        last_seen_at = serializers.DateTimeField()
        sdk_version = serializers.CharField()
        app_version = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, 401: ErrorSerializer, 403: ErrorSerializer},
        summary="Report the terminal is alive and which SDK/app versions it runs",
        tags=["terminal"],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        device = services.device_record_heartbeat(device=self.device, **serializer.validated_data)
        return Response(self.OutputSerializer(device).data)
