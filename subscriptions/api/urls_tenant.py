from django.urls import path

from subscriptions.api import views

urlpatterns = [
    path("subscription/", views.SubscriptionView.as_view(), name="subscription"),
    path(
        "subscription/preview-change/",
        views.SubscriptionPreviewChangeView.as_view(),
        name="subscription-preview",
    ),
    path(
        "subscription/change/", views.SubscriptionChangeView.as_view(), name="subscription-change"
    ),
    path(
        "subscription/cancel/", views.SubscriptionCancelView.as_view(), name="subscription-cancel"
    ),
    path(
        "subscription/resume/", views.SubscriptionResumeView.as_view(), name="subscription-resume"
    ),
]
