"""Invoices and payment on the tenant host. Another tenant's invoice number is 404."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.documents import invoice_html, invoice_pdf
from billing.gateways import get_gateway
from billing.models import Invoice
from billing.selectors import invoice_get, invoice_list
from billing.services import invoice_pay
from tenants.api.request import request_actor, request_tenant_id


class InvoiceLineSerializer(serializers.Serializer):
    kind = serializers.CharField()
    description = serializers.CharField()
    metric = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_amount = serializers.IntegerField()
    unit_size = serializers.IntegerField()
    amount = serializers.IntegerField()
    period_start = serializers.DateTimeField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True)


class InvoiceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Invoice
        fields: tuple[str, ...] = (
            "number",
            "status",
            "currency",
            "period_start",
            "period_end",
            "subtotal",
            "tax_rate_bps",
            "tax",
            "total",
            "amount_paid",
            "amount_due",
            "due_at",
            "finalized_at",
            "paid_at",
            "voided_at",
            "payment_attempts",
            "next_payment_attempt_at",
        )
        read_only_fields = fields


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta(InvoiceSerializer.Meta):
        fields = (*InvoiceSerializer.Meta.fields, "lines")
        read_only_fields = fields


class SetupSessionInputSerializer(serializers.Serializer):
    success_url = serializers.URLField()
    cancel_url = serializers.URLField()


class InvoiceListView(APIView):
    allow_inactive_subscription = True

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="draft, open, paid, void, uncollectible")
        ],
        responses=InvoiceSerializer(many=True),
        tags=["billing"],
        summary="The tenant's invoices",
    )
    def get(self, request: Request) -> Response:
        invoices = invoice_list(
            tenant_id=request_tenant_id(request), status=request.query_params.get("status")
        )
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(invoices, request, view=self)
        return paginator.get_paginated_response(InvoiceSerializer(page, many=True).data)


class InvoiceDetailView(APIView):
    allow_inactive_subscription = True

    @extend_schema(
        responses=InvoiceDetailSerializer, tags=["billing"], summary="One invoice with its lines"
    )
    def get(self, request: Request, number: str) -> Response:
        return Response(
            InvoiceDetailSerializer(
                invoice_get(tenant_id=request_tenant_id(request), number=number)
            ).data
        )


class InvoicePdfView(APIView):
    allow_inactive_subscription = True

    @extend_schema(
        responses={(200, "application/pdf"): bytes},
        tags=["billing"],
        summary="The invoice as a PDF",
    )
    def get(self, request: Request, number: str) -> HttpResponse:
        invoice = invoice_get(tenant_id=request_tenant_id(request), number=number)
        response = HttpResponse(invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{invoice.number}.pdf"'
        return response


class InvoiceHtmlView(APIView):
    allow_inactive_subscription = True

    @extend_schema(
        responses={(200, "text/html"): str}, tags=["billing"], summary="The invoice as an HTML page"
    )
    def get(self, request: Request, number: str) -> HttpResponse:
        return HttpResponse(
            invoice_html(invoice_get(tenant_id=request_tenant_id(request), number=number))
        )


class InvoicePayView(APIView):
    allow_inactive_subscription = True

    @extend_schema(
        request=None,
        responses=InvoiceDetailSerializer,
        tags=["billing"],
        summary="Charge the invoice now",
    )
    def post(self, request: Request, number: str) -> Response:
        invoice = invoice_get(tenant_id=request_tenant_id(request), number=number)
        result = invoice_pay(invoice_id=invoice.pk, actor=request_actor(request))
        body: dict[str, Any] = dict(InvoiceDetailSerializer(result.invoice).data)
        body["payment"] = {
            "attempt": result.payment.attempt,
            "status": result.payment.status,
            "failure_code": result.payment.failure_code,
        }
        return Response(body)


class SetupSessionView(APIView):
    allow_inactive_subscription = True

    @extend_schema(
        request=SetupSessionInputSerializer,
        tags=["billing"],
        summary="A Stripe Checkout (setup mode) URL to save a payment method",
    )
    def post(self, request: Request) -> Response:
        data = SetupSessionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        url = get_gateway().setup_session_url(
            tenant_id=request_tenant_id(request), **data.validated_data
        )
        return Response({"url": url})
