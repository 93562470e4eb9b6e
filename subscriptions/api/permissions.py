"""402 ``subscription_inactive`` for tenants whose subscription does not allow use.

A DRF permission (so it runs after the API key is checked: a stranger gets 401, not a hint
about the tenant's billing). Views a tenant needs to recover — reading its subscription and
invoices, changing plan, paying — set ``allow_inactive_subscription = True``.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.errors import ApplicationError
from subscriptions.access import subscription_access_allows


class PaymentRequired(ApplicationError):
    status_code = 402
    default_code = "subscription_inactive"
    default_message = "The subscription is not active."


class SubscriptionActive(BasePermission):
    """Authenticated (as ``IsAuthenticated``), and on a tenant whose subscription allows use.

    One class for both, the default of every tenant view: one permission check per request.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        user: Any = request.user
        if not (user and user.is_authenticated):
            return False  # DRF answers 401 (or 403 without an authenticator)
        if getattr(view, "allow_inactive_subscription", False):
            return True
        tenant_id = getattr(user, "tenant_id", None)
        if tenant_id is None:
            return True  # not a tenant request (public host)
        allowed, access = subscription_access_allows(tenant_id=tenant_id)
        if not allowed:
            raise PaymentRequired(
                f"The subscription is {access.status}: change plan or pay to continue.",
                details={"status": access.status},
            )
        return True
