"""URLs of a tenant host (``<slug>.<base domain>``, a custom domain, or ``X-Tenant``)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.api.health import healthz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include("tenants.api.urls_tenant")),
    path("api/v1/", include("tenants.webhooks.api.urls")),
    path("api/v1/", include("subscriptions.api.urls_tenant")),
    path("api/v1/", include("usage.api.urls")),
    path("api/v1/", include("billing.api.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

handler404 = "core.api.errors.json_404"
handler500 = "core.api.errors.json_500"
