from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import DomainEvent
from usage import meter
from usage.limits import tenant_limits
from usage.meter import period_counter_key, redis_client

pytestmark = pytest.mark.django_db

KEYS = "/api/v1/api-keys/"


def used(tenant, metric="api_calls"):
    limits = tenant_limits(tenant_id=tenant.pk)
    return int(redis_client().get(period_counter_key(tenant.pk, metric, limits.period_key)) or 0)


def test_every_authenticated_request_counts_one_and_its_bytes(alpha, alpha_client):
    first = alpha_client.get(KEYS)
    assert first.status_code == 200
    assert used(alpha.tenant) == 1
    second = alpha_client.get(KEYS)
    assert used(alpha.tenant) == 2
    # Bytes of a response are sent with the tenant's next call (one round trip per request).
    assert used(alpha.tenant, "bandwidth_bytes") == len(first.content)
    alpha_client.get(KEYS)
    assert used(alpha.tenant, "bandwidth_bytes") == len(first.content) + len(second.content)


def test_unauthenticated_requests_are_not_metered(api, alpha):
    assert api.get(KEYS, HTTP_HOST=alpha.host).status_code == 401
    assert (
        api.get(
            KEYS, HTTP_HOST=alpha.host, HTTP_AUTHORIZATION="Bearer tnr_00000000_" + "0" * 48
        ).status_code
        == 401
    )
    assert used(alpha.tenant) == 0


def test_rate_limit_headers_on_every_metered_response(alpha_client):
    response = alpha_client.get(KEYS)
    assert response["X-RateLimit-Limit"] == "60"  # the free plan
    assert int(response["X-RateLimit-Remaining"]) == 59
    assert int(response["X-RateLimit-Reset"]) >= 1


def test_rate_limited_is_429_with_retry_after_and_recovers(alpha, alpha_client, on_plan):
    on_plan(alpha.tenant, "metered-slow")  # 3 a minute
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert [alpha_client.get(KEYS).status_code for _ in range(3)] == [200, 200, 200]
        refused = alpha_client.get(KEYS)
    assert refused.status_code == 429
    body = refused.json()["error"]
    assert body["code"] == "rate_limited"
    assert int(refused["Retry-After"]) == 20  # one token every 20 s
    assert refused["X-RateLimit-Limit"] == "3"
    assert used(alpha.tenant) == 3  # the refused request is not counted
    with time_machine.travel(start + timedelta(seconds=20), tick=False):
        assert alpha_client.get(KEYS).status_code == 200


def test_hard_quota_is_429_quota_exceeded(alpha, alpha_client, on_plan):
    on_plan(alpha.tenant, "metered-hard")  # 5 calls, no overage price
    assert [alpha_client.get(KEYS).status_code for _ in range(5)] == [200] * 5
    refused = alpha_client.get(KEYS)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota_exceeded"
    limits = tenant_limits(tenant_id=alpha.tenant.pk)
    assert (
        0 < int(refused["Retry-After"]) <= (limits.period_end - timezone.now()).total_seconds() + 1
    )
    assert used(alpha.tenant) == 5


def test_a_refused_request_still_counts_the_bytes_it_carries(alpha, alpha_client, on_plan):
    on_plan(alpha.tenant, "metered-hard")
    sizes = [len(alpha_client.get(KEYS).content) for _ in range(5)]
    refused = alpha_client.get(KEYS)  # the 6th: refused, but it carries the 5th's bytes
    assert refused.status_code == 429
    assert used(alpha.tenant, "bandwidth_bytes") == sum(sizes)


def test_hard_bandwidth_quota_is_enforced(alpha, alpha_client, on_plan):
    from core.audit import SYSTEM
    from subscriptions.catalog import catalog_sync

    catalog_sync(
        data={
            "plans": [
                {
                    "code": "tiny-bandwidth",
                    "name": "Tiny",
                    "interval": "month",
                    "price": 0,
                    "currency": "USD",
                    "quotas": {"api_calls": None, "bandwidth_bytes": 300},
                }
            ]
        },
        actor=SYSTEM,
    )
    on_plan(alpha.tenant, "tiny-bandwidth")
    statuses = [alpha_client.get(KEYS).status_code for _ in range(12)]
    assert statuses[0] == 200
    assert 429 in statuses  # once 300 bytes have gone out
    first_refused = statuses.index(429)
    assert all(code == 429 for code in statuses[first_refused:])
    assert used(alpha.tenant, "bandwidth_bytes") >= 300


