"""Writes of the merchant API: API clients (created and revoked in the console, audited) and the refunds clients
ask for."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import AccessToken, Application

from payments import services as payment_services
from payments.models import Payment, PaymentEvent, Refund
from portal.errors import InvalidInput, InvalidState
from portal.models import Merchant
from portal.services import audit_record

from .models import MerchantApiClient


def api_client_create(
    *, merchant: Merchant, name: str, actor: AbstractBaseUser | None
) -> tuple[MerchantApiClient, str]:
    """A new client of `merchant` and its secret, which exists in clear only in this return value: the application
    keeps a hash of it."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput(details={"name": "1-100 characters."})
    secret = generate_client_secret()
    with transaction.atomic():
        application = Application.objects.create(
            name=f"{merchant.name}: {name}"[:255],
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            client_secret=secret,
            hash_client_secret=True,
        )
        client = MerchantApiClient.objects.create(
            merchant=merchant, application=application, name=name, created_by=actor
        )
        audit_record(
            actor=actor,
            action="merchant_api.client_create",
            obj=client,
            details={"name": name, "client_id": application.client_id},
        )
    return client, secret


def api_client_revoke(*, client: MerchantApiClient, actor: AbstractBaseUser | None) -> MerchantApiClient:
    """Stop a client at once: its tokens are deleted (a request with one is answered 401 from now on) and its secret
    is replaced by a random one nobody is shown, so no new token can be had. The client stays listed, revoked."""
    with transaction.atomic():
        client = MerchantApiClient.objects.select_for_update().select_related("application").get(pk=client.pk)
        if not client.is_active:
            raise InvalidState("This client is already revoked.", code="CLIENT_REVOKED")
        client.is_active = False
        client.revoked_at = timezone.now()
        client.save(update_fields=["is_active", "revoked_at"])
        application = client.application
        application.client_secret = generate_client_secret()
        application.save(update_fields=["client_secret", "updated"])
        tokens, _ = AccessToken.objects.filter(application=application).delete()
        audit_record(
            actor=actor,
            action="merchant_api.client_revoke",
            obj=client,
            details={"name": client.name, "client_id": application.client_id, "tokens_deleted": tokens},
        )
    return client


def refund_create(
    *, client: MerchantApiClient, payment: Payment, refund_fee: int, reason: str, request_key: str
) -> tuple[Refund, bool]:
    """A refund asked for by an API client, through `payments.services.refund_create` (which reserves the amount and
    makes the request key idempotent per payment), recorded under the client's name. Returns (refund, created):
    created is False when `request_key` had already made this refund. Whether it had is read under the payment's
    row lock, which refund_create takes again, so concurrent requests with one key agree on which one created it."""
    if not request_key:
        raise InvalidInput(details={"request_key": "Required: in the body or the Idempotency-Key header."})
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk, merchant_id=client.merchant_id)
        replay = locked.refunds.filter(request_key=request_key).exists()
        refund = payment_services.refund_create(
            payment=locked,
            refund_fee=refund_fee,
            reason=reason,
            user=None,
            actor_label=client.actor_label,
            request_key=request_key,
            actor=PaymentEvent.Actor.API,
        )
    return refund, not replay
