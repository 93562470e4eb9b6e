"""The warm hot path: process-local tenant snapshots checked by the metering round trip, and
credit for busy tenants. "Another process" changing something is simulated by changing the
database and replacing the tenant's generation token in Redis without touching this
process's snapshot, which is what this process sees when another one commits a change."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.cache import caches
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from core import snapshots
from core.audit import SYSTEM
from core.redis import redis_client
from subscriptions.catalog import catalog_sync
from tenants.models import Tenant, TenantStatus
from tenants.routing import host_key, slug_key
from tenants.workspace.keys import key_hash
from tenants.workspace.models import ApiKey
from tenants.workspace.services import api_key_cache_key
from usage import meter
from usage.limits import tenant_limits
from usage.meter import period_counter_key

pytestmark = pytest.mark.django_db

WHOAMI = "/api/v1/whoami/"
BIG_HARD = {
    "plans": [
        {
            "code": "metered-hard-30",
            "name": "Hard 30",
            "interval": "month",
            "price": 0,
            "currency": "USD",
            "public": False,
            "quotas": {"api_calls": 30},
            "rate_limit_per_minute": 100_000,
        }
    ]
}


def another_process_invalidates(tenant_id: int) -> None:
    """What this process sees after another one committed a change and bumped the token."""
    redis_client().set(snapshots.generation_key(tenant_id), snapshots.new_token())


def counted(tenant) -> int:
    limits = tenant_limits(tenant_id=tenant.pk)
    assert limits is not None
    key = period_counter_key(tenant.pk, "api_calls", limits.period_key)
    return int(redis_client().get(key) or 0)


class RoundTrips:
    """Counts metering script calls and Redis cache reads made by requests."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.scripts = 0
        self.cache_reads = 0
        real_script = meter._script

        def script(keys, args):
            self.scripts += 1
            return real_script(keys, args)

        monkeypatch.setattr(meter, "_script", script)
        for alias in ("default", "shared"):
            cache = caches[alias]
            real_get = cache.get

            def get(*a, _real=real_get, **kw):
                self.cache_reads += 1
                return _real(*a, **kw)

            monkeypatch.setattr(cache, "get", get)


def test_warm_request_is_one_round_trip_and_no_query(alpha_client, monkeypatch):
    assert alpha_client.get(WHOAMI).status_code == 200  # cold: loads the snapshot
    trips = RoundTrips(monkeypatch)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert alpha_client.get(WHOAMI).status_code == 200
    assert queries.captured_queries == []
    assert trips.scripts == 3  # the metering script, once per request
    assert trips.cache_reads == 0  # route, key, limits and access from the snapshot


def test_key_revoked_elsewhere_is_refused_on_the_next_request(alpha, alpha_client):
    assert alpha_client.get(WHOAMI).status_code == 200
    digest = key_hash(alpha.api_key)
    with tenant_context(alpha.tenant):
        ApiKey.objects.filter(key_hash=digest).update(revoked_at=timezone.now())
        caches["default"].delete(api_key_cache_key(digest))
    another_process_invalidates(alpha.tenant.pk)
    before = counted(alpha.tenant)

    response = alpha_client.get(WHOAMI)
    assert response.status_code == 401
    assert counted(alpha.tenant) == before  # the stale attempt counted nothing
    with tenant_context(alpha.tenant):
        ApiKey.objects.filter(key_hash=digest).update(revoked_at=None)


def test_tenant_suspended_elsewhere_is_refused_on_the_next_request(alpha, alpha_client, api):
    assert alpha_client.get(WHOAMI).status_code == 200
    assert api.get("/healthz", HTTP_HOST=alpha.host).status_code in (200, 503)  # unmetered
    Tenant.objects.filter(pk=alpha.tenant.pk).update(status=TenantStatus.SUSPENDED)
    caches["shared"].delete(host_key(alpha.host))
    another_process_invalidates(alpha.tenant.pk)
    try:
        metered = alpha_client.get(WHOAMI)
        assert metered.status_code == 403
        assert metered.json()["error"]["code"] == "tenant_suspended"
        # A request that is not metered is checked too (one GET of the token).
        Tenant.objects.filter(pk=alpha.tenant.pk).update(status=TenantStatus.ACTIVE)
        caches["shared"].delete(host_key(alpha.host))
        another_process_invalidates(alpha.tenant.pk)
        assert api.get(WHOAMI, HTTP_HOST=alpha.host).status_code == 401  # active again
    finally:
        Tenant.objects.filter(pk=alpha.tenant.pk).update(status=TenantStatus.ACTIVE)


def test_a_missing_token_after_a_redis_flush_is_stale_not_current(alpha, alpha_client):
    assert alpha_client.get(WHOAMI).status_code == 200
    redis_client().delete(snapshots.generation_key(alpha.tenant.pk))
    kept = snapshots._store.get(alpha.tenant.pk)
    assert kept is not None
    assert alpha_client.get(WHOAMI).status_code == 200
    assert snapshots._store.get(alpha.tenant.pk) is not kept  # made again, with a new token
    assert redis_client().get(snapshots.generation_key(alpha.tenant.pk)) is not None


@override_settings(USAGE_CREDIT_MAX=20, USAGE_CREDIT_HEADROOM=100)  # free plan: 10,000 calls
def test_busy_tenant_gets_credit_and_every_request_is_counted(alpha, alpha_client, monkeypatch):
    trips = RoundTrips(monkeypatch)
    before = counted(alpha.tenant)
    with time_machine.travel(timezone.now(), tick=False):  # all within one credit
        statuses = [alpha_client.get(WHOAMI).status_code for _ in range(45)]
    assert statuses == [200] * 45
    assert trips.scripts < 10  # most were admitted on credit, without a round trip
    meter.replay_local()  # the counts still held by this process
    assert counted(alpha.tenant) - before == 45


