"""A real webhook receiver on loopback that verifies every request with the
``standardwebhooks`` package's own verifier, and helpers to emit real domain events."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from core.audit import Actor
from core.models import DomainEvent
from tenants.services import tenant_updated
from tenants.webhooks.models import WebhookEndpoint
from tenants.webhooks.services import webhook_endpoint_create

TEST_ACTOR = Actor("test")


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes
    verified: bool
    payload: Any = None
    error: str = ""


@dataclass
class Receiver:
    port: int = 0
    requests: list[Received] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # path -> signing secret
    # path -> status codes to answer in turn; the last one repeats. Default 200.
    answers: dict[str, list[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        secret = self.secrets.get(path)
        try:
            if secret is None:
                raise WebhookVerificationError(f"no secret for {path}")
            payload = Webhook(secret).verify(body, headers)
            received = Received(path, headers, body, verified=True, payload=payload)
        except WebhookVerificationError as exc:
            received = Received(path, headers, body, verified=False, error=str(exc))
        with self.lock:
            self.requests.append(received)
            answers = self.answers.get(path, [200])
            status = answers.pop(0) if len(answers) > 1 else answers[0]
        return status if received.verified else 401


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = state.handle(self.path, headers, body)
            reply = json.dumps({"status": status, "echo": "x" * 5000}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(reply)))
            if 300 <= status < 400:
                self.send_header("location", state.url("/redirected"))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def allow_private(settings):
    """The loopback receiver is a private target: allow those (DEBUG stays off)."""
    settings.DEBUG = False
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True


@pytest.fixture
def strict_targets(settings):
    """Production rules: no private targets, https only."""
    settings.DEBUG = False
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False


def endpoint_for(
    receiver: Receiver, tenant_id: int, path: str, event_types: list[str] | None = None
) -> WebhookEndpoint:
    endpoint = webhook_endpoint_create(
        tenant_id=tenant_id, url=receiver.url(path), event_types=event_types, actor=TEST_ACTOR
    )
    receiver.secrets[path] = endpoint.secret
    return endpoint


def emit(capture: Any, tenant_id: int, *fields: str) -> DomainEvent:
    """Record a real ``TenantUpdated`` event and run what happens on commit."""
    before = set(DomainEvent.objects.values_list("pk", flat=True))
    with capture(execute=True):
        tenant_updated(tenant_id=tenant_id, actor=TEST_ACTOR, fields=list(fields or ["name"]))
    return DomainEvent.objects.exclude(pk__in=before).get(type="TenantUpdated")
