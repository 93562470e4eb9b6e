from django.urls import path

from tenants.webhooks.api.views import (
    WebhookDeliveryListView,
    WebhookDeliveryRetryView,
    WebhookEndpointDetailView,
    WebhookEndpointListCreateView,
)

urlpatterns = [
    path("webhooks/", WebhookEndpointListCreateView.as_view(), name="webhooks"),
    path(
        "webhooks/<int:endpoint_id>/",
        WebhookEndpointDetailView.as_view(),
        name="webhook-detail",
    ),
    path(
        "webhooks/<int:endpoint_id>/deliveries/",
        WebhookDeliveryListView.as_view(),
        name="webhook-deliveries",
    ),
    path(
        "webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/retry/",
        WebhookDeliveryRetryView.as_view(),
        name="webhook-delivery-retry",
    ),
]
