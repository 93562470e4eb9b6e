"""Usage ingestion: events/s through the real endpoint in batches of 1,000 vs. a naive baseline.

The endpoint: ``POST /api/v1/usage/events/`` on a bench tenant's host, served by gunicorn
(2 sync workers, production settings), fed by a few client threads over keep-alive
connections with JSON bodies built before the clock starts. Then a slice of the batches is
sent again and must come back entirely as duplicates.

The baseline: a naive per-event ORM insert, ``UsageEvent.objects.create(...)`` in a loop,
each in its own transaction, in this process against the same database.

Checks: every batch answered 202; accepted == distinct ids sent; the sums of
``UsageEvent.quantity`` and of ``UsageRecord.quantity`` for the metric equal exactly the
quantity sent (accepted only); the resent slice is all duplicates. The bench tenant is
removed at the end. The usage tables are vacuumed before the clock starts (see
``tables_vacuum``).

    .venv/bin/python -m config.devstack exec -- .venv/bin/python bench/ingest.py
    ... bench/ingest.py --events 200000 --clients 4 --baseline 5000
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from bench.hot_path import (  # first of the project's imports: it calls django.setup()
    BENCH_METRIC,
    BenchTenant,
    bench_tenant_cleanup,
    bench_tenant_create,
    gunicorn,
    load_average,
)
from usage.limits import tenant_limits
from usage.models import UsageEvent, UsageRecord

PATH = "/api/v1/usage/events/"
BATCH = 1000


def build_batches(
    run: str, count: int, rng: random.Random
) -> tuple[list[bytes], list[int], list[int]]:
    """JSON bodies of distinct-id events, their quantity sums and event counts."""
    bodies: list[bytes] = []
    sums: list[int] = []
    sizes: list[int] = []
    now = datetime.now(UTC)
    for start in range(0, count, BATCH):
        events: list[dict[str, Any]] = []
        for i in range(start, min(start + BATCH, count)):
            events.append(
                {
                    "id": f"{run}-{i}",
                    "metric": BENCH_METRIC,
                    "quantity": rng.randint(1, 10),
                    "timestamp": now.isoformat(),
                    "properties": {"n": i % 7},
                }
            )
        bodies.append(json.dumps({"events": events}).encode())
        sums.append(sum(e["quantity"] for e in events))
        sizes.append(len(events))
    return bodies, sums, sizes


@dataclass
class SendResult:
    sent: list[int] = field(default_factory=list)  # batch indexes answered 202
    accepted: int = 0
    duplicates: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def send(
    port: int, tenant: BenchTenant, bodies: list[bytes], *, clients: int, time_limit: float
) -> SendResult:
    """Post every body once from ``clients`` threads (keep-alive), stopping at the limit."""
    headers = {
        "Host": tenant.host,
        "Authorization": f"Bearer {tenant.api_key}",
        "Content-Type": "application/json",
    }
    result = SendResult()
    lock = threading.Lock()
    todo = iter(range(len(bodies)))
    deadline = time.monotonic() + time_limit

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while time.monotonic() < deadline:
                with lock:
                    index = next(todo, None)
                if index is None:
                    return
                try:
                    conn.request("POST", PATH, body=bodies[index], headers=headers)
                    response = conn.getresponse()
                    payload = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    with lock:
                        result.failures.append(f"batch {index}: {exc!r}")
                    continue
                with lock:
                    if response.status == 202:
                        answer = json.loads(payload)
                        result.sent.append(index)
                        result.accepted += answer["accepted"]
                        result.duplicates += answer["duplicates"]
                    else:
                        result.failures.append(
                            f"batch {index}: {response.status} {payload[:200]!r}"
                        )
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=time_limit + 120)
    result.seconds = time.perf_counter() - started
    return result


def naive_baseline(
    tenant: BenchTenant, run: str, count: int, time_limit: float
) -> tuple[int, float]:
    """What a naive implementation would do: one ORM insert and one transaction per event."""
    limits = tenant_limits(tenant_id=tenant.id)
    assert limits is not None
    rng = random.Random(2)
    now = datetime.now(UTC)
    deadline = time.monotonic() + time_limit
    done = 0
    started = time.perf_counter()
    for i in range(count):
        if time.monotonic() > deadline:
            break
        with transaction.atomic():
            UsageEvent.objects.create(
                tenant_id=tenant.id,
                event_id=f"{run}-naive-{i}",
                metric=BENCH_METRIC,
                quantity=rng.randint(1, 10),
                timestamp=now,
                period_start=limits.period_start,
                properties={"n": i % 7},
                received_at=timezone.now(),
            )
        done += 1
    return done, time.perf_counter() - started


def tables_vacuum() -> None:
    """Vacuum the usage tables before the clock starts. Each run deletes the 200k+ events it
    wrote, and the embedded PostgreSQL stops with ``config.devstack``, usually before its
    autovacuum (a minute's nap) has looked at them: without this, the dead rows of every
    earlier run pile up (millions after a few dozen runs) and each run inserts into a more
    bloated table and indexes than the one before."""
    with connection.cursor() as cursor:  # autocommit: VACUUM cannot run in a transaction
        cursor.execute("VACUUM (ANALYZE) usage_usageevent, usage_usagerecord")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events sent (max 1e6)")
    parser.add_argument("--clients", type=int, default=4, help="client threads (1-8)")
    parser.add_argument("--resend", type=int, default=20, help="batches sent again")
    parser.add_argument("--baseline", type=int, default=5_000, help="naive inserts (max 50k)")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per phase")
    parser.add_argument("--target", type=float, default=50_000.0, help="events/s")
    args = parser.parse_args()
    args.events = max(BATCH, min(args.events, 1_000_000))
    args.clients = max(1, min(args.clients, 8))
    args.baseline = max(100, min(args.baseline, 50_000))
    args.time_limit = max(5.0, min(args.time_limit, 600.0))

    load_before = load_average()
    tenant = bench_tenant_create()
    run = secrets.token_hex(4)
    checks: list[tuple[str, bool]] = []
    try:
        tables_vacuum()
        bodies, sums, sizes = build_batches(run, args.events, random.Random(1))
        with gunicorn("ingest", "config.settings") as server:
            # One small batch first: warms each route, key and limits cache (not timed).
            warm_body = json.dumps(
                {
                    "events": [
                        {
                            "id": f"{run}-warm-{i}",
                            "metric": BENCH_METRIC,
                            "quantity": 1,
                            "timestamp": datetime.now(UTC).isoformat(),
                        }
                        for i in range(4)
                    ]
                }
            ).encode()
            warm = send(server.port, tenant, [warm_body], clients=1, time_limit=30)
            if warm.failures or warm.accepted != 4:
                raise RuntimeError(f"the endpoint does not accept events: {warm.failures}")
            first = send(
                server.port, tenant, bodies, clients=args.clients, time_limit=args.time_limit
            )
            resend_indexes = sorted(first.sent)[: args.resend]
            again = send(
                server.port,
                tenant,
                [bodies[i] for i in resend_indexes],
                clients=args.clients,
                time_limit=args.time_limit,
            )

        sent_events = sum(sizes[i] for i in first.sent) + 4
        sent_quantity = sum(sums[i] for i in first.sent) + 4
        accepted = first.accepted + warm.accepted
        totals = UsageEvent.objects.filter(tenant_id=tenant.id, metric=BENCH_METRIC).aggregate(
            n=Count("id"), q=Sum("quantity")
        )
        record_sum = (
            UsageRecord.objects.filter(tenant_id=tenant.id, metric=BENCH_METRIC).aggregate(
                q=Sum("quantity")
            )["q"]
            or 0
        )
        resent_events = sum(sizes[i] for i in resend_indexes)
        checks += [
            (
                f"every batch answered 202 ({len(first.sent)} of {len(bodies)} sent, "
                f"{len(first.failures)} failed)",
                not first.failures and len(first.sent) == len(bodies),
            ),
            (f"accepted {accepted} == distinct ids sent {sent_events}", accepted == sent_events),
            (f"duplicates on the first pass: {first.duplicates}", first.duplicates == 0),
            (
                f"sum(UsageEvent.quantity) {totals['q']} == quantity sent {sent_quantity} "
                f"({totals['n']} rows)",
                totals["q"] == sent_quantity and totals["n"] == sent_events,
            ),
            (
                f"sum(UsageRecord.quantity) {record_sum} == quantity sent {sent_quantity}",
                record_sum == sent_quantity,
            ),
            (
                f"resent {len(resend_indexes)} batches: {again.duplicates} duplicates, "
                f"{again.accepted} accepted, {len(again.failures)} failed",
                again.accepted == 0 and again.duplicates == resent_events and not again.failures,
            ),
        ]

        naive_n, naive_s = naive_baseline(tenant, run, args.baseline, args.time_limit)
        naive_rows = UsageEvent.objects.filter(
            tenant_id=tenant.id, event_id__startswith=f"{run}-naive-"
        ).count()
        checks.append((f"baseline rows {naive_rows} == {naive_n}", naive_rows == naive_n))
    finally:
        bench_tenant_cleanup(tenant)

    endpoint_eps = sum(sizes[i] for i in first.sent) / first.seconds
    resend_eps = resent_events / again.seconds if again.seconds else 0.0
    naive_eps = naive_n / naive_s
    print(
        f"POST {PATH}  gunicorn 2 sync workers, {args.clients} client threads, batches of {BATCH}"
    )
    print(f"bench tenant {tenant.slug} (removed)")
    print(f"load average: {load_before} before, {load_average()} after")
    print(
        f"endpoint:  {endpoint_eps:10.0f} events/s  ({sum(sizes[i] for i in first.sent)} events "
        f"in {first.seconds:.2f} s, {len(first.sent) / first.seconds:.1f} batches/s)"
    )
    print(
        f"resend:    {resend_eps:10.0f} events/s  (all duplicates, {resent_events} events "
        f"in {again.seconds:.2f} s)"
    )
    print(
        f"baseline:  {naive_eps:10.0f} events/s  (naive ORM create per event, {naive_n} events "
        f"in {naive_s:.2f} s)"
    )
    print(f"ratio endpoint/baseline: {endpoint_eps / naive_eps:.1f}x")
    print(
        f"target >= {args.target:,.0f} events/s: "
        f"{'MET' if endpoint_eps >= args.target else 'NOT MET'}"
    )
    for text, ok in checks:
        print(f"check {'ok  ' if ok else 'FAIL'} {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
