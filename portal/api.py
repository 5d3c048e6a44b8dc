"""Terminal API base: the view class every device endpoint uses, and the heartbeat."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import permissions, serializers, throttling
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import services
from portal.terminal_auth import DeviceSignatureAuthentication, TerminalPrincipal


class IsDevice(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, TerminalPrincipal)


class DeviceRateThrottle(throttling.SimpleRateThrottle):
    """Per-device request rate (REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['device'])."""

    scope = "device"

    def get_cache_key(self, request, view):
        if not isinstance(request.user, TerminalPrincipal):
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.device.pk}


class TerminalApiView(APIView):
    """Base for `/api/terminal/v1/` endpoints: device-signed, throttled per device, JSON only."""

    authentication_classes = [DeviceSignatureAuthentication]
    permission_classes = [IsDevice]
    throttle_classes = [DeviceRateThrottle]

    @property
    def device(self):
        return self.request.auth


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
