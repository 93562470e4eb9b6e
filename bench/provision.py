"""Tenant provisioning: cloning the template schema vs. migrating each new schema.

Creates N tenants each way in one run (same process, same database) and prints both medians
and their ratio. Cleans up what it made.

    make bench BENCH_ARGS="--n 5"            # embedded PostgreSQL, or DATABASE_URL if set
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402

from core.models import AuditEntry, DomainEvent  # noqa: E402
from tenants.models import Tenant  # noqa: E402
from tenants.services import tenant_create, tenant_provision  # noqa: E402


def by_cloning(slug: str) -> float:
    created = tenant_create(slug=slug, name=slug, email=f"{slug}@bench.example", provision=False)
    started = time.perf_counter()
    tenant_provision(tenant_id=created.tenant.pk)
    return time.perf_counter() - started


def by_migrating(slug: str) -> float:
    created = tenant_create(slug=slug, name=slug, email=f"{slug}@bench.example", provision=False)
    started = time.perf_counter()
    with override_settings(TENANT_CREATION_FAKES_MIGRATIONS=False):
        tenant_provision(tenant_id=created.tenant.pk)
    return time.perf_counter() - started


def cleanup(slugs: list[str]) -> None:
    from bench.hot_path import _delete_with_dependents

    tables = set(connection.introspection.table_names())
    for tenant in Tenant.objects.filter(slug__in=slugs):
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
        _delete_with_dependents(AuditEntry.objects.filter(tenant_id=tenant.pk), tables)
        _delete_with_dependents(DomainEvent.objects.filter(tenant_id=tenant.pk), tables)
        _delete_with_dependents(Tenant.objects.filter(pk=tenant.pk), tables)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5, help="tenants made each way")
    args = parser.parse_args()
    call_command("migrate_schemas", interactive=False, verbosity=0)
    run = secrets.token_hex(3)
    slugs: list[str] = []
    clone_times: list[float] = []
    migrate_times: list[float] = []
    try:
        for i in range(args.n):  # interleaved, so drift in machine load hits both alike
            for kind, func, times in (
                ("c", by_cloning, clone_times),
                ("m", by_migrating, migrate_times),
            ):
                slug = f"bench-{run}-{kind}{i}"
                slugs.append(slug)
                times.append(func(slug))
    finally:
        cleanup(slugs)
    clone = statistics.median(clone_times)
    migrate = statistics.median(migrate_times)
    print(f"tenants each way:            {args.n}")
    print(
        f"clone template   median s:   {clone:.3f}  (min {min(clone_times):.3f}, max {max(clone_times):.3f})"
    )
    print(
        f"migrate schema   median s:   {migrate:.3f}  (min {min(migrate_times):.3f}, max {max(migrate_times):.3f})"
    )
    print(f"migrate / clone  ratio:      {migrate / clone:.1f}x")


if __name__ == "__main__":
    main()
