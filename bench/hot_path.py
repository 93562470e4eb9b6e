"""The tenant API hot path: everything on vs. everything off, under gunicorn and wrk.

"On" is the real stack (``config.settings``): tenant routing from the Redis route cache, API
key auth, the 402 subscription check, the rate limit / quota / metering Lua round trip.
"Off" is ``bench.settings_bare``: the same Django, DRF and view (``WhoAmIView``, which reads
nothing from the database) with the tenant router and the metering middleware removed and
no authentication or permission classes. Both run as gunicorn with 2 sync workers; wrk
drives them alternately (on, off, on, off, ...) and the medians' ratio is printed.

Checks: a first request to "on" answers 200 with the bench tenant's slug; afterwards the
tenant's ``api_calls`` period counter in Redis grew by at least what wrk counted, and no run
saw a non-2xx response or a socket error. The bench tenant is removed at the end.

    .venv/bin/python -m config.devstack exec -- .venv/bin/python bench/hot_path.py
    ... bench/hot_path.py --duration 10 --connections 16 --rounds 2

Helpers here (bench tenant, gunicorn, cleanup) are shared with ``bench/ingest.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# The bench process itself runs without DEBUG too (no query log slowing in-process work).
os.environ["DJANGO_DEBUG"] = "0"
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Model, QuerySet  # noqa: E402

from core.audit import SYSTEM  # noqa: E402
from core.models import AuditEntry, DomainEvent  # noqa: E402
from subscriptions.access import subscription_access_invalidate  # noqa: E402
from subscriptions.catalog import catalog_sync  # noqa: E402
from subscriptions.models import CURRENT_STATUSES, Subscription  # noqa: E402
from tenants.models import Tenant, TenantStatus  # noqa: E402
from tenants.routing import routes_invalidate  # noqa: E402
from tenants.services import tenant_create, tenant_provision  # noqa: E402
from usage.limits import tenant_limits, tenant_limits_invalidate  # noqa: E402
from usage.meter import PENDING_TENANTS, period_counter_key, redis_client  # noqa: E402
from usage.metrics import API_CALLS  # noqa: E402

BENCH_PLAN_CODE = "bench-unlimited"
BENCH_METRIC = "bench_events"
# Private (not offered at signup); kept between runs, re-synced idempotently by each run.
BENCH_CATALOG = {
    "plans": [
        {
            "code": BENCH_PLAN_CODE,
            "name": "Benchmarks (limits never reached)",
            "description": (
                "Used by bench/*.py: a hard api_calls quota and a rate limit, both checked on"
                " every request and never reached; bench_events unlimited."
            ),
            "interval": "month",
            "price": 0,
            "currency": "USD",
            "public": False,
            "quotas": {API_CALLS: 1_000_000_000_000, BENCH_METRIC: None},
            "rate_limit_per_minute": 10_000_000,
        }
    ]
}
WHOAMI = "/api/v1/whoami/"
BARE_MIDDLEWARE_REMOVED = (
    "tenants.middleware.TenantRoutingMiddleware",
    "usage.middleware.UsageMeteringMiddleware",
)


# --- shared helpers (also used by bench/ingest.py) -----------------------------------------


@dataclass(frozen=True)
class BenchTenant:
    id: int
    slug: str
    schema_name: str
    host: str
    api_key: str


def bench_tenant_create(prefix: str = "bench") -> BenchTenant:
    """Migrate, sync the bench plan, create and provision a tenant on it; return its key."""
    call_command("migrate_schemas", interactive=False, verbosity=0)
    catalog_sync(data=BENCH_CATALOG, actor=SYSTEM)
    slug = f"{prefix}-{secrets.token_hex(4)}"
    created = tenant_create(
        slug=slug,
        name=f"Benchmark {slug}",
        email=f"{slug}@bench.example",
        plan=BENCH_PLAN_CODE,
        provision=False,
    )
    tenant = tenant_provision(tenant_id=created.tenant.pk)
    made = BenchTenant(
        id=tenant.pk,
        slug=tenant.slug,
        schema_name=tenant.schema_name,
        host=created.domain.domain,
        api_key=created.api_key,
    )
    if tenant.status != TenantStatus.ACTIVE:
        raise RuntimeError(f"bench tenant {slug} is {tenant.status}: {tenant.provisioning_error}")
    sub = Subscription.objects.filter(tenant_id=tenant.pk, status__in=CURRENT_STATUSES).first()
    if sub is None or sub.plan_version.plan.code != BENCH_PLAN_CODE:
        raise RuntimeError(f"bench tenant {slug} has no current '{BENCH_PLAN_CODE}' subscription")
    return made


def _delete_with_dependents(
    qs: QuerySet[Any], tables: set[str], seen: frozenset[type[Model]] = frozenset()
) -> int:
    """Delete ``qs`` after every row (of an existing table) that points at it, depth first.

    A hand-made cascade over the reverse relations (hidden ones too) with raw deletes, so models that are
    not migrated yet (another branch's work in progress) and PROTECT foreign keys cannot
    stop it, while a dependent this walk does not know about still fails loudly in the DB.
    """
    model = qs.model
    deleted = 0
    for rel in model._meta.get_fields(include_hidden=True):  # hidden: related_name="+"
        if not rel.auto_created or rel.concrete or not (rel.one_to_many or rel.one_to_one):
            continue
        related: Any = rel.related_model
        if (
            related in seen
            or related._meta.db_table not in tables
            or rel.field.model is not related  # inherited relation: handled on the parent
        ):
            continue
        dependents = related._base_manager.filter(**{f"{rel.field.name}__in": qs})
        deleted += _delete_with_dependents(dependents, tables, seen | {model})
    return deleted + qs._raw_delete(qs.db)


def bench_tenant_cleanup(tenant: BenchTenant) -> None:
    """Drop the tenant's schema, every public row that refers to it, and its Redis keys."""
    tables = set(connection.introspection.table_names())
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{tenant.schema_name}" CASCADE')
        # Rows keyed by a plain tenant id (the kernel imports no app), then everything that
        # reaches the tenant through foreign keys: domains, subscriptions and their periods
        # and pending items, usage, webhooks, invoices, ...
        _delete_with_dependents(DomainEvent.objects.filter(tenant_id=tenant.id), tables)
        _delete_with_dependents(AuditEntry.objects.filter(tenant_id=tenant.id), tables)
        _delete_with_dependents(Tenant.objects.filter(pk=tenant.id), tables)

    routes_invalidate(slugs=[tenant.slug], hosts=[tenant.host])
    tenant_limits_invalidate(tenant_id=tenant.id)
    subscription_access_invalidate(tenant_id=tenant.id)
    client = redis_client()
    keys = [
        *client.scan_iter(match=f"usage:*:{tenant.id}", count=1000),
        *client.scan_iter(match=f"usage:*:{tenant.id}:*", count=1000),
        *client.scan_iter(match=f"usage:flush:{tenant.id}-*", count=1000),
        *client.scan_iter(match=f"{tenant.schema_name}:*", count=1000),  # api key cache
    ]
    if keys:
        client.delete(*keys)
    client.srem(PENDING_TENANTS, tenant.id)
    if Tenant.objects.filter(pk=tenant.id).exists():
        raise RuntimeError(f"bench tenant {tenant.slug} was not removed")


def api_calls_counter(tenant_id: int) -> int:
    limits = tenant_limits(tenant_id=tenant_id)
    assert limits is not None
    raw = redis_client().get(period_counter_key(tenant_id, API_CALLS, limits.period_key))
    return int(raw or 0)


def load_average() -> str:
    """The 1-minute load average and the CPU count: how busy the machine was."""
    return f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(settings_module: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=settings_module,
        DJANGO_DEBUG="0",
        SECRET_KEY=os.environ["SECRET_KEY"],
        LOG_LEVEL="WARNING",
        DATABASE_CONN_MAX_AGE="600",
        ALLOWED_HOSTS="*",
        PYTHONPATH=str(ROOT),
    )
    return env


def request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def gunicorn(
    name: str, settings_module: str, *, workers: int = 2, ready_path: str = "/healthz"
) -> Iterator[Server]:
    """A gunicorn (sync workers, no access log) on 127.0.0.1; stopped on leaving."""
    port = free_port()
    logdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    log_path = logdir / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--worker-class",
                "sync",
                "--log-level",
                "warning",
                "--no-control-socket",
                "--timeout",
                "60",
            ],
            env=server_env(settings_module),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(name=name, port=port, process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn '{name}' exited:\n{server.log_tail()}")
            try:
                request(port, "GET", ready_path, {"Host": "127.0.0.1"})
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"gunicorn '{name}' did not answer:\n{server.log_tail()}"
                    ) from None
                time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)  # its own session: master + workers
                process.wait(timeout=5)
        shutil.rmtree(logdir, ignore_errors=True)


