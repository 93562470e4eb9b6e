"""Every API route in one URL conf, for the OpenAPI schema only (never routed)."""

from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("tenants.api.urls_public")),
    path("api/v1/", include("tenants.api.urls_tenant")),
    path("api/v1/", include("tenants.webhooks.api.urls")),
    path("api/v1/", include("subscriptions.api.urls_public")),
    path("api/v1/", include("subscriptions.api.urls_tenant")),
    path("api/v1/", include("usage.api.urls")),
    path("api/v1/", include("billing.api.urls")),
]
