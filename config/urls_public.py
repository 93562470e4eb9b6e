"""URLs of the public host (the base domain): signup, staff admin, health, API schema."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from billing.stripe_webhooks import stripe_webhook
from core.api.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # Ours (STRIPE_WEBHOOK_SECRET) before dj-stripe's per-endpoint webhook/<uuid>/ routes.
    path("stripe/webhook/", stripe_webhook, name="stripe-webhook"),
    path("stripe/", include("djstripe.urls", namespace="djstripe")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("tenants.api.urls_public")),
    path("api/v1/", include("subscriptions.api.urls_public")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

handler404 = "core.api.errors.json_404"
handler500 = "core.api.errors.json_500"
