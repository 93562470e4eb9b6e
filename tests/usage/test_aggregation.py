"""Counters move from Redis into PostgreSQL exactly once, even when the flush is killed.

These tests run real processes against the test database and Redis, so they commit for real
and clean up after themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from usage.meter import PENDING_TENANTS, pending_key, redis_client
from usage.models import UsageFlush, UsageRecord
from usage.services import FLUSH_LIST, usage_flush

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    s = connection.settings_dict
    auth = quote(s["USER"] or "postgres") + (
        ":" + quote(s["PASSWORD"]) if s.get("PASSWORD") else ""
    )
    host = s["HOST"] or ""
    if host.startswith("/"):
        return f"postgres://{auth}@/{s['NAME']}?host={quote(host)}"
    return f"postgres://{auth}@{host}:{s['PORT'] or 5432}/{s['NAME']}"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    prelude = "import django; django.setup()\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def committed(session_tenants, django_db_blocker) -> Iterator[int]:
    alpha = session_tenants["alpha"].tenant
    with django_db_blocker.unblock():
        client = redis_client()
        client.flushdb()
        UsageRecord.objects.filter(tenant=alpha).delete()
        yield alpha.pk
        client.flushdb()
        UsageRecord.objects.filter(tenant=alpha).delete()
        UsageFlush.objects.filter(flush_id__startswith=f"{alpha.pk}-").delete()


def calls_in_postgres(tenant_id: int) -> int:
    return (
        UsageRecord.objects.filter(tenant_id=tenant_id, metric="api_calls").aggregate(
            s=Sum("quantity")
        )["s"]
        or 0
    )


METER = """
from datetime import timedelta
from django.utils import timezone
from usage.limits import TenantLimits
from usage.meter import meter_request
now = timezone.now()
limits = TenantLimits(tenant_id={tenant_id}, period_start=now - timedelta(days=1), period_end=now + timedelta(days=29),
                      rate_limit_per_minute=None, quotas={{}})
for _ in range({n}):
    assert meter_request(limits=limits).allowed
"""


def test_concurrent_increments_from_several_processes_lose_nothing(committed):
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import django; django.setup()\n" + METER.format(tenant_id=committed, n=400),
            ],
            env={**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL},
            cwd=ROOT,
        )
        for _ in range(4)
    ]
    assert [p.wait(timeout=120) for p in processes] == [0, 0, 0, 0]
    pending = redis_client().hgetall(pending_key(committed))
    assert sum(int(v) for k, v in pending.items() if k.startswith(b"api_calls|")) == 1600
    usage_flush()
    assert calls_in_postgres(committed) == 1600
    assert not redis_client().exists(pending_key(committed))


def test_flush_is_exactly_once_even_when_killed_after_commit(committed):
    assert run_python(METER.format(tenant_id=committed, n=25)).returncode == 0
    killed = run_python("""
        import os
        from usage import services
        services.flush_cleanup = lambda **kw: os._exit(9)   # die between commit and clean-up
        services.usage_flush()
    """)
    assert killed.returncode == 9, killed.stderr
    client = redis_client()
    assert calls_in_postgres(committed) == 25  # the commit happened
    assert client.llen(FLUSH_LIST) == 1  # ...the clean-up did not
    result = usage_flush()
    assert result == {"applied": 0, "skipped": 1}
    assert calls_in_postgres(committed) == 25  # not twice
    assert client.llen(FLUSH_LIST) == 0


def test_flush_killed_before_commit_is_applied_by_the_next_run(committed):
    assert run_python(METER.format(tenant_id=committed, n=10)).returncode == 0
    killed = run_python("""
        import os
        from usage import services
        services.flush_apply = lambda **kw: os._exit(9)   # die after claiming, before applying
        services.usage_flush()
    """)
    assert killed.returncode == 9, killed.stderr
    client = redis_client()
    assert calls_in_postgres(committed) == 0
    assert client.llen(FLUSH_LIST) == 1
    assert not client.sismember(PENDING_TENANTS, committed)
    # New traffic meanwhile goes to a fresh pending hash, not the claimed one.
    assert run_python(METER.format(tenant_id=committed, n=5)).returncode == 0
    assert usage_flush() == {"applied": 2, "skipped": 0}
    assert calls_in_postgres(committed) == 15


def test_flushed_counts_land_in_the_exact_period_billing_reads(committed, session_tenants):
    from usage.limits import tenant_limits
    from usage.selectors import usage_period_totals

    limits = tenant_limits(tenant_id=committed)
    assert limits is not None
    code = METER.replace(
        "period_start=now - timedelta(days=1), period_end=now + timedelta(days=29)",
        f"period_start=datetime.fromisoformat({limits.period_start.isoformat()!r}), "
        f"period_end=datetime.fromisoformat({limits.period_end.isoformat()!r})",
    )
    code = "from datetime import datetime\n" + code
    assert run_python(code.format(tenant_id=committed, n=4)).returncode == 0
    usage_flush()
    assert (
        usage_period_totals(tenant_id=committed, period_start=limits.period_start)["api_calls"] == 4
    )


def test_flush_twice_in_a_row_moves_each_count_once(committed):
    assert run_python(METER.format(tenant_id=committed, n=7)).returncode == 0
    assert usage_flush()["applied"] == 1
    assert usage_flush() == {"applied": 0, "skipped": 0}
    assert calls_in_postgres(committed) == 7
