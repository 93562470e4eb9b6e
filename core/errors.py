"""The one exception family services raise; ``core.api.errors`` turns it into a response."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A business error with a stable machine-readable code and an HTTP status."""

    status_code: int = 400
    default_code: str = "application_error"
    default_message: str = "The request could not be completed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.code = code or self.default_code
        self.details: dict[str, Any] = details or {}
        self.headers: dict[str, str] = headers or {}
        super().__init__(self.message)


class InvalidInput(ApplicationError):
    status_code = 400
    default_code = "invalid"
    default_message = "The input is not valid."


class NotAuthenticated(ApplicationError):
    status_code = 401
    default_code = "not_authenticated"
    default_message = "Authentication credentials were not provided or are not valid."


class Forbidden(ApplicationError):
    status_code = 403
    default_code = "forbidden"
    default_message = "You may not do that."


class NotFound(ApplicationError):
    status_code = 404
    default_code = "not_found"
    default_message = "Not found."


class Conflict(ApplicationError):
    status_code = 409
    default_code = "conflict"
    default_message = "The request conflicts with the current state."


class Gone(ApplicationError):
    status_code = 410
    default_code = "gone"
    default_message = "This resource is gone."


class ServiceUnavailable(ApplicationError):
    status_code = 503
    default_code = "unavailable"
    default_message = "The service is temporarily unavailable."
