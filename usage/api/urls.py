from django.urls import path

from usage.api.views import UsageDailyView, UsageEventsView, UsageSummaryView

urlpatterns = [
    path("usage/", UsageSummaryView.as_view(), name="usage"),
    path("usage/daily/", UsageDailyView.as_view(), name="usage-daily"),
    path("usage/events/", UsageEventsView.as_view(), name="usage-events"),
]
