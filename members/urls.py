"""Member endpoints. `terminal_v1` is included under /api/terminal/v1/ by portal/urls.py."""

from django.urls import path

from members import api

terminal_v1 = [
    path("members/identify", api.MemberIdentifyApi.as_view(), name="member-identify"),
    path("members/activations", api.MemberActivationApi.as_view(), name="member-activation"),
]
