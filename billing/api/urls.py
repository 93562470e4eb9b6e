from django.urls import path

from billing.api import views

urlpatterns = [
    path("invoices/", views.InvoiceListView.as_view(), name="invoices"),
    path("invoices/<str:number>/", views.InvoiceDetailView.as_view(), name="invoice-detail"),
    path("invoices/<str:number>/pdf/", views.InvoicePdfView.as_view(), name="invoice-pdf"),
    path("invoices/<str:number>/html/", views.InvoiceHtmlView.as_view(), name="invoice-html"),
    path("invoices/<str:number>/pay/", views.InvoicePayView.as_view(), name="invoice-pay"),
    path("billing/setup-session/", views.SetupSessionView.as_view(), name="billing-setup-session"),
]
