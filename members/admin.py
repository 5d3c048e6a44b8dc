"""Django admin for members and their events. Rows are written only by the services (terminal API, erasure,
retention), so everything here is read-only except the audited "erase personal data" action. Non-superusers see
only what `scope_queryset` allows."""

from __future__ import annotations

from django.contrib import admin, messages

from members import services
from members.models import Member, MemberEvent
from portal.selectors import scope_queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    scope_path = "merchant"

    def get_queryset(self, request):
        return scope_queryset(super().get_queryset(request), request.user, self.scope_path)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # erasure keeps the row; deleting would lose the visit counts


class MemberEventInline(admin.TabularInline):
    model = MemberEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "kind", "store", "device", "return_code", "err_code", "err_message", "next_action"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Member)
class MemberAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "merchant",
        "nickname",
        "openid",
        "visit_count",
        "card_activated",
        "first_seen_at",
        "last_seen_at",
        "anonymised_at",
    ]
    list_filter = ["card_activated", "anonymised_reason", ("anonymised_at", admin.EmptyFieldListFilter), "merchant"]
    search_fields = ["=openid", "=sub_openid", "=unionid", "nickname"]
    date_hierarchy = "last_seen_at"
    list_select_related = ["merchant"]
    readonly_fields = [field.name for field in Member._meta.fields]
    inlines = [MemberEventInline]
    actions = ["erase_personal_data"]

    @admin.action(description="Erase personal data (keeps visits; audited)", permissions=["erase"])
    def erase_personal_data(self, request, queryset):
        erased = 0
        for member in queryset:
            if not member.is_anonymised:
                services.member_erase(member=member, actor=request.user)
                erased += 1
        self.message_user(request, f"{erased} member(s) erased.", messages.SUCCESS)

    def has_erase_permission(self, request) -> bool:
        return request.user.has_perm("members.change_member")


@admin.register(MemberEvent)
class MemberEventAdmin(ReadOnlyAdmin):
    scope_path = "member__merchant"
    list_display = ["created_at", "kind", "member", "store", "device", "return_code", "err_code", "next_action"]
    list_filter = ["kind", "next_action", "created_at"]
    search_fields = ["=member__openid", "err_code", "return_code"]
    list_select_related = ["member", "store", "device"]
    readonly_fields = [field.name for field in MemberEvent._meta.fields]
