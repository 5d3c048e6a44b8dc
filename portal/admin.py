"""Django admin for platform superusers. Credentials are write-only: the form shows which are configured, never
their values, and every entry goes through `services.credentials_update` (validation + audit)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse

from portal import services
from portal.errors import InvalidInput
from portal.forms import AdminSignInForm
from portal.models import (
    AuditLog,
    ChannelCredentials,
    Device,
    Merchant,
    ServiceProvider,
    StaffMembership,
    Store,
)
from portal.selectors import scope_queryset

admin.site.login_form = AdminSignInForm  # the same limit on failed sign-ins as the console


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only the services write (orders, their events, raw notifications): shown, never added, changed or
    deleted here, and to non-superusers only within their scope (`scope_path`: the lookup to the merchant)."""

    scope_path = "merchant"

    def get_queryset(self, request):
        return scope_queryset(super().get_queryset(request), request.user, self.scope_path)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # financial records and their history are kept


class CredentialsForm(forms.ModelForm):
    """Secret inputs never render a value; leaving one blank keeps what is stored."""

    wechat_api_v2_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    wechat_api_v3_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    wechat_private_key = forms.FileField(required=False, help_text="apiclient_key.pem")
    wechat_certificate = forms.FileField(required=False, help_text="apiclient_cert.pem")
    wechat_platform_certificates = forms.FileField(required=False, help_text="Platform certificate(s), PEM")
    wechat_platform_public_key = forms.FileField(required=False, help_text="Platform public key, PEM")
    wechat_platform_public_key_id = forms.CharField(required=False)
    umpay_private_key = forms.FileField(required=False, help_text="UMF private key (*.key.p8)")
    umpay_certificate = forms.FileField(required=False, help_text="UMF certificate (*.cert.crt)")

    class Meta:
        model = ChannelCredentials
        fields = ["provider", "merchant"]

    def clean(self):
        cleaned = super().clean()
        owner = cleaned.get("provider") or cleaned.get("merchant")
        if owner is None or (cleaned.get("provider") and cleaned.get("merchant")):
            raise ValidationError("Choose exactly one owner: a provider or a merchant.")
        values = {}
        for name in services.CREDENTIAL_INPUTS:
            value = cleaned.get(name)
            if hasattr(value, "read"):
                value = value.read()
            if value:
                values[name] = value
        self.credential_values = values
        self.owner = owner
        try:
            services.credentials_check(owner=owner, values=values)
        except InvalidInput as exc:
            for field, message in exc.details.items():
                self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(ChannelCredentials)
class ChannelCredentialsAdmin(admin.ModelAdmin):
    form = CredentialsForm
    list_display = ("__str__", "wechat_cert_serial", "wechat_platform_public_key_id", "updated_at")
    readonly_fields = ("configured_credentials", "wechat_cert_serial", "updated_at")
    search_fields = ("provider__name", "merchant__name")

    @admin.display(description="Configured")
    def configured_credentials(self, obj: ChannelCredentials) -> str:
        if obj.pk is None:
            return "—"
        return ", ".join(f"{name}: {'yes' if ok else 'no'}" for name, ok in obj.configured().items())

    def save_model(self, request, obj, form, change):
        saved = services.credentials_update(owner=form.owner, values=form.credential_values, actor=request.user)
        obj.pk = saved.pk


@admin.register(ServiceProvider)
class ServiceProviderAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "umpay_acq_sp_id", "wechat_mch_id", "is_active")
    search_fields = ("name", "code", "umpay_acq_sp_id", "wechat_mch_id")
    list_filter = ("is_active",)


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ("name", "provider", "channel", "status", "mch_id", "sub_mch_id", "umpay_acq_mer_id")
    list_filter = ("channel", "status", "provider")
    search_fields = ("name", "mch_id", "sub_mch_id", "umpay_acq_mer_id", "appid")
    actions = ("suspend", "resume")

    @admin.action(description="Suspend selected merchants")
    def suspend(self, request, queryset):
        for merchant in queryset:
            services.merchant_set_status(merchant=merchant, status=Merchant.Status.SUSPENDED, actor=request.user)

    @admin.action(description="Resume selected merchants")
    def resume(self, request, queryset):
        for merchant in queryset:
            services.merchant_set_status(merchant=merchant, status=Merchant.Status.ACTIVE, actor=request.user)


class DeviceRegisterForm(forms.Form):
    device_id = forms.CharField(max_length=32, required=False, help_text="Leave blank to generate one.")
    name = forms.CharField(max_length=64, required=False)


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ("store_id", "name", "merchant", "area_code", "is_active")
    list_filter = ("is_active", "merchant")
    search_fields = ("store_id", "name", "merchant__name")
    actions = ("register_device",)

    @admin.action(description="Register a device in the selected store")
    def register_device(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one store.", level=messages.ERROR)
            return None
        store = queryset.get()
        form = DeviceRegisterForm(request.POST if "register" in request.POST else None)
        if form.is_bound and form.is_valid():
            try:
                device, secret = services.device_register(store=store, actor=request.user, **form.cleaned_data)
            except InvalidInput as exc:
                for field, message in exc.details.items():
                    form.add_error(field if field in form.fields else None, message)
            else:
                return TemplateResponse(
                    request,
                    "admin/portal/device_secret.html",
                    {"device": device, "secret": secret, "title": "Device secret"},
                )
        return TemplateResponse(
            request,
            "admin/portal/device_register.html",
            {"form": form, "store": store, "title": "Register device", "action": "register_device"},
        )


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("device_id", "name", "store", "is_active", "last_seen_at", "sdk_version", "app_version")
    list_filter = ("is_active", "store__merchant")
    search_fields = ("device_id", "name", "store__store_id", "store__name")
    # The secret is never editable or visible here: register / rotate show it once.
    fields = (
        "device_id",
        "name",
        "store",
        "is_active",
        "last_seen_at",
        "sdk_version",
        "app_version",
        "secret_rotated_at",
        "created_at",
    )
    readonly_fields = (
        "device_id",
        "store",
        "is_active",
        "last_seen_at",
        "sdk_version",
        "app_version",
        "secret_rotated_at",
        "created_at",
    )
    actions = ("rotate_secret", "disable", "enable")

    def has_add_permission(self, request) -> bool:
        return False  # devices are registered from their store (action) so the secret is shown once

    @admin.action(description="Rotate the secret (shows the new secret once)")
    def rotate_secret(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one device.", level=messages.ERROR)
            return None
        device = queryset.get()
        secret = services.device_rotate_secret(device=device, actor=request.user)
        return TemplateResponse(
            request, "admin/portal/device_secret.html", {"device": device, "secret": secret, "title": "Device secret"}
        )

    @admin.action(description="Disable selected devices")
    def disable(self, request, queryset):
        for device in queryset:
            services.device_set_active(device=device, is_active=False, actor=request.user)

    @admin.action(description="Enable selected devices")
    def enable(self, request, queryset):
        for device in queryset:
            services.device_set_active(device=device, is_active=True, actor=request.user)


@admin.register(StaffMembership)
class StaffMembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "role", "provider", "merchant")
    list_filter = ("role",)
    search_fields = ("user__username", "provider__name", "merchant__name")


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor_label", "action", "object_type", "object_id", "merchant")
    list_filter = ("action", "object_type")
    search_fields = ("actor_label", "action", "object_id")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
