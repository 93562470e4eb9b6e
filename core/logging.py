"""Structured logging: structlog for our own lines and Django's, with the tenant bound.

The tenant router puts the request id and ``tenant`` into the request's log context
(:func:`request_context_begin`; one context variable holding a dict, which costs a fraction
of binding each key as its own structlog context variable on every request); Celery tasks
bind theirs with ``structlog.contextvars`` (``config/celery.py``). Both structlog and stdlib
loggers render through the same processor chain, so every line carries the tenant.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

import structlog

_request_context: ContextVar[dict[str, Any] | None] = ContextVar(
    "tenantry_request_log_context", default=None
)


def request_context_begin(**values: Any) -> Token[dict[str, Any] | None]:
    """Start the log context of a request; pass the token to :func:`request_context_end`."""
    return _request_context.set(dict(values))


def request_context_bind(**values: Any) -> None:
    """Add to the current request's log context (nothing outside a request)."""
    context = _request_context.get()
    if context is not None:
        context.update(values)


def request_context_end(token: Token[dict[str, Any] | None]) -> None:
    _request_context.reset(token)


def merge_request_context(_logger: Any, _method: str, event_dict: Any) -> Any:
    context = _request_context.get()
    if context:
        for key, value in context.items():
            event_dict.setdefault(key, value)
    return event_dict


_shared_processors: list[Any] = [
    structlog.contextvars.merge_contextvars,
    merge_request_context,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.StackInfoRenderer(),
]


def logging_config(*, level: str, fmt: str) -> dict[str, Any]:
    """Return a ``LOGGING`` dict and configure structlog to feed into it."""
    structlog.configure(
        processors=[
            *_shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    renderer,
                ],
                "foreign_pre_chain": _shared_processors,
            }
        },
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "structlog"},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Replace Django's own console handler, or its lines would print twice.
            "django": {"handlers": ["console"], "level": level, "propagate": False},
            "django.db.backends": {"level": "WARNING"},
            "django.server": {"level": "WARNING"},
        },
    }
