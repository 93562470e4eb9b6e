"""CPU instructions per warm request of the hot path, "on" and "off", counted by callgrind.

A diagnostic beside ``bench/hot_path.py``: wall-clock throughput on this shared 2-core
machine drifts by a quarter between runs, an instruction count repeats to within ~0.5 %.
Each side runs in its own process under ``valgrind --tool=callgrind``: Django's WSGI
handler (the same settings and view as ``bench/hot_path.py``: ``config.settings`` with the
bench tenant and its key, or ``bench.settings_bare``) serves ``--warmup`` requests, then
``--requests`` more inside one ``functools.reduce`` call, and only that call is counted
(``--toggle-collect``), so start-up and warm-up cancel out exactly.

Under valgrind a request takes ~50 times longer, so the time-based parts of the hot path
are stretched to keep their real proportions: ``USAGE_CREDIT_SECONDS=10`` (credit lives
for about as many requests as 0.2 s do at full speed) and snapshots and database
connections do not expire during the run. Needs valgrind (``apt-get install valgrind``).

    .venv/bin/python -m config.devstack exec -- .venv/bin/python bench/instructions.py
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WHOAMI = "/api/v1/whoami/"


def worker(args: argparse.Namespace) -> int:
    """Serve the requests in this process (run under valgrind by :func:`main`)."""
    import functools
    import gc
    import io

    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = (
        "config.settings" if args.worker == "on" else "bench.settings_bare"
    )
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    import core.snapshots

    core.snapshots.SNAPSHOT_MAX_AGE = 1e9  # see the module docstring
    app = WSGIHandler()
    host = args.host if args.worker == "on" else "127.0.0.1"
    statuses: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        statuses.append(status)

    def one(_acc: object = None, _item: object = None) -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": WHOAMI,
            "QUERY_STRING": "",
            "SERVER_NAME": host,
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": host,
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.input": io.BytesIO(b""),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
        }
        if args.worker == "on":
            environ["HTTP_AUTHORIZATION"] = f"Bearer {args.key}"
        response = app(environ, start_response)
        b"".join(response)
        response.close()

    for _ in range(args.warmup):
        one()
    gc.collect()
    gc.freeze()
    statuses.clear()
    functools.reduce(one, range(args.requests), None)  # the only call that is counted
    bad = [s for s in statuses if not s.startswith("200")]
    if len(statuses) != args.requests or bad:
        print(f"{len(statuses)} answers, not 200: {bad[:3]}", file=sys.stderr)
        return 1
    return 0


def count(mode: str, args: argparse.Namespace, host: str, key: str, out_dir: str) -> int:
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "DJANGO_DEBUG": "0",
        "LOG_LEVEL": "WARNING",
        "USAGE_CREDIT_SECONDS": "10",
        "DATABASE_CONN_MAX_AGE": "1000000",
    }
    command = [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        "--toggle-collect=functools_reduce",
        f"--callgrind-out-file={out_dir}/callgrind.{mode}.out",
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        mode,
        "--host",
        host,
        "--key",
        key,
        "--requests",
        str(args.requests),
        "--warmup",
        str(args.warmup),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"the '{mode}' run failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests counted per side")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--worker", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--host", default="", help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if subprocess.run(["which", "valgrind"], capture_output=True).returncode != 0:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2

    sys.path.insert(0, str(ROOT))
    from bench.hot_path import bench_tenant_cleanup, bench_tenant_create  # sets Django up

    tenant = bench_tenant_create(prefix="instr")
    try:
        with tempfile.TemporaryDirectory() as out_dir, ThreadPoolExecutor(2) as pool:
            runs = {
                mode: pool.submit(count, mode, args, tenant.host, tenant.api_key, out_dir)
                for mode in ("on", "off")
            }
            counts = {mode: run.result() for mode, run in runs.items()}
    finally:
        bench_tenant_cleanup(tenant)
    on, off = counts["on"] / args.requests, counts["off"] / args.requests
    print(f"GET {WHOAMI} in-process, {args.requests} requests after {args.warmup} of warm-up")
    print(f"instructions per request  on: {on:,.0f}  off: {off:,.0f}")
    print(f"ratio off/on (the share of 'off' in an 'on' request): {off / on:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
