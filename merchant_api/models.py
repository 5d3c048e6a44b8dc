"""API clients of merchants' own servers (POS, ERP): each is an OAuth2 application of django-oauth-toolkit that may
use the client-credentials grant only, tied to one merchant. Its secret is kept hashed (shown once, when created);
its access tokens expire, and revoking the client deletes them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import Application

from portal.models import Merchant


class MerchantApiClient(models.Model):
    merchant = models.ForeignKey(
        Merchant, on_delete=models.PROTECT, related_name="api_clients", verbose_name=_("Merchant")
    )
    application = models.OneToOneField(
        Application,
        on_delete=models.PROTECT,
        related_name="merchant_api_client",
        help_text="The OAuth2 application: client_id, the hashed secret, and the tokens issued to it.",
    )
    name = models.CharField(_("Name"), max_length=100, help_text=_("What the client is, e.g. the POS system."))
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="api_client_revoked_is_inactive",
                condition=models.Q(is_active=True, revoked_at__isnull=True)
                | models.Q(is_active=False, revoked_at__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.merchant_id})"

    @property
    def client_id(self) -> str:
        return self.application.client_id

    @property
    def actor_label(self) -> str:
        """How the audit log and the evidence name this client (it has no console user)."""
        return f"api:{self.application.client_id} ({self.name})"[:150]
