"""Create (once) the demo tenant ``demo`` (on the Pro plan's trial) and a staff login, and
print how to use them. Needs the catalog loaded (``sync_plans``).

The credentials are kept in ``.data/demo.json`` (local, git-ignored) so every ``make run``
can print them again; if that file is gone, a new key and password are made.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from core.audit import Actor
from subscriptions.models import Subscription
from subscriptions.services import subscription_create
from tenants.db import use_public, use_tenant
from tenants.models import Tenant, TenantStatus
from tenants.services import tenant_create, tenant_provision
from tenants.workspace.services import api_key_create

DEMO_SLUG = "demo"
CREDENTIALS = Path(settings.BASE_DIR) / ".data" / "demo.json"


class Command(BaseCommand):
    help = "Create the demo tenant and staff user (idempotent) and print their credentials."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, port: int, **options: Any) -> None:
        actor = Actor("system", "demo")
        saved: dict[str, str] = json.loads(CREDENTIALS.read_text()) if CREDENTIALS.exists() else {}

        User = get_user_model()
        staff = User.objects.filter(username="admin").first()
        if staff is None or "admin_password" not in saved:
            password = secrets.token_urlsafe(12)
            staff = staff or User(username="admin", email="admin@example.com")
            staff.is_staff = staff.is_superuser = True
            staff.set_password(password)
            staff.save()
            saved["admin_password"] = password

        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            created = tenant_create(
                slug=DEMO_SLUG,
                name="Demo Inc.",
                email="owner@demo.example",
                plan="pro",
                actor=actor,
                provision=False,
            )
            tenant = created.tenant
            saved["api_key"] = created.api_key
        if tenant.status in (TenantStatus.PROVISIONING, TenantStatus.FAILED):
            tenant = tenant_provision(tenant_id=tenant.pk, actor=actor)
        if not Subscription.objects.filter(tenant=tenant).exists():
            subscription_create(tenant_id=tenant.pk, plan_code="pro", actor=actor)
        if "api_key" not in saved:
            use_tenant(tenant)
            try:
                saved["api_key"] = api_key_create(name="make run", actor=actor).raw_key
            finally:
                use_public()

        CREDENTIALS.parent.mkdir(parents=True, exist_ok=True)
        CREDENTIALS.write_text(json.dumps(saved, indent=2))
        CREDENTIALS.chmod(0o600)

        base = settings.TENANTRY_BASE_DOMAIN
        self.stdout.write(
            "\n".join(
                [
                    "",
                    "Demo ready:",
                    f"  staff admin   http://{base}:{port}/admin/  user 'admin', password '{saved['admin_password']}'",
                    f"  demo tenant   http://{DEMO_SLUG}.{base}:{port}/api/v1/tenant/",
                    f"  demo API key  {saved['api_key']}",
                    f"  try: curl -H 'Authorization: Bearer {saved['api_key']}' http://{DEMO_SLUG}.{base}:{port}/api/v1/tenant/",
                    "",
                ]
            )
        )
