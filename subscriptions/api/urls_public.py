from django.urls import path

from subscriptions.api.views import PlanListView

urlpatterns = [path("plans/", PlanListView.as_view(), name="plans")]
