"""Console users and their roles: who may manage whom, and every change to a staff account.

An admin manages staff within their own scope only: a provider admin the staff of their provider and of its
merchants, a merchant admin the staff of their own merchant, a platform superuser everyone's. Nobody grants a role
that can do more than their own (`grantable_roles`), changes their own account here, touches a superuser's, or
leaves a provider or merchant without an active admin. These rules live here, not in the forms: every entry point
is held to them. Generated passwords are returned once to the caller and stored only as Django's password hash;
audit rows name the account and the change, never a password or a second-factor secret.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_noop
from django_otp import devices_for_user

from portal.errors import Forbidden, InvalidInput, InvalidState
from portal.models import AuditLog, Merchant, ServiceProvider, StaffMembership
from portal.permissions import ROLE_ACTIONS, Action, can
from portal.selectors import membership_of
from portal.services import audit_record

Role = StaffMembership.Role
ADMIN_ROLES = (Role.PROVIDER_ADMIN, Role.MERCHANT_ADMIN)
# Generated passwords: 16 characters without look-alikes (0/O, 1/l/I), in groups of four for reading aloud.
PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


# --- who may manage whom ---------------------------------------------------------------------------------------------


def grantable_roles(actor) -> list[str]:
    """The roles `actor` may give: those that can do nothing the actor's own role cannot. Empty for anyone who may
    not manage users (reviewers, merchant staff, strangers)."""
    if not can(actor, Action.MANAGE_USERS) or not actor.is_active:
        return []
    if actor.is_superuser:
        return list(Role.values)
    own = ROLE_ACTIONS[membership_of(actor).role]
    return [role for role in Role.values if ROLE_ACTIONS[role] <= own]


def staff_visible_to(actor) -> QuerySet[StaffMembership]:
    """The memberships `actor` may see and manage on the users page."""
    memberships = StaffMembership.objects.select_related("user", "provider", "merchant")
    if not grantable_roles(actor):
        return memberships.none()
    if actor.is_superuser:
        return memberships.all()
    own = membership_of(actor)
    if own.is_provider_role:
        return memberships.filter(Q(provider_id=own.provider_id) | Q(merchant__provider_id=own.provider_id))
    return memberships.filter(merchant_id=own.merchant_id)


def manageable_owners(actor) -> list[ServiceProvider | Merchant]:
    """The providers and merchants `actor` may add staff to, the provider first."""
    if not grantable_roles(actor):
        return []
    if actor.is_superuser:
        return [*ServiceProvider.objects.all(), *Merchant.objects.select_related("provider")]
    own = membership_of(actor)
    if own.is_provider_role:
        return [own.provider, *Merchant.objects.filter(provider_id=own.provider_id)]
    return [own.merchant]


def _may_manage_owner(actor, provider: ServiceProvider | None, merchant: Merchant | None) -> bool:
    if actor.is_superuser:
        return True
    own = membership_of(actor)
    if own.is_provider_role:
        return (provider is not None and provider.pk == own.provider_id) or (
            merchant is not None and merchant.provider_id == own.provider_id
        )
    return provider is None and merchant is not None and merchant.pk == own.merchant_id


def _require_manager(actor) -> None:
    if not grantable_roles(actor):
        raise Forbidden(gettext_noop("Your role cannot manage users."))


def _locked_target(actor, membership: StaffMembership) -> StaffMembership:
    """The membership, locked and read afresh, once `actor` is known to be allowed to manage it."""
    _require_manager(actor)
    target = StaffMembership.objects.select_for_update().select_related("user").get(pk=membership.pk)
    if target.user_id == actor.pk:
        raise Forbidden(gettext_noop("You cannot change your own account here."))
    if target.user.is_superuser and not actor.is_superuser:
        raise Forbidden(gettext_noop("Only a platform administrator can change this account."))
    if not _may_manage_owner(actor, target.provider, target.merchant) or target.role not in grantable_roles(actor):
        raise Forbidden(gettext_noop("You cannot manage this user."))
    return target


def _ensure_another_admin(target: StaffMembership) -> None:
    """Refuse to disable or demote the last active admin of a provider or merchant (the other admins are locked too,
    so two admins demoting each other at once cannot both succeed)."""
    if target.role not in ADMIN_ROLES or not target.user.is_active:
        return
    others = StaffMembership.objects.select_for_update().filter(
        role=target.role, provider=target.provider_id, merchant=target.merchant_id, user__is_active=True
    )
    if not list(others.exclude(pk=target.pk).values_list("pk", flat=True)):
        raise InvalidState(gettext_noop("This is the last active admin: add or enable another admin first."))


def new_password() -> str:
    characters = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(16))
    return "-".join(characters[index : index + 4] for index in range(0, 16, 4))


def audit_account(
    *, actor: AbstractBaseUser | None, action: str, user: AbstractBaseUser, details: Mapping | None = None
) -> AuditLog:
    """An audit row about a staff account, filed under its provider or merchant so their admins see it."""
    membership = membership_of(user)
    entry = audit_record(
        actor=actor,
        action=action,
        obj=membership or user,
        details={"username": user.get_username(), **(details or {})},
    )
    if membership is not None and membership.provider_id and entry.provider_id is None:
        entry.provider_id = membership.provider_id
        entry.save(update_fields=["provider"])
    return entry


# --- services --------------------------------------------------------------------------------------------------------


@transaction.atomic
def staff_create(
    *,
    actor,
    username: str,
    name: str,
    role: str,
    provider: ServiceProvider | None = None,
    merchant: Merchant | None = None,
) -> tuple[StaffMembership, str]:
    """A new console user with one role at a provider (provider roles) or a merchant (merchant roles). Returns the
    membership and the generated initial password, which the user must change at their first sign-in."""
    _require_manager(actor)
    username, name = username.strip(), name.strip()
    errors: dict[str, str] = {}
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        errors["username"] = gettext_noop("Use letters, digits and @ . + - _ only.")
    if not username or len(username) > 150:
        errors["username"] = gettext_noop("Enter a username of at most 150 characters.")
    elif get_user_model().objects.filter(username__iexact=username).exists():
        errors["username"] = gettext_noop("This username is already taken.")
    if not name or len(name) > 150:
        errors["name"] = gettext_noop("Enter a name of at most 150 characters.")
    if role not in Role.values:
        errors["role"] = gettext_noop("Choose a role.")
    if errors:
        raise InvalidInput(details=errors)
    if role not in grantable_roles(actor):
        raise Forbidden(gettext_noop("You cannot grant this role."))
    if (provider is None) == (merchant is None) or (role in StaffMembership.PROVIDER_ROLES) != (provider is not None):
        mismatch = gettext_noop("A provider role belongs to a service provider, a merchant role to a merchant.")
        raise InvalidInput(details={"owner": mismatch})
    if not _may_manage_owner(actor, provider, merchant):
        raise Forbidden(gettext_noop("You cannot manage the staff of this provider or merchant."))
    password = new_password()
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=username, password=password, first_name=name)
    except IntegrityError:
        raise InvalidInput(details={"username": gettext_noop("This username is already taken.")}) from None
    membership = StaffMembership.objects.create(
        user=user, role=role, provider=provider, merchant=merchant, must_change_password=True
    )
    audit_account(actor=actor, action="staff.created", user=user, details={"role": role})
    return membership, password


@transaction.atomic
def staff_update_role(*, actor, membership: StaffMembership, role: str) -> StaffMembership:
    """Another role of the same kind (provider roles stay at the provider, merchant roles at the merchant)."""
    target = _locked_target(actor, membership)
    if role not in Role.values or (role in StaffMembership.PROVIDER_ROLES) != target.is_provider_role:
        raise InvalidInput(details={"role": gettext_noop("Choose a role of the same provider or merchant.")})
    if role not in grantable_roles(actor):
        raise Forbidden(gettext_noop("You cannot grant this role."))
    if role == target.role:
        return target
    _ensure_another_admin(target)
    previous, target.role = target.role, role
    target.save(update_fields=["role"])
    audit_account(actor=actor, action="staff.role_changed", user=target.user, details={"from": previous, "to": role})
    return target


@transaction.atomic
def staff_set_active(*, actor, membership: StaffMembership, active: bool) -> StaffMembership:
    """Disable (the user is signed out at their next request and cannot sign in) or enable again."""
    target = _locked_target(actor, membership)
    if target.user.is_active == active:
        return target
    if not active:
        _ensure_another_admin(target)
    target.user.is_active = active
    target.user.save(update_fields=["is_active"])
    audit_account(actor=actor, action="staff.enabled" if active else "staff.disabled", user=target.user)
    return target


@transaction.atomic
def staff_reset_password(*, actor, membership: StaffMembership) -> str:
    """A new one-time password, returned once; the user's sessions end and they must change it at the next sign-in."""
    target = _locked_target(actor, membership)
    password = new_password()
    target.user.set_password(password)
    target.user.save(update_fields=["password"])
    target.must_change_password = True
    target.save(update_fields=["must_change_password"])
    audit_account(actor=actor, action="staff.password_reset", user=target.user)
    return password


@transaction.atomic
def staff_reset_two_factor(*, actor, membership: StaffMembership) -> StaffMembership:
    """Remove the user's authenticator and recovery codes: sessions they verified are no longer verified, and a user
    whose role requires a second factor must enrol again at the next request."""
    target = _locked_target(actor, membership)
    for device in list(devices_for_user(target.user, confirmed=None)):
        device.delete()
    audit_account(actor=actor, action="staff.two_factor_reset", user=target.user)
    return target


@transaction.atomic
def staff_password_changed(*, user: AbstractBaseUser) -> None:
    """The user chose a new password themselves: a one-time password no longer stands in the way."""
    StaffMembership.objects.filter(user=user, must_change_password=True).update(must_change_password=False)
    audit_account(actor=user, action="staff.password_changed", user=user)
