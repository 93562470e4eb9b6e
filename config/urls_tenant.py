"""URLs of a tenant host (``<slug>.<base domain>``, a custom domain, or ``X-Tenant``).

The apps' tenant API routes are mounted under ``api/v1/`` as one flat list rather than
through ``include()``: every tenant request is resolved here, and a flat list resolves in
one pass, without a nested resolver (and the ``Resolver404`` each non-matching include
raises) per app.
"""

from importlib import import_module

from django.urls import URLPattern, path
from django.urls.resolvers import RoutePattern
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.api.health import healthz

API_V1 = "api/v1/"
API_MODULES = (
    "tenants.api.urls_tenant",
    "tenants.webhooks.api.urls",
    "subscriptions.api.urls_tenant",
    "usage.api.urls",
    "billing.api.urls",
)


def _mounted(module: str) -> list[URLPattern]:
    patterns = []
    for pattern in import_module(module).urlpatterns:
        if not isinstance(pattern, URLPattern) or not isinstance(pattern.pattern, RoutePattern):
            raise TypeError(f"{module}: only path() routes can be mounted flat: {pattern!r}")
        patterns.append(
            path(
                API_V1 + str(pattern.pattern),
                pattern.callback,
                pattern.default_args,
                name=pattern.name,
            )
        )
    return patterns


urlpatterns = [
    *(p for module in API_MODULES for p in _mounted(module)),
    path("healthz", healthz, name="healthz"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

handler404 = "core.api.errors.json_404"
handler500 = "core.api.errors.json_500"