@override_settings(USAGE_CREDIT_MAX=20)
def test_credit_never_lets_the_rate_limit_through(alpha, alpha_client, on_plan):
    on_plan(alpha.tenant, "metered-slow")  # 3 a minute
    from subscriptions.models import Plan

    plan_version = Plan.objects.get(code="metered-slow").current_version
    plan_version.rate_limit_per_minute = 10
    plan_version.save(update_fields=["rate_limit_per_minute"])
    from usage.limits import tenant_limits_invalidate

    tenant_limits_invalidate(tenant_id=alpha.tenant.pk)
    with time_machine.travel(timezone.now(), tick=False):
        statuses = [alpha_client.get(WHOAMI).status_code for _ in range(16)]
    assert statuses.count(200) == 10
    assert statuses[:10] == [200] * 10
    assert set(statuses[10:]) == {429}


@override_settings(USAGE_CREDIT_MAX=20)
def test_no_credit_within_the_headroom_of_a_hard_quota(alpha, alpha_client, on_plan, monkeypatch):
    on_plan(alpha.tenant, "metered-hard")  # api_calls: 5, hard; headroom 10,000
    trips = RoundTrips(monkeypatch)
    with time_machine.travel(timezone.now(), tick=False):
        statuses = [alpha_client.get(WHOAMI).status_code for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    assert trips.scripts == 9  # each one checked in Redis (the first once more, after seeding)


@override_settings(USAGE_CREDIT_MAX=20, USAGE_CREDIT_HEADROOM=3)
def test_credit_under_a_hard_quota_never_passes_it(alpha, alpha_client, on_plan):
    catalog_sync(data=BIG_HARD, actor=SYSTEM)
    on_plan(alpha.tenant, "metered-hard-30")  # api_calls: 30, hard
    with time_machine.travel(timezone.now(), tick=False):
        statuses = [alpha_client.get(WHOAMI).status_code for _ in range(40)]
    assert statuses == [200] * 30 + [429] * 10
    meter.replay_local()
    assert counted(alpha.tenant) == 30


@override_settings(USAGE_CREDIT_MAX=20, USAGE_CREDIT_HEADROOM=100)
def test_credit_ends_with_its_snapshot_and_its_time(alpha, alpha_client, monkeypatch):
    trips = RoundTrips(monkeypatch)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        alpha_client.get(WHOAMI)
        alpha_client.get(WHOAMI)  # hot: this one is granted credit
    assert meter._credits.get(alpha.tenant.pk) is not None
    scripts = trips.scripts
    with time_machine.travel(start + timedelta(seconds=1), tick=False):  # credit expired
        assert alpha_client.get(WHOAMI).status_code == 200
    assert trips.scripts == scripts + 1
    # Another process's change: the next round trip finds the token changed.
    with time_machine.travel(start + timedelta(seconds=1), tick=False):
        alpha_client.get(WHOAMI)
        another_process_invalidates(alpha.tenant.pk)
    with time_machine.travel(start + timedelta(seconds=3), tick=False):
        assert alpha_client.get(WHOAMI).status_code == 200
    assert meter._credits.get(alpha.tenant.pk) is None or (
        meter._credits[alpha.tenant.pk].token == snapshots._store[alpha.tenant.pk].token
    )


def test_x_tenant_routes_come_from_the_snapshot_and_are_checked_too(alpha, api):
    def whoami():
        return api.get(
            WHOAMI,
            HTTP_HOST="localhost",
            HTTP_X_TENANT="alpha",
            HTTP_AUTHORIZATION=f"Bearer {alpha.api_key}",
        )

    assert whoami().json()["tenant"] == "alpha"
    assert snapshots.snapshot_find("slug:alpha") is not None
    Tenant.objects.filter(pk=alpha.tenant.pk).update(status=TenantStatus.SUSPENDED)
    caches["shared"].delete_many([slug_key("alpha"), host_key(alpha.host)])
    another_process_invalidates(alpha.tenant.pk)
    assert whoami().status_code == 403


def test_a_hard_quota_survives_a_redis_restart(alpha, alpha_client, on_plan):
    """The counter Redis lost is seeded from the flushed totals, not started from zero."""
    from usage.services import usage_flush

    on_plan(alpha.tenant, "metered-hard")  # api_calls: 5, hard
    assert [alpha_client.get(WHOAMI).status_code for _ in range(3)] == [200] * 3
    usage_flush()  # 3 calls now in PostgreSQL
    redis_client().flushdb()  # a restart without persistence
    snapshots.snapshots_clear()
    statuses = [alpha_client.get(WHOAMI).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    assert counted(alpha.tenant) == 5


@pytest.mark.parametrize(("mode", "status"), [("open", 200), ("closed", 503)])
def test_a_lost_metering_reply_is_never_sent_twice(alpha, alpha_client, monkeypatch, mode, status):
    import redis

    assert alpha_client.get(WHOAMI).status_code == 200  # warm: the next one uses the snapshot
    calls = []

    def lost(keys, args):
        calls.append(args)
        raise redis.TimeoutError("reply lost")

    monkeypatch.setattr(meter, "_script", lost)
    with override_settings(USAGE_FAIL_MODE=mode):
        response = alpha_client.get(WHOAMI)
    assert response.status_code == status
    assert len(calls) == 1  # served again from fresh data, but not metered a second time
