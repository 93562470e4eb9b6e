"""``config.settings`` with the tenant hot path switched off, for ``bench/hot_path.py``.

No tenant router and no metering middleware; ``bench.urls_bare`` serves ``WhoAmIView``
without authentication or permission classes (so no key check and no 402 check). Everything
else (Django's own middleware, DRF, the JSON renderer, logging) is as in production.
"""

from config.settings import *  # noqa: F403
from config.settings import MIDDLEWARE as _MIDDLEWARE

MIDDLEWARE = [
    m
    for m in _MIDDLEWARE
    if m
    not in (
        "tenants.middleware.TenantRoutingMiddleware",
        "usage.middleware.UsageMeteringMiddleware",
    )
]
ROOT_URLCONF = "bench.urls_bare"
PUBLIC_SCHEMA_URLCONF = "bench.urls_bare"
