"""The event types a webhook endpoint can subscribe to: every domain event type we emit.

An endpoint whose ``event_types`` is empty receives all of them. Add a type here when a
service starts recording a new domain event that tenants should be able to receive.
"""

from __future__ import annotations

WEBHOOK_EVENT_TYPES: tuple[str, ...] = (
    # tenants
    "TenantCreated",
    "TenantActivated",
    "TenantSuspended",
    "TenantClosed",
    "TenantProvisioningFailed",
    "TenantProvisioningRetried",
    "TenantUpdated",
    "TenantDomainsChanged",
    # API keys
    "ApiKeyCreated",
    "ApiKeyRevoked",
    # webhooks
    "WebhookEndpointDisabled",
    # subscriptions
    "SubscriptionCreated",
    "SubscriptionUpgraded",
    "SubscriptionDowngradeScheduled",
    "SubscriptionCancelled",
    "SubscriptionResumed",
    "SubscriptionRenewed",
    "SubscriptionExpired",
    "SubscriptionScheduledChangeCancelled",
    "SubscriptionActivated",
    "SubscriptionPastDue",
    "SubscriptionReactivated",
    "SubscriptionTrialExtended",
    # billing
    "InvoicePaid",
    "PaymentFailed",
    # usage
    "QuotaWarning",
    "QuotaExceeded",
)
