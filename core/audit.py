"""The audit log: every state-changing service writes one entry in its own transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from core.models import AuditEntry


@dataclass(frozen=True)
class Actor:
    """Who causes a change: ``staff``, ``tenant`` (an API key), ``stripe`` or ``system``."""

    kind: str
    ident: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.ident}" if self.ident else self.kind


SYSTEM = Actor("system")


def audit_record(
    *,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object,
    tenant_id: int | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        occurred_at=timezone.now(),
        actor=str(actor)[:200],
        action=action,
        tenant_id=tenant_id,
        target_type=target_type,
        target_id=str(target_id),
        reason=reason,
        data=data or {},
    )


def audit_record_many(entries: list[dict[str, Any]]) -> None:
    """``audit_record`` for many entries in one insert (each a dict of its keyword arguments)."""
    now = timezone.now()
    AuditEntry.objects.bulk_create(
        [
            AuditEntry(
                occurred_at=now,
                actor=str(e["actor"])[:200],
                action=e["action"],
                tenant_id=e.get("tenant_id"),
                target_type=e["target_type"],
                target_id=str(e["target_id"]),
                reason=e.get("reason", ""),
                data=e.get("data") or {},
            )
            for e in entries
        ]
    )