def test_quota_with_an_overage_price_lets_requests_through(alpha, alpha_client, on_plan):
    on_plan(alpha.tenant, "metered-overage")  # 2 calls, then 1 cent per 1,000
    assert [alpha_client.get(KEYS).status_code for _ in range(4)] == [200] * 4
    assert used(alpha.tenant) == 4
    summary = alpha_client.get("/api/v1/usage/").json()
    calls = next(m for m in summary["metrics"] if m["metric"] == "api_calls")
    assert (calls["used"], calls["limit"], calls["overage"], calls["remaining"]) == (5, 2, 3, 0)


def test_quota_warning_and_exceeded_once_per_period(
    alpha, alpha_client, on_plan, django_capture_on_commit_callbacks
):
    on_plan(alpha.tenant, "metered-hard")  # 80 % of 5 is the 4th call
    for _ in range(7):
        alpha_client.get(KEYS)
    events = DomainEvent.objects.filter(tenant_id=alpha.tenant.pk, type__startswith="Quota")
    seen = sorted((e.type, e.payload["used"], e.payload["threshold"]) for e in events)
    assert seen == [("QuotaExceeded", 5, 100), ("QuotaWarning", 4, 80)]


def test_warm_request_makes_no_query_for_quota_rate_or_plan(alpha_client):
    alpha_client.get(KEYS)  # warm: route, key, subscription access, limits
    with CaptureQueriesContext(connection) as queries:
        assert alpha_client.get(KEYS).status_code == 200
    sqls = [q["sql"] for q in queries.captured_queries]
    assert not [s for s in sqls if "subscriptions_" in s or "usage_" in s or "tenants_" in s], sqls
    assert len([s for s in sqls if "workspace_apikey" in s]) == 1  # the view's own listing


@pytest.fixture
def redis_down():
    """Every Redis client (cache, routing, metering) pointed at a closed port.

    (Not the ``settings`` fixture: an override made through it while this one is active
    would restore this one's settings when it is undone.)
    """
    from django.conf import settings

    dead = "redis://127.0.0.1:1/0"
    caches_conf = {alias: {**conf, "LOCATION": dead} for alias, conf in settings.CACHES.items()}
    real_url = settings.REDIS_URL
    with override_settings(CACHES=caches_conf, REDIS_URL=dead):
        meter.reset_client()
        yield real_url
    meter.reset_client()


def test_redis_down_fails_open_and_replays_the_counts(alpha, alpha_client, redis_down):
    assert [alpha_client.get(KEYS).status_code for _ in range(3)] == [200, 200, 200]
    assert (
        sum(
            v
            for (t, m, _, _), v in meter.buffer.offline.items()
            if t == alpha.tenant.pk and m == "api_calls"
        )
        == 3
    )
    with override_settings(REDIS_URL=redis_down):
        meter.reset_client()
        assert meter.replay_local() >= 1
        assert used(alpha.tenant) == 3


def test_failing_open_still_sends_every_rate_limit_header(alpha_client, redis_down):
    """Remaining counts down what this process admitted in the minute; Reset is its end."""
    with time_machine.travel("2026-12-04 12:00:10Z", tick=False):
        responses = [alpha_client.get(KEYS) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r["X-RateLimit-Limit"] for r in responses] == ["60"] * 3
    assert [r["X-RateLimit-Remaining"] for r in responses] == ["59", "58", "57"]
    assert [r["X-RateLimit-Reset"] for r in responses] == ["50"] * 3
    with time_machine.travel("2026-12-04 12:01:00Z", tick=False):
        assert alpha_client.get(KEYS)["X-RateLimit-Remaining"] == "59"  # a new minute


def test_redis_down_fails_closed_when_configured(alpha_client, redis_down):
    with override_settings(USAGE_FAIL_MODE="closed"):
        response = alpha_client.get(KEYS)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "metering_unavailable"
    assert int(response["Retry-After"]) > 0


def test_redis_down_healthz_says_so_but_api_answers(api, alpha_client, redis_down):
    assert alpha_client.get("/api/v1/tenant/").status_code == 200
    assert api.get("/healthz", HTTP_HOST="127.0.0.1").status_code == 503
