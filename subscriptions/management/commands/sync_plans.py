"""``manage.py sync_plans catalog.yaml [--dry-run]``: the plan catalog as code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.audit import Actor
from subscriptions.catalog import CatalogError, catalog_load, catalog_sync


class Command(BaseCommand):
    help = "Create or update plans from a YAML or JSON catalog, idempotently."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--dry-run", action="store_true", help="show the changes, write nothing"
        )

    def handle(self, *args: Any, path: Path, dry_run: bool, **options: Any) -> None:
        if not path.exists():
            raise CommandError(f"{path}: no such file")
        try:
            changes = catalog_sync(
                data=catalog_load(path), actor=Actor("system", "sync_plans"), dry_run=dry_run
            )
        except CatalogError as exc:
            raise CommandError(exc.message) from exc
        prefix = "(dry run) " if dry_run else ""
        for change in changes:
            self.stdout.write(f"{prefix}{change}")
        changed = sum(1 for c in changes if c.action != "unchanged")
        self.stdout.write(
            f"{prefix}{changed} of {len(changes)} plan(s) {'would change' if dry_run else 'changed'}."
        )
