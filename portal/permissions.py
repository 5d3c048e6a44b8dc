"""What each console role may do. Views ask `can(user, Action.X)`; queries are scoped separately by
`portal.selectors.scope_queryset` (which rows a user sees) — both are needed on every page."""

from __future__ import annotations

import enum

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _

from portal.models import StaffMembership
from portal.selectors import membership_of


class Action(enum.StrEnum):
    VIEW = "view"
    MANAGE_MERCHANTS = "manage_merchants"  # onboard, edit, credentials, suspend (provider admins)
    MANAGE_STORES = "manage_stores"  # stores and devices
    REFUND = "refund"
    REVERSE = "reverse"
    REFRESH = "refresh"  # ask the channel about a payment or PayScore order now
    RESOLVE = "resolve"  # settle an ATTENTION payment: service-provider staff's work, not the merchant's
    PAYSCORE = "payscore"  # complete / cancel / sync PayScore orders
    ERASE_MEMBER = "erase_member"
    VIEW_AUDIT = "view_audit"
    RECONCILE = "reconcile"  # upload bills, explain differences: service-provider staff settle, merchants only look
    INTEGRATIONS = "integrations"  # webhook endpoints and merchant API clients (provider and merchant admins)
    MANAGE_USERS = "manage_users"  # console users and their roles, within the admin's own provider or merchant
    ALERT_CHANNELS = "alert_channels"  # the chat robots alerts are sent to (provider and merchant admins)


Role = StaffMembership.Role
ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    Role.PROVIDER_ADMIN: frozenset(Action),
    Role.PROVIDER_REVIEWER: frozenset(
        {Action.VIEW, Action.REFRESH, Action.RESOLVE, Action.VIEW_AUDIT, Action.RECONCILE}
    ),
    Role.MERCHANT_ADMIN: frozenset(Action) - {Action.MANAGE_MERCHANTS, Action.RESOLVE, Action.RECONCILE},
    Role.MERCHANT_STAFF: frozenset({Action.VIEW}),
}


# Why `require` refused, in the user's language (the 403 page shows it).
DENIED = {
    Action.VIEW: _("Your role cannot use the console."),
    Action.MANAGE_MERCHANTS: _("Your role cannot manage merchants."),
    Action.MANAGE_STORES: _("Your role cannot manage stores and devices."),
    Action.REFUND: _("Your role cannot refund payments."),
    Action.REVERSE: _("Your role cannot reverse payments."),
    Action.REFRESH: _("Your role cannot ask the channel for an order's status."),
    Action.RESOLVE: _("Your role cannot settle payments that need attention."),
    Action.PAYSCORE: _("Your role cannot complete, cancel or sync PayScore orders."),
    Action.ERASE_MEMBER: _("Your role cannot erase members' personal data."),
    Action.VIEW_AUDIT: _("Your role cannot view the audit log."),
    Action.RECONCILE: _("Your role cannot reconcile bills or explain differences."),
    Action.INTEGRATIONS: _("Your role cannot manage webhooks and API clients."),
    Action.MANAGE_USERS: _("Your role cannot manage users."),
    Action.ALERT_CHANNELS: _("Your role cannot manage the robots alerts are sent to."),
}


def can(user, action: Action) -> bool:
    if user is None or not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    membership = membership_of(user)
    return membership is not None and action in ROLE_ACTIONS[membership.role]


def require(user, action: Action) -> None:
    if not can(user, action):
        raise PermissionDenied(DENIED[action])


def allowed_actions(user) -> set[str]:
    """For templates: {"refund", "reverse", …} the user may do."""
    return {action.value for action in Action if can(user, action)}
