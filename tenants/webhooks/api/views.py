"""Thin views for a tenant's webhook endpoints: validate, call one service or selector,
serialize. Endpoints live in the public schema, so every read and write is filtered by the
request's tenant: another tenant's ids answer 404."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.api.request import request_actor, request_tenant_id
from tenants.webhooks.api.serializers import (
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointCreateInputSerializer,
    WebhookEndpointSerializer,
)
from tenants.webhooks.models import WebhookDelivery
from tenants.webhooks.selectors import (
    webhook_delivery_list,
    webhook_endpoint_get,
    webhook_endpoint_list,
)
from tenants.webhooks.services import (
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_delete,
)

TAGS = ["webhooks"]


class WebhookEndpointListCreateView(APIView):
    @extend_schema(
        responses=WebhookEndpointSerializer(many=True), tags=TAGS, summary="List webhook endpoints"
    )
    def get(self, request: Request) -> Response:
        endpoints = webhook_endpoint_list(tenant_id=request_tenant_id(request))
        return Response(WebhookEndpointSerializer(endpoints, many=True).data)

    @extend_schema(
        request=WebhookEndpointCreateInputSerializer,
        responses={201: WebhookEndpointCreatedSerializer},
        tags=TAGS,
        summary="Register a webhook endpoint (the signing secret is shown once)",
    )
    def post(self, request: Request) -> Response:
        data = WebhookEndpointCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = webhook_endpoint_create(
            tenant_id=request_tenant_id(request),
            url=data.validated_data["url"],
            event_types=data.validated_data["event_types"],
            description=data.validated_data["description"],
            actor=request_actor(request),
        )
        body = WebhookEndpointSerializer(endpoint).data
        body["secret"] = endpoint.secret
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookEndpointDetailView(APIView):
    @extend_schema(responses=WebhookEndpointSerializer, tags=TAGS, summary="A webhook endpoint")
    def get(self, request: Request, endpoint_id: int) -> Response:
        endpoint = webhook_endpoint_get(
            tenant_id=request_tenant_id(request), endpoint_id=endpoint_id
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(responses={204: None}, tags=TAGS, summary="Delete a webhook endpoint")
    def delete(self, request: Request, endpoint_id: int) -> Response:
        webhook_endpoint_delete(
            tenant_id=request_tenant_id(request),
            endpoint_id=endpoint_id,
            actor=request_actor(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveryListView(generics.ListAPIView[WebhookDelivery]):
    serializer_class = WebhookDeliverySerializer

    def get_queryset(self) -> QuerySet[WebhookDelivery]:
        return webhook_delivery_list(
            tenant_id=request_tenant_id(self.request), endpoint_id=int(self.kwargs["endpoint_id"])
        )

    @extend_schema(tags=TAGS, summary="Recent deliveries of a webhook endpoint, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class WebhookDeliveryRetryView(APIView):
    @extend_schema(
        request=None,
        responses={202: WebhookDeliverySerializer},
        tags=TAGS,
        summary="Send a delivery again now (same webhook-id)",
    )
    def post(self, request: Request, endpoint_id: int, delivery_id: int) -> Response:
        delivery = webhook_delivery_retry(
            tenant_id=request_tenant_id(request),
            endpoint_id=endpoint_id,
            delivery_id=delivery_id,
            actor=request_actor(request),
        )
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
