"""Meter every authenticated tenant API request: rate limit, quota, counting, headers.

Runs after the tenant router. It verifies the API key itself (from the cache) and hands the
result to DRF's authentication, so a request is verified once. Requests without a valid key
are not metered (DRF answers them 401).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from core.api.errors import error_response
from core.api.headers import ratelimit_headers_set
from core.conf import HotSettings
from core.snapshots import StaleSnapshot, generation_check, snapshot_current
from tenants.api.authentication import principal_from_request
from usage.limits import tenant_limits
from usage.meter import MeterResult, meter_bandwidth, meter_request
from usage.services import quota_thresholds_check

_conf = HotSettings("USAGE_METERING_ENABLED", "USAGE_FAIL_MODE")


def _headers(response: HttpResponse, result: MeterResult) -> None:
    if result.rate_limit is not None:
        ratelimit_headers_set(
            response, result.rate_limit, result.rate_remaining, result.rate_reset_s
        )


def _unavailable(retry_after_s: int = 5) -> HttpResponse:
    return error_response(
        status_code=503,
        code="metering_unavailable",
        message="Usage metering is unavailable; try again shortly.",
        headers={"Retry-After": str(retry_after_s)},
    )


def _unmetered(request: HttpRequest) -> bool:
    """Whether the request's snapshot is still current (checked with one GET); a request
    served from a fresh snapshot, or from none, needs no check."""
    snapshot = snapshot_current()
    if snapshot is None or snapshot.fresh:
        return True
    return generation_check(snapshot) is True


class UsageMeteringMiddleware:
    """Meters tenant API requests; must directly follow the tenant router (see there)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant: Any = getattr(request, "tenant", None)
        tenant_id = getattr(tenant, "id", None)  # None on the public schema (FakeTenant)
        if (
            tenant_id is None
            or not _conf.USAGE_METERING_ENABLED
            or not request.path.startswith("/api/")
        ):
            return self._pass(request)
        principal = principal_from_request(request)
        if principal is None:
            return self._pass(request)
        limits = tenant_limits(tenant_id=tenant_id)
        if limits is None:  # no current subscription: the 402 check answers
            return self._pass(request)
        if "_tenantry_meter_sent" in request.__dict__:
            # Served again after a metering reply was lost: it may have been counted already,
            # so it is not sent again; fail closed refuses it as any unknown outcome.
            if _conf.USAGE_FAIL_MODE == "closed":
                return _unavailable()
            return self._pass(request)

        snapshot = snapshot_current()
        token = snapshot.token if snapshot is not None and not snapshot.fresh else None
        result = meter_request(limits=limits, snapshot_token=token)
        response: HttpResponse
        if not result.allowed:
            if result.code == "stale":
                if result.sent:
                    request._tenantry_meter_sent = True  # type: ignore[attr-defined]
                return StaleSnapshot()
            if result.code == "unavailable":
                response = _unavailable(result.retry_after_s)
            else:
                message = (
                    "Too many requests: the plan's rate limit is reached."
                    if result.code == "rate_limited"
                    else "A hard quota of the plan (api_calls or bandwidth_bytes) is used up for this period."
                )
                response = error_response(
                    status_code=429,
                    code=result.code,
                    message=message,
                    details={"retry_after": result.retry_after_s},
                    headers={"Retry-After": str(result.retry_after_s)},
                )
            _headers(response, result)
            return response

        if result.used is not None:
            quota_thresholds_check(
                limits=limits,
                metric="api_calls",
                used=result.used,
                previous=result.used - result.calls_added,
            )
        if result.bandwidth_added and result.bandwidth_used is not None:
            quota_thresholds_check(
                limits=limits,
                metric="bandwidth_bytes",
                used=result.bandwidth_used,
                previous=result.bandwidth_used - result.bandwidth_added,
            )
        response = self.get_response(request)
        _headers(response, result)
        if not response.streaming:
            meter_bandwidth(limits=limits, nbytes=len(response.content), bucket=result.bucket)
        return response

    def _pass(self, request: HttpRequest) -> HttpResponse:
        if not _unmetered(request):
            return StaleSnapshot()
        return self.get_response(request)
