"""The one URL of ``bench.settings_bare``: ``WhoAmIView`` with no auth and no 402 check."""

from django.urls import path

from tenants.api.views import WhoAmIView

urlpatterns = [
    path(
        "api/v1/whoami/",
        WhoAmIView.as_view(authentication_classes=[], permission_classes=[]),
    ),
]