# --- wrk ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx: int
    socket_errors: int


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not match:
        raise ValueError(value)
    number, unit = float(match.group(1)), match.group(2)
    return number * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk_parse(output: str) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    if rps is None or total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests=int(total.group(1)),
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)) if p50 else None,
        p99_ms=_ms(p99.group(1)) if p99 else None,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
    )


def wrk(
    wrk_bin: str, url: str, headers: dict[str, str], *, threads: int, connections: int, seconds: int
) -> WrkResult:
    cmd = [wrk_bin, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    done = subprocess.run(
        [*cmd, url], capture_output=True, text=True, timeout=seconds + 30, check=True
    )
    return wrk_parse(done.stdout)


# --- the benchmark ------------------------------------------------------------------------


def _fmt(result: WrkResult) -> str:
    lat = (
        f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
        if result.p50_ms is not None and result.p99_ms is not None
        else ""
    )
    return f"{result.rps:9.1f} req/s  {result.requests:7d} requests  {lat}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per timed wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of discarded warm-up")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="on/off pairs (1-5)")
    parser.add_argument("--target", type=float, default=0.8)
    args = parser.parse_args()
    args.rounds = max(1, min(args.rounds, 5))
    args.duration = max(1, min(args.duration, 60))
    args.warmup = max(0, min(args.warmup, 30))
    wrk_bin = shutil.which("wrk")
    if wrk_bin is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if not settings.USAGE_METERING_ENABLED:
        print("USAGE_METERING_ENABLED is off: 'on' would not meter", file=sys.stderr)
        return 2

    load_before = load_average()
    tenant = bench_tenant_create()
    on_headers = {"Host": tenant.host, "Authorization": f"Bearer {tenant.api_key}"}
    off_headers = {"Host": "127.0.0.1"}
    runs: dict[str, list[WrkResult]] = {"on": [], "off": []}
    warmups: dict[str, list[WrkResult]] = {"on": [], "off": []}
    checks: list[tuple[str, bool]] = []
    try:
        with (
            gunicorn("on", "config.settings") as on,
            gunicorn("off", "bench.settings_bare", ready_path=WHOAMI) as off,
        ):
            status, body = request(on.port, "GET", WHOAMI, on_headers)
            try:
                first_ok = status == 200 and json.loads(body).get("tenant") == tenant.slug
            except ValueError:
                first_ok = False
            checks.append((f"first 'on' request: {status} {body[:80]!r}", first_ok))
            status, body = request(off.port, "GET", WHOAMI, off_headers)
            checks.append((f"first 'off' request: {status} {body[:80]!r}", status == 200))
            if not all(ok for _, ok in checks):
                raise RuntimeError(f"the servers do not answer as expected: {checks}")
            counter_before = api_calls_counter(tenant.id)
            servers = {"on": (on, on_headers), "off": (off, off_headers)}
            for _ in range(args.rounds):
                for name in ("on", "off"):
                    server, headers = servers[name]
                    url = f"http://127.0.0.1:{server.port}{WHOAMI}"
                    common = {"threads": args.threads, "connections": args.connections}
                    if args.warmup:
                        warmups[name].append(
                            wrk(wrk_bin, url, headers, seconds=args.warmup, **common)
                        )
                    runs[name].append(wrk(wrk_bin, url, headers, seconds=args.duration, **common))
            time.sleep(0.5)  # let requests in flight at wrk's end finish
            counter_after = api_calls_counter(tenant.id)
    finally:
        bench_tenant_cleanup(tenant)

    counted = sum(r.requests for r in runs["on"] + warmups["on"])
    grew = counter_after - counter_before
    checks.append(
        (
            f"api_calls counter grew by {grew} >= {counted} 'on' requests wrk counted",
            grew >= counted,
        )
    )
    every = [r for name in ("on", "off") for r in runs[name] + warmups[name]]
    non_2xx = sum(r.non_2xx for r in every)
    sock_errors = sum(r.socket_errors for r in every)
    checks.append((f"non-2xx responses: {non_2xx}", non_2xx == 0))
    checks.append((f"socket errors: {sock_errors}", sock_errors == 0))

    on_median = statistics.median(r.rps for r in runs["on"])
    off_median = statistics.median(r.rps for r in runs["off"])
    ratio = on_median / off_median
    print(
        f"GET {WHOAMI}  gunicorn 2 sync workers  wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration}s (after a {args.warmup}s warm-up each), {args.rounds} rounds"
    )
    print(f"bench tenant {tenant.slug} (removed)")
    print(f"load average: {load_before} before, {load_average()} after")
    for i in range(args.rounds):
        for name in ("on", "off"):
            print(f"  round {i + 1} {name:3s}  {_fmt(runs[name][i])}")
    print(f"median on:   {on_median:9.1f} req/s")
    print(f"median off:  {off_median:9.1f} req/s")
    print(
        f"ratio on/off: {ratio:.3f}  target >= {args.target}: {'MET' if ratio >= args.target else 'NOT MET'}"
    )
    for text, ok in checks:
        print(f"check {'ok  ' if ok else 'FAIL'} {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
