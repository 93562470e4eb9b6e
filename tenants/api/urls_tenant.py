from django.urls import path

from tenants.api.views import ApiKeyDetailView, ApiKeyListCreateView, CurrentTenantView, WhoAmIView

urlpatterns = [
    path("tenant/", CurrentTenantView.as_view(), name="current-tenant"),
    path("whoami/", WhoAmIView.as_view(), name="whoami"),
    path("api-keys/", ApiKeyListCreateView.as_view(), name="api-keys"),
    path("api-keys/<int:key_id>/", ApiKeyDetailView.as_view(), name="api-key-detail"),
]
