"""Terminal API for face-identified members (刷脸会员): thin views over `members.services`."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response

from members import services
from members.activation import NextAction
from members.models import Member
from portal.api import ErrorSerializer, TerminalApiView

_openid_chars = RegexValidator(r"^[0-9A-Za-z_\-]+$", "Only 0-9 A-Z a-z _ - are allowed.")
_code_chars = RegexValidator(r"^[0-9A-Za-z_]+$", "Only 0-9 A-Z a-z _ are allowed.")


class MemberOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Member
        fields = [
            "id",
            "openid",
            "sub_openid",
            "unionid",
            "nickname",
            "first_seen_at",
            "last_seen_at",
            "visit_count",
            "card_activated",
            "activated_at",
        ]


class MemberIdentifyApi(TerminalApiView):
    @extend_schema_serializer(component_name="MemberIdentifyInput")
    class InputSerializer(serializers.Serializer):
        openid = serializers.CharField(
            max_length=128, validators=[_openid_chars], help_text="openid from getWxpayfaceUserInfo."
        )
        sub_openid = serializers.CharField(
            max_length=128,
            required=False,
            allow_blank=True,
            default="",
            validators=[_openid_chars],
            help_text="sub_openid from getWxpayfaceUserInfo (service-provider mode).",
        )
        nickname = serializers.CharField(
            max_length=128, required=False, allow_blank=True, default="", help_text="nickname from the SDK."
        )
        face_sid = serializers.CharField(
            max_length=128,
            required=False,
            allow_blank=True,
            default="",
            validators=[RegexValidator(r"^\S+$", "No whitespace.")],
            help_text="The `token` getWxpayfaceUserInfo returns when called with ask_unionid=1.",
        )
        ask_unionid = serializers.BooleanField(
            required=False, default=False, help_text="Resolve the unionid through facemch (needs face_sid)."
        )

    @extend_schema_serializer(component_name="MemberIdentifyOutput")
    class OutputSerializer(serializers.Serializer):
        is_member = serializers.BooleanField(help_text="The member was already known before this visit.")
        member = MemberOutputSerializer()
        visits = serializers.IntegerField(help_text="Identifications so far, this one included.")
        activated = serializers.BooleanField(help_text="The member card is activated.")
        offer_activation = serializers.BooleanField(help_text="Offer activateWxpayfaceMember (not yet activated).")
        unionid_lookup = serializers.ChoiceField(choices=[c.value for c in services.UnionidLookup])

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, 400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer},
        summary="Record a face identification (getWxpayfaceUserInfo) and say whether to offer card activation",
        tags=["terminal"],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.member_identify(device=self.device, data=services.IdentifyInput(**serializer.validated_data))
        member = result.member
        body = {
            "is_member": result.is_returning,
            "member": member,
            "visits": member.visit_count,
            "activated": member.card_activated,
            "offer_activation": not member.card_activated,
            "unionid_lookup": result.unionid_lookup.value,
        }
        return Response(self.OutputSerializer(body).data)


class MemberActivationApi(TerminalApiView):
    @extend_schema_serializer(component_name="MemberActivationInput")
    class InputSerializer(serializers.Serializer):
        openid = serializers.CharField(max_length=128, validators=[_openid_chars])
        return_code = serializers.CharField(
            max_length=32,
            validators=[_code_chars],
            help_text="activateWxpayfaceMember return_code: SUCCESS, ERROR, PARAM_ERROR, SYSTEMERROR, or its own "
            "codes PARAMS_INVALID, MEMBER_INFO_EXP_ERROR, GET_MEMBER_INFO_FAIL_ERROR, NOT_CONFIG_MEMBER_ERROR.",
        )
        err_code = serializers.CharField(
            max_length=32,
            required=False,
            allow_blank=True,
            allow_null=True,
            default="",
            validators=[_code_chars],
            help_text="The SDK's secondary err_code (integer, e.g. 271378620), if any.",
        )
        return_msg = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")

    @extend_schema_serializer(component_name="MemberActivationOutput")
    class OutputSerializer(serializers.Serializer):
        activated = serializers.BooleanField(help_text="The member card is activated (now or before).")
        code = serializers.CharField(help_text="The code that decided next_action.")
        next_action = serializers.ChoiceField(choices=[a.value for a in NextAction])
        message = serializers.CharField()
        retry_after_ms = serializers.IntegerField()
        member = MemberOutputSerializer()

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, 400: ErrorSerializer, 404: ErrorSerializer},
        summary="Record activateWxpayfaceMember's result and say what to do next",
        tags=["terminal"],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        outcome = services.member_activation_record(
            device=self.device,
            openid=data["openid"],
            return_code=data["return_code"],
            err_code=data["err_code"] or "",
            return_msg=data["return_msg"],
        )
        body = {
            "activated": outcome.member.card_activated,
            "code": outcome.code,
            "next_action": outcome.guidance.next_action.value,
            "message": outcome.guidance.message,
            "retry_after_ms": outcome.guidance.retry_after_ms,
            "member": outcome.member,
        }
        return Response(self.OutputSerializer(body).data)
