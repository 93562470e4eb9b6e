"""Thin views: validate, call one service or selector, serialize."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from core.audit import Actor
from tenants.api.request import request_actor
from tenants.api.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateInputSerializer,
    ApiKeySerializer,
    SignupInputSerializer,
    SignupOutputSerializer,
    TenantSerializer,
)
from tenants.selectors import tenant_get
from tenants.services import tenant_create
from tenants.workspace.selectors import api_key_list
from tenants.workspace.services import api_key_create, api_key_revoke


class SignupThrottle(AnonRateThrottle):
    """Per client IP, at ``SIGNUP_RATE`` (read on each request so it can be changed)."""

    scope = "signup"

    def get_rate(self) -> str:
        return str(settings.SIGNUP_RATE)


class SignupView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [SignupThrottle]

    @extend_schema(
        request=SignupInputSerializer,
        responses={201: SignupOutputSerializer},
        tags=["public"],
        summary="Sign up a tenant",
    )
    def post(self, request: Request) -> Response:
        data = SignupInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = tenant_create(
            slug=data.validated_data["slug"],
            name=data.validated_data["name"],
            email=data.validated_data["email"],
            plan=data.validated_data["plan"],
            timezone_name=data.validated_data["timezone"],
            currency=data.validated_data["currency"],
            actor=Actor("signup", request.META.get("REMOTE_ADDR", "")),
        )
        body = SignupOutputSerializer(
            {
                "id": result.tenant.pk,
                "slug": result.tenant.slug,
                "name": result.tenant.name,
                "status": result.tenant.status,
                "domain": result.domain.domain,
                "api_key": result.api_key,
            }
        ).data
        return Response(body, status=status.HTTP_201_CREATED)


class CurrentTenantView(APIView):
    allow_inactive_subscription = True  # a tenant may always read itself

    @extend_schema(responses=TenantSerializer, tags=["tenant"], summary="The current tenant")
    def get(self, request: Request) -> Response:
        tenant = tenant_get(tenant_id=request.tenant.pk)  # type: ignore[attr-defined]
        return Response(TenantSerializer(tenant).data)


class WhoAmIView(APIView):
    """Which tenant and key a request is made as; reads nothing from the database."""

    @extend_schema(tags=["tenant"], summary="The tenant and API key of this request")
    def get(self, request: Request) -> Response:
        user: Any = request.user
        return Response(
            {
                "tenant": getattr(user, "tenant_slug", None),
                "api_key": getattr(user, "actor_ident", None),
            }
        )


class ApiKeyListCreateView(APIView):
    @extend_schema(responses=ApiKeySerializer(many=True), tags=["tenant"], summary="List API keys")
    def get(self, request: Request) -> Response:
        return Response(ApiKeySerializer(api_key_list(), many=True).data)

    @extend_schema(
        request=ApiKeyCreateInputSerializer,
        responses={201: ApiKeyCreatedSerializer},
        tags=["tenant"],
        summary="Create an API key (the key is shown once)",
    )
    def post(self, request: Request) -> Response:
        data = ApiKeyCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = api_key_create(name=data.validated_data["name"], actor=request_actor(request))
        body = ApiKeySerializer(created.api_key).data
        body["key"] = created.raw_key
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    @extend_schema(responses={204: None}, tags=["tenant"], summary="Revoke an API key")
    def delete(self, request: Request, key_id: int) -> Response:
        api_key_revoke(api_key_id=key_id, actor=request_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
