"""Thin views over the usage services and selectors."""

from __future__ import annotations

from datetime import date, timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import InvalidInput, NotFound
from tenants.api.request import request_tenant_id
from usage.api.parsers import FastJSONParser
from usage.selectors import usage_daily, usage_summary
from usage.services import usage_events_ingest


class EventSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=100)
    metric = serializers.CharField()
    quantity = serializers.IntegerField(min_value=0)
    timestamp = serializers.DateTimeField()
    properties = serializers.DictField(required=False)


class EventBatchSerializer(serializers.Serializer):
    events = EventSerializer(many=True)


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()


class MetricUsageSerializer(serializers.Serializer):
    metric = serializers.CharField()
    used = serializers.IntegerField()
    limit = serializers.IntegerField(allow_null=True)
    remaining = serializers.IntegerField(allow_null=True)
    overage = serializers.IntegerField()
    overage_unit_price = serializers.IntegerField(allow_null=True)
    overage_unit_size = serializers.IntegerField()


class UsageSummarySerializer(serializers.Serializer):
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    metrics = MetricUsageSerializer(many=True)


class DailyPointSerializer(serializers.Serializer):
    day = serializers.DateField()
    quantity = serializers.IntegerField()


class DailyQuerySerializer(serializers.Serializer):
    metric = serializers.SlugField(max_length=50)
    start = serializers.DateField(required=False)
    end = serializers.DateField(required=False)


class UsageEventsView(APIView):
    parser_classes = [FastJSONParser]

    @extend_schema(
        request=EventBatchSerializer,
        responses={202: IngestResultSerializer},
        tags=["usage"],
        summary="Ingest up to 1,000 usage events; each id counts once per tenant",
    )
    def post(self, request: Request) -> Response:
        data = request.data
        if not isinstance(data, dict) or not isinstance(data.get("events"), list):
            raise InvalidInput('Send {"events": [...]}.', code="invalid_batch")
        result = usage_events_ingest(tenant_id=request_tenant_id(request), events=data["events"])
        return Response(
            {"accepted": result.accepted, "duplicates": result.duplicates},
            status=status.HTTP_202_ACCEPTED,
        )


class UsageSummaryView(APIView):
    @extend_schema(
        responses=UsageSummarySerializer, tags=["usage"], summary="Usage of the current period"
    )
    def get(self, request: Request) -> Response:
        summary = usage_summary(tenant_id=request_tenant_id(request))
        if summary is None:
            raise NotFound("The tenant has no current subscription.", code="subscription_not_found")
        return Response(UsageSummarySerializer(summary).data)


class UsageDailyView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("metric", str, required=True),
            OpenApiParameter("from", date, description="first day (default: 30 days ago)"),
            OpenApiParameter("to", date, description="last day (default: today)"),
        ],
        responses=DailyPointSerializer(many=True),
        tags=["usage"],
        summary="Daily totals of one metric",
    )
    def get(self, request: Request) -> Response:
        query = DailyQuerySerializer(
            data={
                "metric": request.query_params.get("metric"),
                **(
                    {"start": request.query_params["from"]}
                    if "from" in request.query_params
                    else {}
                ),
                **({"end": request.query_params["to"]} if "to" in request.query_params else {}),
            }
        )
        query.is_valid(raise_exception=True)
        end = query.validated_data.get("end") or timezone.now().date()
        start = query.validated_data.get("start") or end - timedelta(days=30)
        if start > end:
            raise InvalidInput("'from' is after 'to'.", code="invalid_range")
        if (end - start).days > 366:
            raise InvalidInput("At most 366 days at once.", code="range_too_long")
        points = usage_daily(
            tenant_id=request_tenant_id(request),
            metric=query.validated_data["metric"],
            start=start,
            end=end,
        )
        return Response([{"day": d, "quantity": q} for d, q in points])
