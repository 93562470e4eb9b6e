from django.urls import path

from tenants.api.views import SignupView

urlpatterns = [
    path("tenants/", SignupView.as_view(), name="signup"),
]
